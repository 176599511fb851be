//! Shared by the `wsx serve` end-to-end tests: the real binary on an ephemeral port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait, so that a broken server fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(15);

/// A `wsx serve` process, killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// The bound address.
    pub addr: SocketAddr,
    /// Kept open: the server's stdout stays a live pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Start `wsx serve` on an ephemeral port and read the bound address from its stdout.
    pub fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsx"))
            .args(["--log-level", "error", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wsx serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("wsx serve exited before listening")
                .expect("read stdout");
            let bound = line
                .strip_prefix("listening on http://")
                .or_else(|| line.strip_prefix("listening on https://"));
            if let Some(addr) = bound {
                break addr.trim().parse().expect("a socket address");
            }
        };
        Server {
            child: Some(child),
            addr,
            _stdout: lines,
        }
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Wait for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let wait = tokio::task::spawn_blocking(move || child.wait());
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the server did not exit in time")
            .expect("join")
            .expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A plain HTTP response: status, head (lowercased) and body.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The head, lowercased.
    pub head: String,
    /// The body.
    pub body: String,
}

/// Send a plain HTTP request and read the whole response (the server closes it).
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> Response {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}
