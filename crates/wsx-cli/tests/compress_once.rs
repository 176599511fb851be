//! Compress-once broadcast on `wsx serve`: chat rooms and STOMP topics send each broadcast
//! message compressed once per permessage-deflate parameter set, whatever the number of
//! subscribers. Subscribers are wsx clients asking for different server windows (15, 10 and 9
//! bits, which give a 1 KiB message three different compressors), one without deflate, and
//! Python's `websockets` (its default deflate offer; the venv of scripts/interop, or
//! `WSX_TEST_PYTHON`; without it the Python peer is left out, except under `CI=true`). Every
//! subscriber must get every message intact, and `/metrics` must count exactly one compression
//! per message per parameter set.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::{Server, WAIT, wait_metric};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use wsx::{DeflateConfig, Message, WebSocket, WebSocketConfig};

type Ws = WebSocket<wsx::MaybeTlsStream>;

/// Messages broadcast per test.
const COUNT: usize = 20;
/// The length of each message's text (padded).
const PAD: usize = 1000;

/// The text of message `i`: `prefix` and `i`, padded with `x` to [`PAD`] bytes.
fn text(prefix: &str, i: usize) -> String {
    let t = format!("{prefix}{i}:");
    let pad = PAD.saturating_sub(t.len());
    t + &"x".repeat(pad)
}

/// Client settings: `None` offers no deflate, `Some(bits)` asks for `server_max_window_bits`.
fn config(bits: Option<u8>) -> WebSocketConfig {
    let config = WebSocketConfig::default();
    match bits {
        None => config,
        Some(bits) => config.compression(DeflateConfig {
            server_max_window_bits: bits,
            ..DeflateConfig::default()
        }),
    }
}

/// The window sizes the wsx subscribers ask for: 15 twice (one parameter set), 10, 9, and no
/// deflate. A 1 KiB message needs an 11-bit window, so 15 and the Python peer's default share
/// one compressor; 10 and 9 make two more.
const SUBSCRIBERS: [Option<u8>; 5] = [Some(15), Some(15), Some(10), Some(9), None];
/// Distinct parameter sets among them.
const PARAMETER_SETS: u64 = 3;

async fn open(server: &Server, path: &str, bits: Option<u8>, protocol: Option<&str>) -> Ws {
    let mut builder = wsx::ClientBuilder::new(server.ws_url(path)).config(config(bits));
    if let Some(p) = protocol {
        builder = builder.subprotocol(p);
    }
    let (ws, _) = tokio::time::timeout(WAIT, builder.connect())
        .await
        .expect("connect in time")
        .expect("handshake");
    assert_eq!(ws.is_compressed(), bits.is_some());
    ws
}

/// The Python `websockets` peer, if its interpreter is there.
fn python() -> Option<PathBuf> {
    let path = std::env::var_os("WSX_TEST_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/interop-venv/bin/python"),
        PathBuf::from,
    );
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "no Python websockets peer at {}",
        path.display()
    );
    eprintln!("skipping the Python peer: no {}", path.display());
    None
}

/// A running `scripts/interop/broadcast_peer.py`.
struct PyPeer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PyPeer {
    /// Start it and wait until it joined or subscribed; checks deflate was negotiated.
    async fn start(python: &PathBuf, mode: &str, url: &str, prefix: &str) -> PyPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/interop/broadcast_peer.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([mode, url, &COUNT.to_string(), prefix, &PAD.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the Python peer");
        let stdout = child.stdout.take().expect("piped");
        let mut peer = PyPeer {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = peer.line().await;
        assert!(
            ready.starts_with("ready permessage-deflate"),
            "the Python peer: {ready}"
        );
        peer
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the Python peer answers in time")
            .expect("read its stdout")
            .unwrap_or_default()
    }

    /// Its verdict: it got every message intact.
    async fn finish(mut self) {
        let verdict = self.line().await;
        assert_eq!(verdict, format!("ok {COUNT}"), "the Python peer");
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exit in time")
            .expect("wait");
        assert!(status.success());
    }
}

/// Once every subscriber got every message (the Python peer `py` says so too):
/// `{prefix}_broadcast_*` counted every delivery to the deflate subscribers as shared, none as
/// compressed by the connection itself, and one compression per message per parameter set.
async fn expect_compress_once(server: &Server, prefix: &str, py: Option<PyPeer>) {
    let deflated = 4 + u64::from(py.is_some());
    if let Some(py) = py {
        py.finish().await;
    }
    let messages = COUNT as u64;
    let shared = format!("{prefix}_broadcast_deliveries_total{{compression=\"shared\"}}");
    wait_metric(server, &shared, |n| n == messages * deflated).await;
    let compressions = format!("{prefix}_broadcast_compressions_total");
    assert_eq!(
        server.metric_value(&compressions).await,
        Some(messages * PARAMETER_SETS)
    );
    let own = format!("{prefix}_broadcast_deliveries_total{{compression=\"own\"}}");
    assert_eq!(server.metric_value(&own).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_broadcast_is_compressed_once_per_parameter_set() {
    let server = Server::start(&[]);
    let path = "/ws/chat/fanout";
    let mut members = Vec::new();
    for (i, bits) in SUBSCRIBERS.into_iter().enumerate() {
        let mut ws = open(&server, path, bits, None).await;
        let join = json!({"type": "join", "name": format!("m{i}")});
        ws.send(Message::text(join.to_string()))
            .await
            .expect("join");
        while !common::next_text(&mut ws).await.contains("\"welcome\"") {}
        members.push(ws);
    }
    let python = python();
    let mut py = None;
    if let Some(python) = &python {
        py = Some(PyPeer::start(python, "chat", &server.ws_url(path), "room-").await);
    }
    // The member without deflate sends; everyone (the sender too) gets every message.
    for i in 0..COUNT {
        let say = json!({"type": "message", "text": text("room-", i)});
        let sender = members.last_mut().expect("members");
        sender
            .send(Message::text(say.to_string()))
            .await
            .expect("say");
    }
    for ws in &mut members {
        let mut i = 0;
        while i < COUNT {
            let event: Value = serde_json::from_str(&common::next_text(ws).await).expect("JSON");
            if event["type"] == "message" {
                assert_eq!(event["text"], text("room-", i));
                i += 1;
            }
        }
    }
    expect_compress_once(&server, "wsx_chat", py).await;
}

/// Send one STOMP frame as a text message.
async fn stomp_send(ws: &mut Ws, frame: &str) {
    ws.send(Message::text(frame.to_owned()))
        .await
        .expect("send a STOMP frame");
}

/// The next STOMP frame (heart-beats skipped).
async fn stomp_frame(ws: &mut Ws) -> String {
    loop {
        let t = common::next_text(ws).await;
        if t != "\n" {
            return t;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_message_is_compressed_once_per_parameter_set() {
    let server = Server::start(&[]);
    let mut subscribers = Vec::new();
    for (i, bits) in SUBSCRIBERS.into_iter().enumerate() {
        let mut ws = open(&server, "/stomp", bits, Some("v12.stomp")).await;
        stomp_send(&mut ws, "CONNECT\naccept-version:1.2\nhost:localhost\n\n\0").await;
        assert!(stomp_frame(&mut ws).await.starts_with("CONNECTED\n"));
        let subscribe =
            format!("SUBSCRIBE\nid:s{i}\ndestination:/topic/fanout\nreceipt:r{i}\n\n\0");
        stomp_send(&mut ws, &subscribe).await;
        assert!(stomp_frame(&mut ws).await.starts_with("RECEIPT\n"));
        subscribers.push(ws);
    }
    let python = python();
    let mut py = None;
    if let Some(python) = &python {
        py = Some(PyPeer::start(python, "stomp", &server.ws_url("/stomp"), "topic-").await);
    }
    let mut publisher = open(&server, "/stomp", None, Some("v12.stomp")).await;
    stomp_send(
        &mut publisher,
        "CONNECT\naccept-version:1.2\nhost:localhost\n\n\0",
    )
    .await;
    assert!(stomp_frame(&mut publisher).await.starts_with("CONNECTED\n"));
    for i in 0..COUNT {
        let send = format!("SEND\ndestination:/topic/fanout\n\n{}\0", text("topic-", i));
        stomp_send(&mut publisher, &send).await;
    }
    for (n, ws) in subscribers.iter_mut().enumerate() {
        for i in 0..COUNT {
            let frame = stomp_frame(ws).await;
            let (head, body) = frame.split_once("\n\n").expect("a STOMP frame");
            assert!(head.starts_with("MESSAGE\n"), "{head}");
            assert!(
                head.lines().any(|l| l == format!("subscription:s{n}")),
                "{head}"
            );
            assert_eq!(body, format!("{}\0", text("topic-", i)));
        }
    }
    expect_compress_once(&server, "wsx_stomp", py).await;
    assert_eq!(
        server
            .metric_value("wsx_stomp_broadcast_deliveries_total{compression=\"none\"}")
            .await,
        Some(COUNT as u64)
    );
}
