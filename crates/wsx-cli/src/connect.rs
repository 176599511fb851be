//! `wsx connect URL`: a command-line WebSocket client, like wscat or websocat.
//!
//! Where it sits in the `wsx` binary: `main.rs` parses [`ConnectArgs`] and calls [`run`], which
//! opens the connection with [`wsx::ClientBuilder`] (over HTTP/2 with `--http2`:
//! [`wsx::http2::Http2Client`]) and runs one `tokio::select!` loop over
//! three event sources: messages from the server ([`wsx::WebSocket::recv`], which is
//! cancel-safe and also writes whatever was queued), complete lines from stdin (turned into
//! messages or `/` commands by [`line`]) and the optional ping timer. Messages to send are only
//! queued ([`wsx::WebSocket::feed`]); the next `recv` writes them, so the loop never blocks on a
//! write while the server waits for us to read. The loop ends when the connection is closed,
//! and how it was closed becomes the process exit code ([`Exit`]).
//!
//! Messages go to stdout (`< ` received, `> ` sent, the latter only in interactive mode);
//! events (connected, pongs, close codes, errors) go to stderr, prefixed with `* `.

mod line;

use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use wsx::HandshakeError;
use wsx::http2::{Http2Client, Http2Limits};
use wsx::{
    ClientBuilder, ClientResponse, CloseCode, CloseFrame, DeflateConfig, Message, WebSocket,
    WebSocketConfig,
};

use line::Action;

/// How long to wait for the TCP connection and the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Queued output above which the loop waits for the socket before reading more input.
const MAX_QUEUED: usize = 1 << 20;

const CONNECT_HELP: &str = "\
Input: each line of stdin is sent as one message (without its line ending). Lines starting
with / are commands: /ping [data], /close [code [reason]], /help; start a line with // to send
a line that begins with /.

Output: received messages on stdout as `< message` (binary ones in hex or base64), sent ones
echoed as `> message` in interactive mode; events (pongs with their round-trip time, the
server's close code and reason, errors) on stderr as `* event`.

At the end of stdin: interactive mode closes at once with 1000; with -n it first waits --wait
seconds for replies.

Exit codes:
  0  the connection was closed with code 1000 (or a close frame without a code)
  1  usage or connect error: bad option value, TCP connect failed, handshake refused (the HTTP
     status is printed)
  2  the connection ended abnormally: no close handshake, I/O or protocol error, timeout
  3  the server closed (or answered our /close) with a code other than 1000";

/// Options of `wsx connect`.
#[derive(Debug, Clone, Args)]
#[command(after_help = CONNECT_HELP)]
pub struct ConnectArgs {
    /// WebSocket URL: ws://host[:port]/path or wss://host[:port]/path
    pub url: String,
    /// Trust this CA certificate (PEM file) for wss://, besides the public roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// Do not verify the server's certificate (wss://). For testing only.
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Add a header to the handshake request, as 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Offer a subprotocol (repeatable, in order of preference).
    #[arg(short = 'p', long = "subprotocol", value_name = "PROTOCOL")]
    pub subprotocols: Vec<String>,
    /// Send an Origin header.
    #[arg(short = 'o', long)]
    pub origin: Option<String>,
    /// Send stdin lines as binary messages instead of text.
    #[arg(short = 'b', long)]
    pub binary: bool,
    /// How to print received binary messages.
    #[arg(long, value_enum, default_value_t = BinaryFormat::Hex)]
    pub binary_format: BinaryFormat,
    /// Send a ping every SECS seconds and print the round-trip time of each pong.
    #[arg(long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub ping_interval: Option<Duration>,
    /// Offer permessage-deflate (RFC 7692) in the handshake.
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    pub compression: OnOff,
    /// Non-interactive mode for pipes and scripts: send every stdin line, wait --wait seconds
    /// for replies, then close with 1000. Sent messages are not echoed.
    #[arg(short = 'n', long)]
    pub no_interactive: bool,
    /// With -n: how long to wait for replies after the end of stdin.
    #[arg(short = 'w', long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub wait: Duration,
    /// Open the WebSocket over HTTP/2 (RFC 8441): prior knowledge (h2c) for ws://, ALPN h2 for
    /// wss://. Fails (exit 1) when the server does not offer WebSockets over HTTP/2.
    #[arg(long)]
    pub http2: bool,
}

/// How received binary messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BinaryFormat {
    /// Lower-case hexadecimal.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// The exit status of `wsx connect` (and, for the first three, `wsx bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Closed with 1000 (or without a code).
    Normal = 0,
    /// Usage error, or the connection could not be opened.
    Failure = 1,
    /// The connection ended without a close handshake, or with an I/O or protocol error.
    Abnormal = 2,
    /// The server closed with a code other than 1000.
    CloseCode = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Parse a number of seconds (fractions allowed, zero allowed).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a usable duration"))
}

/// Parse a number of seconds greater than zero.
pub fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    let d = parse_secs(s)?;
    if d.is_zero() {
        return Err("must be greater than 0".into());
    }
    Ok(d)
}

/// Split a `Name: value` header argument.
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("header {h:?} is not in the form 'Name: value'"))?;
    let name = name.trim();
    let valid = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!("header name {name:?} is not a valid HTTP token"));
    }
    if value.contains(['\r', '\n']) {
        return Err(format!("header {name} has a line break in its value"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Run `wsx connect` to the end and return its exit status.
pub fn run(args: ConnectArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsx connect: cannot start the runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let exit = rt.block_on(connect_and_run(&args));
    // The stdin reader may still be blocked in a read on a terminal: don't wait for it.
    rt.shutdown_background();
    exit.into()
}

/// Build the client from the options.
fn client(args: &ConnectArgs) -> Result<ClientBuilder, String> {
    let mut config = WebSocketConfig::default();
    if args.compression == OnOff::On {
        config = config.compression(DeflateConfig::default());
    }
    let mut builder = ClientBuilder::new(args.url.clone()).config(config);
    if let Some(origin) = &args.origin {
        builder = builder.origin(origin.clone());
    }
    for p in &args.subprotocols {
        builder = builder.subprotocol(p.clone());
    }
    for h in &args.headers {
        let (name, value) = parse_header(h)?;
        builder = builder.header(name, value);
    }
    if args.ca.is_some() || args.insecure {
        let mut tls = wsx::tls::ClientTlsConfig::new();
        if let Some(ca) = &args.ca {
            tls = tls.add_ca_pem_file(ca);
        }
        if args.insecure {
            tls = tls.insecure(true);
        }
        builder = builder.tls(tls.build().map_err(|e| e.to_string())?);
    }
    Ok(builder)
}

async fn connect_and_run(args: &ConnectArgs) -> Exit {
    let builder = match client(args) {
        Ok(b) => b,
        Err(msg) => {
            eprintln!("wsx connect: {msg}");
            return Exit::Failure;
        }
    };
    if args.http2 {
        let opened = async {
            let client = Http2Client::connect(&builder, &Http2Limits::default()).await?;
            // The connection lives as long as the stream: the handle may go.
            client.open(builder).await
        };
        match opened_in_time(args, opened).await {
            Some((ws, response)) => run_session(args, ws, &response).await,
            None => Exit::Failure,
        }
    } else {
        match opened_in_time(args, builder.connect()).await {
            Some((ws, response)) => run_session(args, ws, &response).await,
            None => Exit::Failure,
        }
    }
}

/// The connection `open` makes within [`CONNECT_TIMEOUT`]; `None` once the failure is printed.
async fn opened_in_time<S>(
    args: &ConnectArgs,
    open: impl Future<Output = wsx::Result<(WebSocket<S>, ClientResponse)>>,
) -> Option<(WebSocket<S>, ClientResponse)> {
    match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
        Ok(Ok(pair)) => Some(pair),
        Ok(Err(e)) => {
            match e.as_handshake() {
                Some(HandshakeError::Rejected { status, reason }) => {
                    eprintln!("wsx connect: handshake refused: HTTP {status} {reason}");
                }
                Some(h) => eprintln!("wsx connect: handshake with {} failed: {h}", args.url),
                None => eprintln!("wsx connect: cannot connect to {}: {e}", args.url),
            }
            None
        }
        Err(_) => {
            eprintln!(
                "wsx connect: cannot connect to {}: no answer within {} s",
                args.url,
                CONNECT_TIMEOUT.as_secs()
            );
            None
        }
    }
}

/// Say what was negotiated, then run the session.
async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(
    args: &ConnectArgs,
    ws: WebSocket<S>,
    response: &ClientResponse,
) -> Exit {
    if !args.no_interactive {
        let mut info = format!("connected to {}", args.url);
        if args.http2 {
            info.push_str(" over HTTP/2");
        }
        if let Some(p) = &response.subprotocol {
            info.push_str(&format!(", subprotocol {p}"));
        }
        if ws.is_compressed() {
            info.push_str(", permessage-deflate");
        }
        event(&format!("{info} ({})", line::HELP));
    }
    Session::new(args, ws).run().await
}

/// Print an event line on stderr.
fn event(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "* {text}");
}

/// Print a message line on stdout. A closed stdout (`| head`) is not an error worth stopping
/// for: the connection still closes properly.
fn output(marker: &str, text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{marker}{text}");
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Strip a trailing `\n` or `\r\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One connection's state while the loop runs.
struct Session<'a, S> {
    args: &'a ConnectArgs,
    ws: WebSocket<S>,
    /// Pings sent and not yet answered: payload and when it was sent.
    pings: VecDeque<(Bytes, Instant)>,
    ping_seq: u64,
    /// The server's close frame, once it arrived (`Some(None)`: a close without a code).
    server_close: Option<Option<CloseFrame>>,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    fn new(args: &'a ConnectArgs, ws: WebSocket<S>) -> Self {
        Session {
            args,
            ws,
            pings: VecDeque::new(),
            ping_seq: 0,
            server_close: None,
        }
    }

    /// Whether a close frame was sent or received: nothing more may be sent.
    fn closing(&self) -> bool {
        self.ws.connection().is_close_sent() || self.server_close.is_some()
    }

    async fn run(mut self) -> Exit {
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        let mut stdin_open = true;
        let mut wait_until: Option<Instant> = None;
        let mut ticker = self.args.ping_interval.map(|every| {
            let mut t = tokio::time::interval_at(Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        let failure = loop {
            let open = !self.closing();
            tokio::select! {
                msg = self.ws.recv() => match msg {
                    Some(Ok(msg)) => self.on_message(msg),
                    Some(Err(e)) => break Some(e),
                    None => break None,
                },
                read = stdin.read_until(b'\n', &mut line), if stdin_open && open => {
                    match read {
                        Ok(0) => {
                            stdin_open = false;
                            if self.args.no_interactive {
                                wait_until = Some(Instant::now() + self.args.wait);
                            } else {
                                self.close(1000, "");
                            }
                        }
                        Ok(_) => {
                            self.on_line(trim_eol(&line));
                            line.clear();
                        }
                        Err(e) => {
                            event(&format!("cannot read stdin: {e}"));
                            stdin_open = false;
                            self.close(1000, "");
                        }
                    }
                },
                () = sleep_until(wait_until), if open && wait_until.is_some() => {
                    self.close(1000, "");
                },
                () = tick(&mut ticker), if open => {
                    self.ping_seq += 1;
                    let payload = format!("wsx-{}", self.ping_seq).into_bytes();
                    self.ping(payload);
                },
            }
            if self.ws.buffered_amount() > MAX_QUEUED
                && let Err(e) = self.ws.flush().await
            {
                break Some(e);
            }
        };
        self.finish(failure)
    }

    /// The exit status once the loop ended, with `failure` the error that ended it.
    fn finish(&self, failure: Option<wsx::Error>) -> Exit {
        match (&self.server_close, failure) {
            (Some(frame), failure) => {
                if let Some(e) = failure {
                    // The close frames were exchanged; only the TCP teardown went wrong.
                    event(&format!("after the close handshake: {e}"));
                }
                match frame {
                    Some(f) if f.code != CloseCode::NORMAL => Exit::CloseCode,
                    _ => Exit::Normal,
                }
            }
            (None, Some(e)) => {
                match &e {
                    wsx::Error::Protocol(_) => {
                        event(&format!("protocol error, connection closed: {e}"))
                    }
                    _ => event(&format!("connection closed abnormally: {e}")),
                }
                Exit::Abnormal
            }
            (None, None) => {
                event("connection closed abnormally: no close frame from the server");
                Exit::Abnormal
            }
        }
    }

    fn on_message(&mut self, msg: Message) {
        match msg {
            Message::Text(t) => output("< ", t.as_str()),
            Message::Binary(b) => output("< ", &self.format_binary(&b)),
            Message::Ping(p) => event(&format!("ping from server{}", describe_payload(&p))),
            Message::Pong(p) => self.on_pong(&p),
            Message::Close(frame) => {
                let text = match &frame {
                    Some(f) if f.reason.is_empty() => format!("close from server: {}", f.code),
                    Some(f) => format!("close from server: {} {}", f.code, f.reason),
                    None => "close from server: no status code".to_string(),
                };
                event(&text);
                self.server_close = Some(frame);
            }
        }
    }

    fn on_pong(&mut self, payload: &[u8]) {
        match self.pings.iter().position(|(p, _)| p.as_ref() == payload) {
            Some(i) => {
                let sent = self.pings[i].1;
                // Pongs answer pings in order: older pings without a pong are not coming back.
                self.pings.drain(..=i);
                let rtt = sent.elapsed().as_secs_f64() * 1000.0;
                event(&format!(
                    "pong{}: rtt {rtt:.3} ms",
                    describe_payload(payload)
                ));
            }
            None => event(&format!("unsolicited pong{}", describe_payload(payload))),
        }
    }

    fn format_binary(&self, bytes: &[u8]) -> String {
        match self.args.binary_format {
            BinaryFormat::Hex => hex(bytes),
            BinaryFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        match line::parse(line) {
            Action::Send(bytes) => self.send(bytes),
            Action::Ping(data) => self.ping(data),
            Action::Close { code, reason } => self.close(code, &reason),
            Action::Help => event(line::HELP),
            Action::Invalid(why) => event(&why),
        }
    }

    fn send(&mut self, bytes: Vec<u8>) {
        let interactive = !self.args.no_interactive;
        let msg = if self.args.binary {
            if interactive {
                output("> ", &self.format_binary(&bytes));
            }
            Message::binary(bytes)
        } else {
            match String::from_utf8(bytes) {
                Ok(s) => {
                    if interactive {
                        output("> ", &s);
                    }
                    Message::text(s)
                }
                Err(_) => {
                    event("not sent: the line is not valid UTF-8 (use --binary for raw bytes)");
                    return;
                }
            }
        };
        if let Err(e) = self.ws.feed(msg) {
            event(&format!("not sent: {e}"));
        }
    }

    fn ping(&mut self, data: Vec<u8>) {
        let data = Bytes::from(data);
        match self.ws.feed(Message::Ping(data.clone())) {
            Ok(()) => self.pings.push_back((data, Instant::now())),
            Err(e) => event(&format!("ping not sent: {e}")),
        }
    }

    fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame::new(code, reason);
        if let Err(e) = self.ws.feed(Message::Close(Some(frame))) {
            event(&format!("close not sent: {e}"));
        }
    }
}

/// ` (N bytes: text)` for a control frame payload, or nothing when it is empty.
fn describe_payload(p: &[u8]) -> String {
    if p.is_empty() {
        return String::new();
    }
    match std::str::from_utf8(p) {
        Ok(s) => format!(" {s:?}"),
        Err(_) => format!(" 0x{}", hex(p)),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Authorization: Bearer x:y ").unwrap(),
            ("Authorization".into(), "Bearer x:y".into())
        );
        assert_eq!(
            parse_header("X-Empty:").unwrap(),
            ("X-Empty".into(), String::new())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("bad name: v").is_err());
        assert!(parse_header("X: a\r\nEvil: 1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_secs("0").unwrap(), Duration::ZERO);
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("abc").is_err());
        assert!(parse_positive_secs("0").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(hex(b"\x00\xffhi"), "00ff6869");
        assert_eq!(trim_eol(b"a\r\n"), b"a");
        assert_eq!(trim_eol(b"a\n"), b"a");
        assert_eq!(trim_eol(b"a"), b"a");
        assert_eq!(describe_payload(b""), "");
        assert_eq!(describe_payload(b"x"), " \"x\"");
        assert_eq!(describe_payload(b"\xff"), " 0xff");
    }
}
