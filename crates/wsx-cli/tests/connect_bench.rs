//! End-to-end tests of `wsx connect` and `wsx bench`: the real binary against servers built
//! with the `wsx` library on 127.0.0.1 ephemeral ports, in this process.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsx::{Accept, CloseCode, Reject, WebSocket, WebSocketConfig};

/// How long one run of the binary may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What a test server does with each connection.
#[derive(Clone, Copy)]
enum Server {
    /// Echo every data message.
    Echo,
    /// Refuse the handshake with 404.
    NotFound,
    /// Accept, then close with 4001 "go away" at once.
    CloseWith4001,
    /// Accept, then drop the TCP connection without a close frame.
    Drop,
}

/// Start a server on a 127.0.0.1 ephemeral port, on its own thread; it runs until the test
/// process exits.
fn start(kind: Server) -> SocketAddr {
    spawn_server(move |tcp, _| serve(tcp, kind))
}

/// Accept connections on a 127.0.0.1 ephemeral port, on a thread of its own, and run
/// `serve_one` for each; returns the address.
fn spawn_server<F, Fut>(serve_one: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve_one(tcp, peer));
            }
        });
    });
    addr
}

/// Echo every data message until the connection ends.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    while let Some(Ok(msg)) = ws.recv().await {
        if msg.is_data() && ws.send(msg).await.is_err() {
            break;
        }
    }
}

async fn serve(tcp: tokio::net::TcpStream, kind: Server) {
    let config = WebSocketConfig::default().compression(wsx::DeflateConfig::default());
    let accepted = wsx::accept_with(tcp, &config, |_| match kind {
        Server::NotFound => Err(Reject::new(404, "no such endpoint")),
        _ => Ok(Accept::default()),
    })
    .await;
    let Ok(mut ws) = accepted else { return };
    match kind {
        Server::Echo => echo(ws).await,
        Server::CloseWith4001 => {
            let _ = ws.close(CloseCode(4001), "go away").await;
        }
        Server::Drop | Server::NotFound => drop(ws),
    }
}

/// Start a WebSocket-over-HTTP/2 echo server (h2c, RFC 8441) on a 127.0.0.1 ephemeral port,
/// on its own thread; `/echo` only (404 elsewhere). Also returns the count of TCP connections
/// accepted.
fn start_http2() -> (SocketAddr, Arc<AtomicUsize>) {
    let server = wsx::http2::Http2Server::new()
        .config(WebSocketConfig::default().compression(wsx::DeflateConfig::default()));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let addr = spawn_server(move |tcp, peer| {
        counted.fetch_add(1, Ordering::SeqCst);
        let server = server.clone();
        async move {
            let route = |info: &wsx::ConnectionInfo| match info.request.path() {
                "/echo" => Ok(|ws, _| echo(ws)),
                _ => Err(Reject::new(404, "no such endpoint")),
            };
            let _ = server.serve_connection(tcp, peer, route).await;
        }
    });
    (addr, accepted)
}

/// Run `wsx ARGS` with `stdin` as its input; fails the test if it runs past [`RUN_LIMIT`].
fn wsx(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsx"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsx");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => out.expect("wait for wsx"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("wsx {args:?} did not finish within {RUN_LIMIT:?}");
        }
    }
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/echo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn piped_lines_are_echoed_and_exit_0() {
    let addr = start(Server::Echo);
    let out = wsx(
        &["connect", "-n", "--wait", "0.5", &url(addr)],
        "hello\nworld\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(stdout, "< hello\n< world\n", "stderr: {stderr}");
    assert!(stderr.contains("close from server: 1000"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn http2_lines_are_echoed_over_an_extended_connect() {
    let (addr, _) = start_http2();
    let command = format!(
        "connect -n --wait 0.5 --http2 --compression on {}",
        url(addr)
    );
    let out = wsx(&command.split(' ').collect::<Vec<_>>(), "hello\nworld\n");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(stdout, "< hello\n< world\n", "stderr: {stderr}");
    assert!(stderr.contains("close from server: 1000"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");

    let out = wsx(
        &["connect", "-n", "--http2", &format!("ws://{addr}/none")],
        "",
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
}

#[test]
fn http2_to_an_http1_server_fails_with_exit_1() {
    let addr = start(Server::Echo);
    let out = wsx(&["connect", "-n", "--http2", &url(addr)], "hello\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
}

#[test]
fn binary_mode_prints_hex_or_base64() {
    let addr = start(Server::Echo);
    let out = wsx(
        &["connect", "-n", "--wait", "0.5", "--binary", &url(addr)],
        "hi\n\n",
    );
    assert_eq!(text(&out.stdout), "< 6869\n< \n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));

    let out = wsx(
        &[
            "connect",
            "-n",
            "--wait",
            "0.5",
            "--binary",
            "--binary-format",
            "base64",
            "--compression",
            "on",
            &url(addr),
        ],
        "hello\n",
    );
    assert_eq!(text(&out.stdout), "< aGVsbG8=\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn close_command_reports_the_echoed_code_and_exits_3() {
    let addr = start(Server::Echo);
    let out = wsx(
        &["connect", "-n", &url(addr)],
        "before\n/close 4000 bye\nafter\n",
    );
    let stderr = text(&out.stderr);
    // Nothing after /close is sent.
    assert_eq!(text(&out.stdout), "< before\n", "{stderr}");
    assert!(stderr.contains("close from server: 4000"), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
}

#[test]
fn ping_command_prints_the_round_trip() {
    let addr = start(Server::Echo);
    let out = wsx(
        &["connect", "-n", "--wait", "0.5", &url(addr)],
        "/ping abc\n",
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("pong \"abc\": rtt "), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn refused_handshake_exits_1_with_the_status() {
    let addr = start(Server::NotFound);
    let out = wsx(&["connect", "-n", &url(addr)], "hello\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[test]
fn bad_header_exits_1() {
    let addr = start(Server::Echo);
    let out = wsx(&["connect", "-n", "-H", "no colon", &url(addr)], "");
    assert!(text(&out.stderr).contains("Name: value"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn server_close_code_and_abnormal_end() {
    let addr = start(Server::CloseWith4001);
    let out = wsx(&["connect", "-n", &url(addr)], "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("close from server: 4001 go away"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");

    let addr = start(Server::Drop);
    let out = wsx(&["connect", "-n", &url(addr)], "");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("abnormally"), "{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}

/// The JSON report of a `wsx bench --json` run that exited 0, exchanged messages and
/// counted no error.
fn completed_run(out: &Output) -> serde_json::Value {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(v["messages"].as_u64().unwrap_or(0) > 0, "{v}");
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    v
}

#[test]
fn bench_reports_json() {
    let addr = start(Server::Echo);
    let out = wsx(
        &[
            "bench",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--connections",
            "4",
            "--size",
            "64",
            "--binary",
            "--json",
            &url(addr),
        ],
        "",
    );
    let v = completed_run(&out);
    assert_eq!(v["connections"].as_u64(), Some(4), "{v}");
    assert_eq!(v["size"].as_u64(), Some(64), "{v}");
    assert_eq!(v["mode"].as_str(), Some("binary"), "{v}");
    assert_eq!(
        v["bytes"].as_u64(),
        v["messages"].as_u64().map(|m| m * 2 * 64),
        "{v}"
    );
    assert!(v["msgs_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
    assert!(
        v["client_cpu_ns_per_msg"].as_f64().unwrap_or(0.0) > 0.0,
        "{v}"
    );
    let lat = &v["latency_us"];
    let p50 = lat["p50"].as_f64().unwrap_or(0.0);
    assert!(
        p50 > 0.0 && p50 <= lat["p99"].as_f64().unwrap_or(0.0),
        "{v}"
    );
    assert!(lat["p99"].as_f64() <= lat["max"].as_f64(), "{v}");
}

#[test]
fn bench_over_http2_multiplexes_one_connection_per_thread() {
    let (addr, tcp_connections) = start_http2();
    let command = format!("bench -d 0.5 -w 0 -c 8 -t 2 --http2 --json {}", url(addr));
    let out = wsx(&command.split(' ').collect::<Vec<_>>(), "");
    let v = completed_run(&out);
    assert_eq!(v["connections"].as_u64(), Some(8), "{v}");
    assert_eq!(tcp_connections.load(Ordering::SeqCst), 2, "one per thread");
}

#[test]
fn bench_measures_a_server_pid_and_fails_without_a_server() {
    let addr = start(Server::Echo);
    // This test process is the server: its CPU time is what --server-pid reports.
    let pid = std::process::id().to_string();
    let out = wsx(
        &[
            "bench",
            "-d",
            "0.5",
            "-w",
            "0",
            "-c",
            "2",
            "--threads",
            "2",
            "--server-pid",
            &pid,
            &url(addr),
        ],
        "",
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("msg/s"), "{stdout}");
    // "(pid N)", or "(pid N, K % in the kernel)" once a clock tick fell in the window.
    assert!(stdout.contains(&format!("(pid {pid}")), "{stdout}");

    // Nothing listens on a port we just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = free.local_addr().expect("addr");
    drop(free);
    let out = wsx(&["bench", "-d", "1", "-c", "2", "--json", &url(dead)], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no connection"));
}
