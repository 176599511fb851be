//! Shared by the `wsx serve` end-to-end tests: the real binary on an ephemeral port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

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
