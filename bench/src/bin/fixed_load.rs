//! A fixed amount of echo load, for instruction-count profiles of the echo servers.
//!
//! ```text
//! fixed_load HOST:PORT [--connections C] [--messages N] [--size BYTES] [--binary]
//! ```
//!
//! Opens C connections (bare-bones HTTP/1.1 upgrade written straight to the socket, as
//! `idle_clients` does), then on each sends N masked messages of BYTES bytes one at a time,
//! waiting for each echo (checked) before the next, as `wsx bench` does: one message in flight
//! per connection. Then it closes every connection with a close frame and exits, printing the
//! number of messages echoed.
//!
//! Unlike `wsx bench`, which runs for a duration, the work done here is the same on every run,
//! so a server's instruction count (`valgrind --tool=callgrind`) for N = 2k minus N = k is the
//! cost of exactly C × k echoes, whatever the machine's speed. Run it twice with different N
//! and divide the difference, to cancel start-up and handshakes:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=a.out target/release/echo_wsx 127.0.0.1:9001 &
//! target/release/fixed_load 127.0.0.1:9001 -c 10 -n 200 -s 20; kill %1   # then -n 400 -> b.out
//! callgrind_annotate a.out | head; callgrind_annotate b.out | head       # (b - a) / 2000
//! ```

use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::LocalSet;

/// The masking key of every frame (any non-zero key will do).
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

struct Args {
    addr: String,
    connections: usize,
    messages: u64,
    size: usize,
    binary: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        addr: String::new(),
        connections: 10,
        messages: 1000,
        size: 20,
        binary: false,
    };
    fn value<T: std::str::FromStr>(
        it: &mut impl Iterator<Item = String>,
        flag: &str,
    ) -> Result<T, String> {
        it.next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" | "--connections" => args.connections = value(&mut it, "--connections")?,
            "-n" | "--messages" => args.messages = value(&mut it, "--messages")?,
            "-s" | "--size" => args.size = value(&mut it, "--size")?,
            "--binary" => args.binary = true,
            _ if args.addr.is_empty() && !arg.starts_with('-') => {
                args.addr = arg
                    .trim_start_matches("ws://")
                    .trim_end_matches('/')
                    .to_string()
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if args.addr.is_empty() {
        return Err("usage: fixed_load HOST:PORT [-c C] [-n N] [-s BYTES] [--binary]".into());
    }
    Ok(args)
}

/// A masked client frame: header (FIN + opcode, length, key) and the masked payload.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&KEY);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i & 3]));
    f
}

/// The server's (unmasked) frame header for a payload of `len` bytes.
fn server_header(opcode: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    match len {
        n @ 0..=125 => h.push(n as u8),
        n @ 126..=0xFFFF => {
            h.push(126);
            h.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            h.push(127);
            h.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    h
}

async fn handshake(tcp: &mut TcpStream, addr: &str) -> Result<(), String> {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // Read the response head byte by byte: nothing after it may be consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = tcp.read_u8().await.map_err(|e| e.to_string())?;
        head.push(b);
        if head.len() > 8192 {
            return Err("response head too long".into());
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "handshake refused: {}",
            String::from_utf8_lossy(&head)
        ));
    }
    Ok(())
}

async fn run_connection(
    args: Rc<Args>,
    frame: Rc<Vec<u8>>,
    expect: Rc<Vec<u8>>,
    done: Rc<AtomicU64>,
) -> Result<(), String> {
    let mut tcp = TcpStream::connect(&args.addr)
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    handshake(&mut tcp, &args.addr).await?;
    let mut got = vec![0u8; expect.len()];
    for _ in 0..args.messages {
        tcp.write_all(&frame).await.map_err(|e| e.to_string())?;
        tcp.read_exact(&mut got).await.map_err(|e| e.to_string())?;
        if got != *expect {
            return Err("echo differs from the message sent".into());
        }
        done.fetch_add(1, Relaxed);
    }
    tcp.write_all(&client_frame(0x8, &1000u16.to_be_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    // The close echo, then EOF from the server.
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest).await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => Rc::new(a),
        Err(e) => {
            eprintln!("fixed_load: {e}");
            return ExitCode::from(2);
        }
    };
    let opcode = if args.binary { 0x2 } else { 0x1 };
    let payload: Vec<u8> = (0..args.size).map(|i| b'a' + (i % 26) as u8).collect();
    let frame = Rc::new(client_frame(opcode, &payload));
    let mut expect = server_header(opcode, payload.len());
    expect.extend_from_slice(&payload);
    let expect = Rc::new(expect);
    let done = Rc::new(AtomicU64::new(0));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fixed_load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = LocalSet::new();
    let result = local.block_on(&rt, async {
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| {
                tokio::task::spawn_local(run_connection(
                    args.clone(),
                    frame.clone(),
                    expect.clone(),
                    done.clone(),
                ))
            })
            .collect();
        let mut first_err = None;
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(e.to_string());
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    });
    println!("{} messages echoed", done.load(Relaxed));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fixed_load: {e}");
            ExitCode::FAILURE
        }
    }
}
