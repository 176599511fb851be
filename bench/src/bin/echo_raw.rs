//! The ceiling for large messages: `echo_raw LISTEN_ADDR`, an echo server that does only what
//! any WebSocket echo must — read each frame into one reused buffer, unmask it in place, write
//! it back under a server header — with no message assembly, no UTF-8 check, no allocation
//! per message and no protocol checks beyond what it needs to find frame boundaries.
//!
//! It is not a WebSocket implementation (no fragmentation, no control frames other than
//! close, no limits); it exists so that `scripts/bench.sh` can state how close wsx's 1 MiB echo
//! comes to the memory- and loopback-bound throughput of this machine (issue: "within 2x of a
//! plain memcpy-bound echo").

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx_proto::handshake::{accept_key, parse_request};
use wsx_proto::apply_mask;

fn main() -> std::io::Result<()> {
    wsx_bench::serve("raw", false, |tcp, _| async move {
        let _ = echo(tcp).await;
    })
}

async fn echo(mut tcp: TcpStream) -> std::io::Result<()> {
    // Handshake: read the request head, answer 101.
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let request_len = loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        match parse_request(&head, 16 * 1024) {
            Ok(Some((request, len))) => {
                let key = request.header("sec-websocket-key").unwrap_or_default();
                let response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept_key(key)
                );
                tcp.write_all(response.as_bytes()).await?;
                break len;
            }
            Ok(None) => {}
            Err(_) => return Ok(()),
        }
    };
    // Frames: header (2-14 bytes), payload into the reused buffer, unmask, write back.
    let mut pending: Vec<u8> = head.split_off(request_len);
    let mut payload: Vec<u8> = Vec::new();
    loop {
        let mut header = [0u8; 14];
        let mut have = pending.len().min(14);
        header[..have].copy_from_slice(&pending[..have]);
        let needed = |h: &[u8; 14], have: usize| -> Option<usize> {
            if have < 2 {
                return None;
            }
            let base = match h[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            let len = base + if h[1] & 0x80 != 0 { 4 } else { 0 };
            (have >= len).then_some(len)
        };
        let header_len = loop {
            if let Some(len) = needed(&header, have) {
                break len;
            }
            let n = tcp.read(&mut header[have..]).await?;
            if n == 0 {
                return Ok(());
            }
            have += n;
        };
        let opcode = header[0] & 0x0f;
        let (len, key_at) = match header[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([header[2], header[3]])), 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&header[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        let key = [
            header[key_at],
            header[key_at + 1],
            header[key_at + 2],
            header[key_at + 3],
        ];
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        // Bytes already read past the header belong to the payload (or the next frame).
        let extra: Vec<u8> = if pending.len() > header_len {
            pending.split_off(header_len)
        } else {
            header[header_len..have].to_vec()
        };
        pending.clear();
        // The buffer only grows (zeroed once), and is reused for every later frame.
        if payload.len() < len {
            payload.resize(len, 0);
        }
        let payload = &mut payload[..len];
        let from_extra = extra.len().min(len);
        payload[..from_extra].copy_from_slice(&extra[..from_extra]);
        pending.extend_from_slice(&extra[from_extra..]);
        tcp.read_exact(&mut payload[from_extra..]).await?;
        apply_mask(payload, key, 0);
        if opcode == 0x8 {
            tcp.write_all(&[0x88, 0x00]).await?;
            return Ok(());
        }
        let mut out = [0u8; 10];
        out[0] = 0x80 | opcode;
        let out_len = if len < 126 {
            out[1] = len as u8;
            2
        } else if len <= 0xffff {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            out[1] = 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        tcp.write_all(&out[..out_len]).await?;
        tcp.write_all(payload).await?;
    }
}
