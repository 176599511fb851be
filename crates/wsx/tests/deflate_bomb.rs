//! A compression bomb: a few hundred KiB that inflate to 256 MiB. The server must refuse it with
//! 1009 after inflating little more than its message limit, and its memory must stay bounded.
//! (Its own test binary, so that no other test disturbs the peak-memory reading.)

use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsx::{CloseCode, DeflateConfig, Message, WebSocketConfig};

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A raw deflate stream of `total` zero bytes, sync-flushed, without the 00 00 ff ff tail,
/// built in chunks so that the zeros are never all in memory.
fn zeros_deflated(total: usize) -> Vec<u8> {
    let mut c = Compress::new(Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let mut out = Vec::with_capacity(2 << 20);
    let mut fed = 0;
    while fed < total {
        let before_in = c.total_in();
        out.reserve(64 * 1024);
        c.compress_vec(&zeros, &mut out, FlushCompress::None)
            .unwrap();
        fed += (c.total_in() - before_in) as usize;
    }
    loop {
        out.reserve(64 * 1024);
        let before = out.len();
        c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
        if out.len() == before {
            break;
        }
    }
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    out
}

#[tokio::test]
async fn deflate_bomb_is_refused_with_1009_and_memory_stays_bounded() {
    const LIMIT: usize = 1 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let config = WebSocketConfig::default()
            .compression(DeflateConfig::default())
            .max_message_size(LIMIT);
        let mut ws = wsx::accept_with(tcp, &config, |_| Ok(wsx::Accept::default()))
            .await
            .unwrap();
        assert!(ws.is_compressed());
        let mut outcome = Vec::new();
        while let Some(m) = ws.recv().await {
            outcome.push(m.map_err(|e| e.to_string()));
        }
        outcome
    });

    let bomb = zeros_deflated(1 << 28);
    assert!(
        bomb.len() < 2 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let baseline = peak_rss_kib();

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    )
    .await
    .unwrap();
    // One masked binary frame with RSV1 (compressed); the key 0 leaves the payload as it is.
    let mut frame = vec![0x80 | 0x40 | 0x2, 0x80 | 127];
    frame.extend_from_slice(&(bomb.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    tcp.write_all(&frame).await.unwrap();
    // The server may stop reading once it has refused the message: a failed write is fine.
    let _ = tcp.write_all(&bomb).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tcp.read_to_end(&mut answer),
    )
    .await;

    let outcome = server.await.unwrap();
    assert!(
        matches!(outcome.last(), Some(Err(e)) if e.contains("exceeds the limit")),
        "{outcome:?}"
    );
    assert!(!outcome.iter().any(|m| matches!(m, Ok(Message::Binary(_)))));
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let close = &answer[head_end..];
    assert_eq!(close[0], 0x88, "a close frame");
    assert_eq!(
        u16::from_be_bytes([close[2], close[3]]),
        CloseCode::MESSAGE_TOO_BIG.0
    );
    let grown_kib = peak_rss_kib().saturating_sub(baseline);
    assert!(
        grown_kib < 64 * 1024,
        "peak memory grew by {grown_kib} KiB inflating a 256 MiB bomb"
    );
}
