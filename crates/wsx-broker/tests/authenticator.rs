//! The async authenticator sees the upgrade request (path, query, headers, cookies, peer) and
//! the CONNECT (login, passcode, Authorization); its refusal is an ERROR, then the close, and so
//! is an answer too slow; a connection that goes away before the answer is dropped without harm.

mod common;

use std::sync::{Arc, Mutex};

use common::{Client, WAIT, serve};
use tokio::sync::{Notify, mpsc};
use wsx_broker::Broker;
use wsx_stomp::{AuthRequest, Command, Principal, Refusal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authenticator_sees_the_request_and_the_connect() {
    let seen: Arc<Mutex<Vec<AuthRequest>>> = Arc::default();
    let log = seen.clone();
    let broker = Broker::builder()
        .authenticator(move |request: AuthRequest| {
            log.lock().expect("lock").push(request.clone());
            async move {
                match (request.login.as_deref(), request.passcode.as_deref()) {
                    (Some("alice"), Some("secret")) => Ok(Principal::allow_all("alice")),
                    _ => Err(Refusal::new("go away")),
                }
            }
        })
        .build()
        .expect("a broker");
    let addr = serve(broker).await;

    let (_alice, answer) = Client::connect_with(
        addr,
        "/stomp?token=q1&x=2",
        &[
            ("X-Tenant", "acme"),
            ("Cookie", "theme=dark; session=abc123"),
        ],
        &[
            ("login", "alice"),
            ("passcode", "secret"),
            ("Authorization", "Bearer tok-1"),
        ],
    )
    .await;
    assert_eq!(answer.command, Command::Connected, "{answer:?}");
    assert_eq!(answer.header("user-id"), Some("alice"));
    {
        let seen = seen.lock().expect("lock");
        let request = &seen[0];
        assert_eq!(request.connection.path, "/stomp");
        assert_eq!(request.connection.query_param("token"), Some("q1"));
        assert_eq!(request.connection.header("x-tenant"), Some("acme"));
        assert_eq!(request.connection.cookie("session"), Some("abc123"));
        assert_eq!(
            request.connection.peer_addr.map(|a| a.ip().to_string()),
            Some("127.0.0.1".to_owned())
        );
        assert_eq!(
            request.connection.transport,
            wsx_stomp::Transport::WebSocket
        );
        assert_eq!(request.login.as_deref(), Some("alice"));
        assert_eq!(request.passcode.as_deref(), Some("secret"));
        assert_eq!(request.bearer_token(), Some("tok-1"));
    }

    // A refusal: ERROR with its message, then the connection closes (1008).
    let (mut mallory, answer) =
        Client::connect_with(addr, "/stomp", &[], &[("login", "mallory")]).await;
    assert_eq!(answer.command, Command::Error, "{answer:?}");
    assert_eq!(answer.header("message"), Some("go away"));
    assert_eq!(mallory.closed().await, Some(1008));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_before_the_answer_are_handled_after_it() {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let broker = Broker::builder()
        .authenticator(move |request: AuthRequest| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok(Principal::allow_all(request.login.unwrap_or_default()))
            }
        })
        .build()
        .expect("a broker");
    let addr = serve(broker).await;
    let mut client = Client::open(addr, "/stomp", &[]).await;
    client
        .send(
            wsx_stomp::Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("login", "bob"),
        )
        .await;
    client
        .send(
            wsx_stomp::Frame::new(Command::Subscribe)
                .with_header("id", "0")
                .with_header("destination", "/topic/t")
                .with_header("receipt", "r"),
        )
        .await;
    assert!(
        client
            .frame_within(std::time::Duration::from_millis(200))
            .await
            .is_none(),
        "nothing before the authenticator answers"
    );
    release.notify_one();
    let frames = client.frames(2).await;
    assert_eq!(frames[0].command, Command::Connected);
    assert_eq!(frames[1].command, Command::Receipt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_while_authenticating_is_released() {
    let (asked_tx, mut asked) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let broker = Broker::builder()
        .authenticator(move |request: AuthRequest| {
            let gate = gate.clone();
            let _ = asked_tx.send(());
            async move {
                if request.login.as_deref() == Some("carol") {
                    gate.notified().await;
                }
                Ok(Principal::allow_all(request.login.unwrap_or_default()))
            }
        })
        .build()
        .expect("a broker");
    let addr = serve(broker.clone()).await;
    let mut client = Client::open(addr, "/stomp", &[]).await;
    client
        .send(
            wsx_stomp::Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("login", "carol"),
        )
        .await;
    tokio::time::timeout(WAIT, asked.recv())
        .await
        .expect("asked in time");
    // The client goes while its CONNECT waits; the answer comes after.
    drop(client);
    release.notify_one();
    let gone = async {
        while !broker.metrics().render().contains("wsx_stomp_sessions 0\n") {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("session gone");
    // The broker still serves.
    let _dave = Client::connect(addr, "dave").await;
    assert!(broker.metrics().render().contains("wsx_stomp_sessions 1\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticator_too_slow_is_a_refusal() {
    let broker = Broker::builder()
        .authenticator(|_request: AuthRequest| async {
            std::future::pending::<Result<Principal, Refusal>>().await
        })
        .authentication_timeout(std::time::Duration::from_millis(100))
        .build()
        .expect("a broker");
    let addr = serve(broker).await;
    let (mut client, answer) =
        Client::connect_with(addr, "/stomp", &[], &[("login", "slowpoke")]).await;
    assert_eq!(answer.command, Command::Error, "{answer:?}");
    assert_eq!(answer.header("message"), Some("authentication timed out"));
    assert_eq!(client.closed().await, Some(1008));
}
