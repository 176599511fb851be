//! The broker as an axum route (feature `axum`), set up as `examples/axum_app.rs` is: any
//! login is the principal; a SEND to `/app/greet` whose body is a name publishes
//! `Hello, NAME!` to `/topic/greetings` and sends `welcome NAME` to the sender's
//! `/user/queue/replies` only.
#![cfg(feature = "axum")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use common::{Client, body};
use wsx_broker::{AppMessage, Broker};
use wsx_stomp::{AuthRequest, Command, Headers, Principal, Refusal};

/// The example's app on a free port; returns its address.
async fn serve_app(broker: Arc<Broker>) -> SocketAddr {
    let app = Router::new().route("/stomp", broker.axum_route());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

fn greeter(peers: Arc<std::sync::Mutex<Vec<Option<SocketAddr>>>>) -> Arc<Broker> {
    Broker::builder()
        .authenticator(move |request: AuthRequest| {
            peers
                .lock()
                .expect("lock")
                .push(request.connection.peer_addr);
            async move {
                match request.login {
                    Some(login) if !login.is_empty() => Ok(Principal::allow_all(login)),
                    _ => Err(Refusal::new("a login is required")),
                }
            }
        })
        .route("/app/greet", |message: AppMessage| async move {
            let name = message.body_str().unwrap_or_default().trim().to_owned();
            message.publish(
                "/topic/greetings",
                Headers::new(),
                format!("Hello, {name}!"),
            )?;
            message.reply("/queue/replies", Headers::new(), format!("welcome {name}"))?;
            Ok(())
        })
        .build()
        .expect("a broker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greetings_go_to_everyone_and_the_welcome_to_the_sender() {
    let peers = Arc::default();
    let addr = serve_app(greeter(Arc::clone(&peers))).await;
    let mut alice = Client::connect(addr, "alice").await;
    let mut bob = Client::connect(addr, "bob").await;
    for client in [&mut alice, &mut bob] {
        client.subscribe("g", "/topic/greetings").await;
        client.subscribe("r", "/user/queue/replies").await;
    }
    alice.send_to("/app/greet", "alice", &[]).await;
    let mut got: Vec<(String, String)> = alice
        .frames(2)
        .await
        .iter()
        .map(|f| {
            assert_eq!(f.command, Command::Message);
            (
                f.header("destination").unwrap_or_default().to_owned(),
                body(f).to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/topic/greetings".to_owned(), "Hello, alice!".to_owned()),
            ("/user/queue/replies".to_owned(), "welcome alice".to_owned()),
        ]
    );
    let greeting = bob.frame().await;
    assert_eq!(body(&greeting), "Hello, alice!");
    assert!(
        bob.frame_within(Duration::from_millis(200)).await.is_none(),
        "the welcome is alice's alone"
    );
    // The peer address reaches the authenticator (served with connect info).
    assert!(
        peers
            .lock()
            .expect("lock")
            .iter()
            .all(|peer| peer.is_some_and(|p| p.ip().is_loopback()))
    );

    // No login: refused.
    let (mut nobody, answer) = Client::connect_with(addr, "/stomp", &[], &[]).await;
    assert_eq!(answer.command, Command::Error);
    assert_eq!(answer.header("message"), Some("a login is required"));
    assert_eq!(nobody.closed().await, Some(1008));
}
