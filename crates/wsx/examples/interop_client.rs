//! The wsx side of the interoperability tests against peers we did not write (Python
//! `websockets`, Node `ws`): a client that sends the vectors of `scripts/interop/vectors.md` to
//! an echo server and checks everything that comes back. `scripts/interop/interop.sh` (step
//! `interop` of `scripts/test.sh`) runs it against each peer's echo server.
//!
//! ```text
//! cargo run --release -p wsx --example interop_client -- ws://127.0.0.1:9001/ \
//!     [--compression on|off] [--context-takeover] [--server-max-window-bits N] \
//!     [--expect-deflate yes|no] [--expect-param NAME[=VALUE]]...
//! ```
//!
//! - `--compression on` (default) offers permessage-deflate with `DeflateConfig::default()`;
//!   `--context-takeover` instead asks for context takeover both ways and compresses every
//!   message (`min_size` 0); `--server-max-window-bits N` asks the server to compress with a
//!   2^N-byte window.
//! - `--expect-deflate` (default: as `--compression`) says whether the server must accept it;
//!   each `--expect-param` names a parameter the server's answer must carry (`NAME` alone: with
//!   any value or none).
//!
//! Checks: every echo is the message sent; deflate was negotiated exactly when expected
//! ([`wsx::WebSocket::is_compressed`]); with deflate, the 1 MiB compressible message crosses
//! the wire in under a quarter of its size both ways (bytes are counted on the socket); a ping
//! gets its pong; a close with 1000 gets the server's close with 1000. Fragmented messages are
//! not sent: wsx has no API to send one yet.
//!
//! Prints what it checks, then `OK: ...` and exits 0, or `FAIL: why` and exits 1.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use wsx::{
    Bytes, ClientBuilder, CloseCode, CloseFrame, DeflateConfig, Message, OpCode, WebSocketConfig,
};
use wsx_proto::handshake::WsUrl;

/// Every wait is bounded, so a silent server fails the run instead of hanging it.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Size of the compressible message.
const BIG_LEN: usize = 1 << 20;

type Fallible<T> = Result<T, String>;

/// A transport that counts the bytes read and written, to see compression on the wire.
struct Counting<S> {
    inner: S,
    read: u64,
    written: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.read += (buf.filled().len() - before) as u64;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

type Ws = wsx::WebSocket<Counting<TcpStream>>;

/// Command-line options.
struct Args {
    url: String,
    compression: bool,
    context_takeover: bool,
    server_max_window_bits: Option<u8>,
    expect_deflate: Option<bool>,
    expect_params: Vec<String>,
}

const USAGE: &str = "usage: interop_client URL [--compression on|off] [--context-takeover] \
                     [--server-max-window-bits N] [--expect-deflate yes|no] \
                     [--expect-param NAME[=VALUE]]...";

fn parse_args() -> Fallible<Args> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        url: String::new(),
        compression: true,
        context_takeover: false,
        server_max_window_bits: None,
        expect_deflate: None,
        expect_params: Vec::new(),
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--compression" => {
                args.compression = match value("--compression")?.as_str() {
                    "on" => true,
                    "off" => false,
                    v => return Err(format!("--compression on|off, not {v:?}")),
                }
            }
            "--context-takeover" => args.context_takeover = true,
            "--server-max-window-bits" => {
                let v = value("--server-max-window-bits")?;
                match v.parse::<u8>() {
                    Ok(bits @ 8..=15) => args.server_max_window_bits = Some(bits),
                    _ => return Err(format!("--server-max-window-bits 8..=15, not {v:?}")),
                }
            }
            "--expect-deflate" => {
                args.expect_deflate = Some(match value("--expect-deflate")?.as_str() {
                    "yes" => true,
                    "no" => false,
                    v => return Err(format!("--expect-deflate yes|no, not {v:?}")),
                })
            }
            "--expect-param" => args.expect_params.push(value("--expect-param")?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ if args.url.is_empty() => args.url = a,
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    if args.url.is_empty() {
        return Err(USAGE.to_string());
    }
    Ok(args)
}

// ---------------------------------------------------------------------------
// vectors (see scripts/interop/vectors.md)

const TEXT: &str = "hello wsx — héllo wörld ✓ 🚀";

fn binary() -> Vec<u8> {
    let mut b: Vec<u8> = (0..512u32).map(|i| (i % 256) as u8).collect();
    b.extend((0..1000u32).map(|i| ((i * 7919 + 13) % 251) as u8));
    b
}

fn big_text() -> String {
    let mut s = String::with_capacity(BIG_LEN + 64);
    let mut i = 0u64;
    while s.len() < BIG_LEN {
        s.push_str(&format!("{{\"seq\":{i},\"msg\":\"interop payload\"}}\n"));
        i += 1;
    }
    s.truncate(BIG_LEN);
    s
}

fn repeat_text(i: usize) -> String {
    let mut s = format!("{i}:");
    s.push_str(
        &r#"{"user":"interop","room":"wsx","text":"the same words again and again"},"#.repeat(40),
    );
    s.truncate(2048);
    s
}

// ---------------------------------------------------------------------------
// checks

/// Run `fut` with the step deadline.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> Fallible<T> {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .map_err(|_| format!("{what}: nothing within {} s", STEP_TIMEOUT.as_secs()))
}

fn describe(msg: &Message) -> String {
    match msg {
        Message::Text(t) => format!("text of {} bytes", t.len()),
        Message::Binary(b) => format!("binary of {} bytes", b.len()),
        Message::Ping(p) => format!("ping of {} bytes", p.len()),
        Message::Pong(p) => format!("pong of {} bytes", p.len()),
        Message::Close(Some(c)) => format!("close {} {:?}", c.code, c.reason.as_str()),
        Message::Close(None) => "close without a code".to_string(),
    }
}

/// The next message, which must arrive in time and without an error.
async fn next(ws: &mut Ws, what: &str) -> Fallible<Message> {
    match bounded(what, ws.recv()).await? {
        Some(Ok(msg)) => Ok(msg),
        Some(Err(e)) => Err(format!("{what}: {e}")),
        None => Err(format!("{what}: the connection ended")),
    }
}

/// Send `msg` and expect the same message back; returns (bytes written, bytes read).
async fn roundtrip(ws: &mut Ws, name: &str, msg: Message) -> Fallible<(u64, u64)> {
    let (r0, w0) = (ws.get_ref().read, ws.get_ref().written);
    bounded(name, ws.send(msg.clone()))
        .await?
        .map_err(|e| format!("{name}: send failed: {e}"))?;
    let got = next(ws, name).await?;
    if got != msg {
        return Err(format!(
            "{name}: echo differs: sent {}, got {}",
            describe(&msg),
            describe(&got)
        ));
    }
    let (written, read) = (ws.get_ref().written - w0, ws.get_ref().read - r0);
    println!(
        "  {name}: echoed ({}; {written} bytes out, {read} in)",
        describe(&got)
    );
    Ok((written, read))
}

/// Send `data` as a fragmented message of 3 frames (text may split a code point between
/// frames) and expect the whole message back.
async fn fragmented(ws: &mut Ws, name: &str, opcode: OpCode, data: &[u8]) -> Fallible<()> {
    let cuts = [0, data.len() / 3 + 1, 2 * data.len() / 3 + 1, data.len()];
    for (i, w) in cuts.windows(2).enumerate() {
        let (a, b) = (w[0].min(data.len()), w[1].min(data.len()));
        let op = if i == 0 { opcode } else { OpCode::Continuation };
        ws.feed_fragment(op, Bytes::copy_from_slice(&data[a..b]), i == 2)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    bounded(name, ws.flush())
        .await?
        .map_err(|e| format!("{name}: send failed: {e}"))?;
    let got = next(ws, name).await?;
    let expected = match opcode {
        OpCode::Text => Message::text(String::from_utf8_lossy(data).into_owned()),
        _ => Message::binary(data.to_vec()),
    };
    if got != expected {
        return Err(format!("{name}: echo differs: got {}", describe(&got)));
    }
    println!("  {name}: echoed ({}, sent in 3 frames)", describe(&got));
    Ok(())
}

/// The permessage-deflate parameters of the server's answer: (name, value) pairs.
fn answer_params(values: &[String]) -> Vec<(String, Option<String>)> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .flat_map(|ext| ext.split(';').skip(1))
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"').to_string()),
            ),
            None => (p.trim().to_ascii_lowercase(), None),
        })
        .collect()
}

fn check_negotiation(
    args: &Args,
    compressed: bool,
    extensions: &[String],
    expect_deflate: bool,
) -> Fallible<()> {
    if compressed != expect_deflate {
        return Err(format!(
            "permessage-deflate {} (server answered {:?})",
            if expect_deflate {
                "was expected but not negotiated"
            } else {
                "was negotiated but not expected"
            },
            extensions
        ));
    }
    let params = answer_params(extensions);
    for want in &args.expect_params {
        let (name, value) = match want.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(v.to_string())),
            None => (want.to_ascii_lowercase(), None),
        };
        let found = params
            .iter()
            .any(|(n, v)| *n == name && (value.is_none() || *v == value));
        if !found {
            return Err(format!(
                "expected {want} in the server's answer, got {extensions:?}"
            ));
        }
    }
    Ok(())
}

async fn run(args: &Args) -> Fallible<String> {
    let url = WsUrl::parse(&args.url).map_err(|e| format!("bad URL {}: {e}", args.url))?;
    let mut config = WebSocketConfig::default();
    if args.compression {
        let mut deflate = DeflateConfig::default();
        if args.context_takeover {
            deflate.server_no_context_takeover = false;
            deflate.client_no_context_takeover = false;
            deflate.min_size = 0;
        }
        if let Some(bits) = args.server_max_window_bits {
            deflate.server_max_window_bits = bits;
        }
        config = config.compression(deflate);
    }
    let expect_deflate = args.expect_deflate.unwrap_or(args.compression);

    let tcp = bounded("connect", TcpStream::connect((url.host.as_str(), url.port)))
        .await?
        .map_err(|e| format!("connect to {}:{}: {e}", url.host, url.port))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let io = Counting {
        inner: tcp,
        read: 0,
        written: 0,
    };
    let (mut ws, response) = bounded(
        "handshake",
        ClientBuilder::new(args.url.clone())
            .config(config)
            .connect_on(io),
    )
    .await?
    .map_err(|e| format!("handshake: {e}"))?;
    let answer = if response.extensions.is_empty() {
        "none".to_string()
    } else {
        response.extensions.join(", ")
    };
    println!("  negotiated: {answer}");
    check_negotiation(
        args,
        ws.is_compressed(),
        &response.extensions,
        expect_deflate,
    )?;
    let deflate = ws.is_compressed();

    roundtrip(&mut ws, "text", Message::text(TEXT)).await?;
    roundtrip(&mut ws, "binary", Message::binary(binary())).await?;
    roundtrip(&mut ws, "empty-text", Message::text("")).await?;
    roundtrip(&mut ws, "empty-binary", Message::binary(Bytes::new())).await?;
    fragmented(&mut ws, "fragmented-text", OpCode::Text, TEXT.as_bytes()).await?;
    fragmented(&mut ws, "fragmented-binary", OpCode::Binary, &binary()).await?;

    let (written, read) = roundtrip(&mut ws, "big-text", Message::text(big_text())).await?;
    let quarter = (BIG_LEN / 4) as u64;
    if deflate && written >= quarter {
        return Err(format!(
            "big-text: deflate negotiated but wsx sent {written} bytes for 1 MiB of compressible text"
        ));
    }
    if deflate && read >= quarter {
        return Err(format!(
            "big-text: deflate negotiated but the echo took {read} bytes on the wire (the server \
             did not compress it, so our inflater was not exercised)"
        ));
    }
    if !deflate && read < BIG_LEN as u64 {
        return Err(format!(
            "big-text: no deflate but the echo took only {read} bytes"
        ));
    }

    for i in 0..5 {
        roundtrip(
            &mut ws,
            &format!("repeat-{i}"),
            Message::text(repeat_text(i)),
        )
        .await?;
    }

    let payload = Bytes::from_static(b"interop-ping");
    bounded("ping", ws.send(Message::Ping(payload.clone())))
        .await?
        .map_err(|e| format!("ping: send failed: {e}"))?;
    match next(&mut ws, "ping").await? {
        Message::Pong(p) if p == payload => println!("  ping: pong received"),
        other => return Err(format!("ping: expected its pong, got {}", describe(&other))),
    }

    bounded(
        "close",
        ws.send(Message::Close(Some(CloseFrame::new(
            CloseCode::NORMAL,
            "interop done",
        )))),
    )
    .await?
    .map_err(|e| format!("close: send failed: {e}"))?;
    match next(&mut ws, "close").await? {
        Message::Close(Some(c)) if c.code == CloseCode::NORMAL => {
            println!(
                "  close: the server answered {} {:?}",
                c.code,
                c.reason.as_str()
            );
        }
        other => {
            return Err(format!(
                "close: sent 1000, the server answered {}",
                describe(&other)
            ));
        }
    }
    // The rest of the close handshake: the server closes TCP, and `recv` ends.
    match bounded("close", ws.recv()).await? {
        None => {}
        Some(Ok(msg)) => {
            return Err(format!(
                "close: {} after the server's close",
                describe(&msg)
            ));
        }
        Some(Err(e)) => return Err(format!("close: {e}")),
    }
    Ok(format!("negotiated: {answer}"))
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("FAIL: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "wsx client (compression {}{}) -> {}",
        if args.compression { "on" } else { "off" },
        if args.context_takeover {
            ", context takeover"
        } else {
            ""
        },
        args.url
    );
    match rt.block_on(run(&args)) {
        Ok(summary) => {
            println!("OK: {summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(why) => {
            println!("FAIL: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}
