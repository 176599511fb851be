//! Every echo server of the suite, started as `scripts/bench.sh` starts it, really echoes:
//! text and binary messages come back identical, permessage-deflate is negotiated exactly by
//! the servers that support it, and `idle_clients` opens, measures and reports connections.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use wsx::{ClientBuilder, CloseCode, DeflateConfig, Message, WebSocketConfig};

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `bin` on an ephemeral port and read the address from its first line of output.
fn start(bin: &str, deflate: bool) -> Server {
    let mut cmd = Command::new(bin);
    cmd.arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if deflate {
        cmd.arg("--deflate");
    }
    let mut child = cmd.spawn().expect("start the server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { child, addr }
}

const SERVERS: [(&str, &str, bool); 5] = [
    ("wsx", env!("CARGO_BIN_EXE_echo_wsx"), true),
    (
        "tokio-tungstenite",
        env!("CARGO_BIN_EXE_echo_tungstenite"),
        false,
    ),
    (
        "tokio-websockets",
        env!("CARGO_BIN_EXE_echo_tokio_websockets"),
        false,
    ),
    (
        "fastwebsockets",
        env!("CARGO_BIN_EXE_echo_fastwebsockets"),
        false,
    ),
    ("sockudo-ws", env!("CARGO_BIN_EXE_echo_sockudo"), true),
];

async fn check_echo(name: &str, addr: &str, offer_deflate: bool, expect_deflate: bool) {
    let mut config = WebSocketConfig::default();
    if offer_deflate {
        config = config.compression(DeflateConfig::default());
    }
    let (mut ws, _) = ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{name}: connect: {e}"));
    assert_eq!(ws.is_compressed(), expect_deflate, "{name}: deflate");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let text = "hello from the bench suite ".repeat(40);
    for msg in [
        Message::text("hi"),
        Message::text(text),
        Message::binary(big),
        Message::binary(vec![0u8; 0]),
    ] {
        ws.send(msg.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: send: {e}"));
        let echo = ws
            .recv()
            .await
            .unwrap_or_else(|| panic!("{name}: closed"))
            .unwrap_or_else(|e| panic!("{name}: recv: {e}"));
        assert_eq!(echo, msg, "{name}: echo differs");
    }
    // How each server finishes the close handshake is not what the suite measures.
    let _ = ws.close(CloseCode::NORMAL, "").await;
}

#[tokio::test]
async fn every_server_echoes_text_and_binary() {
    for (name, bin, _) in SERVERS {
        let server = start(bin, false);
        check_echo(name, &server.addr, false, false).await;
        // Without --deflate nobody negotiates compression, even when offered.
        check_echo(name, &server.addr, true, false).await;
    }
}

#[tokio::test]
async fn deflate_is_negotiated_by_the_servers_that_support_it() {
    for (name, bin, supports) in SERVERS {
        let server = start(bin, true);
        check_echo(name, &server.addr, true, supports).await;
        check_echo(name, &server.addr, false, false).await;
    }
}

#[test]
fn idle_clients_measures_memory_and_set_up() {
    let server = start(env!("CARGO_BIN_EXE_echo_wsx"), true);
    let pid = server.child.id().to_string();
    let run = |extra: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_idle_clients"))
            .arg(&server.addr)
            .args(["--server-pid", &pid])
            .args(extra)
            .output()
            .expect("run idle_clients");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    let idle = run(&["--connections", "200", "--deflate"]);
    assert_eq!(idle["opened"], 200);
    assert_eq!(idle["failed"], 0);
    assert_eq!(idle["deflate_negotiated"], 200);
    assert!(idle["server_rss_after"].as_u64() > Some(0));
    let churn = run(&["--churn", "0.5", "--concurrency", "4"]);
    assert!(churn["handshakes"].as_u64() > Some(0), "{churn}");
    assert_eq!(churn["failed"], 0);
    assert!(churn["server_cpu_ns_per_handshake"].as_f64() > Some(0.0));
}
