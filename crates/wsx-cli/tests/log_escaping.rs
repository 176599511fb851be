//! What clients send reaches `wsx serve`'s log lines with control characters escaped: no forged
//! lines, no terminal escape sequences.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsx::Message;

#[tokio::test]
async fn client_strings_in_log_lines_are_escaped() {
    let log_path =
        std::env::temp_dir().join(format!("wsx-log-escaping-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("create the log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsx"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn wsx serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("listening line").expect("read stdout");
        if let Some(addr) = line.strip_prefix("listening on http://") {
            break addr.trim().to_owned();
        }
    };

    // A chat command whose type is unknown: the parser's error quotes it in the log.
    let (mut ws, _) = wsx::connect(&format!("ws://{addr}/ws/chat/logs"))
        .await
        .expect("connect");
    let evil = r#"{"type":"x\u001b[2J\nINFO wsx: forged line"}"#;
    ws.send(Message::text(evil)).await.expect("send");
    // The error event comes back once the line is logged.
    let answer = tokio::time::timeout(Duration::from_secs(15), ws.recv())
        .await
        .expect("an answer in time")
        .expect("open")
        .expect("no error");
    assert!(
        answer.as_text().is_some_and(|t| t.contains("bad_json")),
        "{answer:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).expect("read the log");
        if text.contains("refused") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log_path);
    let refused = text
        .lines()
        .find(|line| line.contains("refused"))
        .unwrap_or_else(|| panic!("no `refused` line in:\n{text}"));
    assert!(
        refused.contains(r"x\u{1b}[2J\nINFO wsx: forged line"),
        "{refused}"
    );
    assert!(!text.contains('\u{1b}'), "a raw ESC in:\n{text}");
    assert!(
        !text
            .lines()
            .any(|line| line.starts_with("INFO wsx: forged")),
        "a forged line in:\n{text}"
    );
}
