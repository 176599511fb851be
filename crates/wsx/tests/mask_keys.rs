//! A client's masking keys from a caller-supplied source (`WebSocketConfig::mask_keys`): with a
//! fixed sequence of keys, the bytes a client puts on the wire are exactly known.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::net::TcpListener;
use wsx::{ClientBuilder, MaskKeySource, Message, WebSocketConfig};

/// Keys [n, n+1, n+2, n+3] for n = 1, 5, 9, … (frame by frame).
#[derive(Debug, Default)]
struct CountingKeys(AtomicU8);

impl MaskKeySource for CountingKeys {
    fn next_key(&self) -> [u8; 4] {
        let n = self.0.fetch_add(4, Ordering::Relaxed) + 1;
        [n, n + 1, n + 2, n + 3]
    }
}

fn masked(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}

#[tokio::test]
async fn a_client_frame_is_masked_with_the_supplied_keys() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = wsx::accept(tcp).await.unwrap();
        // Read the client's frames as raw bytes, below the WebSocket layer.
        let tcp = ws.get_ref();
        let mut raw = Vec::new();
        let mut buf = [0u8; 256];
        while raw.len() < 2 * (2 + 4 + 5) {
            tcp.readable().await.unwrap();
            match tcp.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        raw
    });
    let config = WebSocketConfig::default().mask_keys(CountingKeys::default());
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    ws.feed(Message::text("hello")).unwrap();
    ws.feed(Message::binary(&b"world"[..])).unwrap();
    ws.flush().await.unwrap();
    let raw = server.await.unwrap();

    let mut want = vec![0x81, 0x80 | 5, 1, 2, 3, 4];
    want.extend(masked(b"hello", [1, 2, 3, 4]));
    want.extend([0x82, 0x80 | 5, 5, 6, 7, 8]);
    want.extend(masked(b"world", [5, 6, 7, 8]));
    assert_eq!(raw, want);
}
