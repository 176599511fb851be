//! Application destinations over real sockets: a SEND to a matching `/app/...` reaches the
//! handler with the principal, session, parameters, headers and body; the handler publishes,
//! replies to the sending session's user destination, or refuses (ERROR); unknown `/app/`
//! destinations get an ERROR; the RECEIPT of an `/app/` SEND comes once the handler accepted it;
//! a session has at most `MAX_APP_SENDS` SENDs in the handlers.

mod common;

use std::sync::{Arc, Mutex};

use common::{Client, body, serve};
use wsx_broker::{AppMessage, Broker};
use wsx_stomp::{Command, Frame, Headers, Refusal};

/// What the chat handler saw: principal, session id, room, a header, body.
type Seen = Arc<Mutex<Vec<(String, String, String, Option<String>, String)>>>;

fn chat_broker(seen: Seen) -> Arc<Broker> {
    Broker::builder()
        .route("/app/chat.{room}", move |message: AppMessage| {
            let seen = seen.clone();
            async move {
                let room = message.param("room").unwrap_or_default().to_owned();
                let text = message.body_str().unwrap_or_default().to_owned();
                seen.lock().expect("lock").push((
                    message.principal().to_owned(),
                    message.session_id(),
                    room.clone(),
                    message.headers().get("x-mood").map(str::to_owned),
                    text.clone(),
                ));
                let mut headers = Headers::new();
                headers.push("x-room", room.as_str());
                message.publish(
                    &format!("/topic/chat.{room}"),
                    headers,
                    format!("{}: {text}", message.principal()),
                )?;
                message.reply("/queue/replies", Headers::new(), format!("sent to {room}"))?;
                Ok(())
            }
        })
        .route("/app/refuse", |_message: AppMessage| async move {
            Err(Refusal::new("not today"))
        })
        .build()
        .expect("a broker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_publishes_and_replies_then_the_receipt_comes() {
    let seen = Seen::default();
    let broker = chat_broker(seen.clone());
    let addr = serve(broker.clone()).await;
    let mut alice = Client::connect(addr, "alice").await;
    alice.subscribe("replies", "/user/queue/replies").await;
    let mut alice_elsewhere = Client::connect(addr, "alice").await;
    alice_elsewhere
        .subscribe("replies", "/user/queue/replies")
        .await;
    let mut bob = Client::connect(addr, "bob").await;
    bob.subscribe("room", "/topic/chat.lobby").await;
    bob.subscribe("replies", "/user/queue/replies").await;

    alice
        .send_to(
            "/app/chat.lobby",
            "hi all",
            &[("receipt", "r1"), ("x-mood", "glad")],
        )
        .await;
    // Alice: her reply, then the RECEIPT (the handler published and replied first).
    let got = alice.frames(2).await;
    assert_eq!(got[0].command, Command::Message, "{got:?}");
    assert_eq!(got[0].header("destination"), Some("/user/queue/replies"));
    assert_eq!(body(&got[0]), "sent to lobby");
    assert_eq!(got[1].command, Command::Receipt);
    assert_eq!(got[1].header("receipt-id"), Some("r1"));
    // Bob: the room's message, not alice's reply.
    let message = bob.frame().await;
    assert_eq!(message.header("destination"), Some("/topic/chat.lobby"));
    assert_eq!(message.header("x-room"), Some("lobby"));
    assert_eq!(body(&message), "alice: hi all");
    assert!(
        bob.frame_within(std::time::Duration::from_millis(200))
            .await
            .is_none(),
        "bob gets no reply meant for alice"
    );
    assert!(
        alice_elsewhere
            .frame_within(std::time::Duration::from_millis(200))
            .await
            .is_none(),
        "the reply goes to the sending session alone"
    );
    // The SEND counts as published once the handler accepted it.
    let metrics = broker.metrics().render();
    assert!(
        metrics.contains("wsx_stomp_messages_published_total{kind=\"app\"} 1\n"),
        "{metrics}"
    );
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    let (principal, session, room, mood, text) = &seen[0];
    assert_eq!(principal, "alice");
    assert!(session.starts_with("session-"), "{session}");
    assert_eq!(room, "lobby");
    assert_eq!(mood.as_deref(), Some("glad"));
    assert_eq!(text, "hi all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_and_an_unknown_destination_are_errors() {
    let broker = chat_broker(Seen::default());
    let addr = serve(broker.clone()).await;

    let mut carol = Client::connect(addr, "carol").await;
    carol
        .send_to("/app/refuse", "please", &[("receipt", "r2")])
        .await;
    let error = carol.frame().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.header("message"), Some("not today"));
    assert_eq!(error.header("receipt-id"), Some("r2"));
    assert_eq!(carol.closed().await, Some(1008));

    let mut dave = Client::connect(addr, "dave").await;
    dave.send_to("/app/nowhere", "x", &[]).await;
    let error = dave.frame().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(
        error.header("message"),
        Some("message refused: no handler for /app/nowhere")
    );
    assert_eq!(dave.closed().await, Some(1008));

    // A route added to the running broker.
    broker
        .route("/app/late", |message: AppMessage| async move {
            message.reply("/queue/late", Headers::new(), "on time")?;
            Ok(())
        })
        .expect("a valid pattern");
    assert!(
        broker
            .route("/topic/x", |_m: AppMessage| async { Ok(()) })
            .is_err()
    );
    let mut erin = Client::connect(addr, "erin").await;
    erin.subscribe("late", "/user/queue/late").await;
    erin.send_to("/app/late", "", &[]).await;
    assert_eq!(body(&erin.frame().await), "on time");
    // /app/ takes no SUBSCRIBE.
    erin.send(
        Frame::new(Command::Subscribe)
            .with_header("id", "x")
            .with_header("destination", "/app/late"),
    )
    .await;
    assert_eq!(erin.frame().await.command, Command::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_has_at_most_max_app_sends_in_its_handlers() {
    let (release, released) = tokio::sync::watch::channel(false);
    let broker = Broker::builder()
        .route("/app/slow", move |_message: AppMessage| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok(())
            }
        })
        .build()
        .expect("a broker");
    let addr = serve(broker).await;
    let mut greedy = Client::connect(addr, "greedy").await;
    for i in 0..wsx_broker::MAX_APP_SENDS {
        greedy.send_to("/app/slow", &i.to_string(), &[]).await;
    }
    greedy
        .send_to("/app/slow", "one too many", &[("receipt", "last")])
        .await;
    let error = greedy.frame().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.header("receipt-id"), Some("last"));
    assert!(
        error
            .header("message")
            .is_some_and(|m| m.contains("too many messages in flight")),
        "{error:?}"
    );
    // The bound is per session: another client's SEND is taken, answered once released.
    let mut patient = Client::connect(addr, "patient").await;
    patient
        .send_to("/app/slow", "mine", &[("receipt", "r")])
        .await;
    release.send_replace(true);
    let receipt = patient.frame().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.header("receipt-id"), Some("r"));
}

/// The bytes a session's SENDs hold in handlers are bounded too: a client sending large
/// bodies to a handler that does not answer is refused past `MAX_APP_BYTES`, before the count
/// limit.
#[tokio::test]
async fn a_session_holds_at_most_max_app_bytes_in_its_handlers() {
    let (release, released) = tokio::sync::watch::channel(false);
    let broker = Broker::builder()
        .route("/app/slow", move |_message: AppMessage| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok(())
            }
        })
        .build()
        .expect("a broker");
    let addr = serve(broker).await;
    let mut greedy = Client::connect(addr, "greedy").await;
    let body = "x".repeat(1_000_000);
    let fit = wsx_broker::MAX_APP_BYTES / 1_000_100;
    assert!(fit < wsx_broker::MAX_APP_SENDS);
    for _ in 0..fit {
        greedy.send_to("/app/slow", &body, &[]).await;
    }
    greedy
        .send_to("/app/slow", &body, &[("receipt", "last")])
        .await;
    let error = greedy.frame().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.header("receipt-id"), Some("last"));
    assert!(
        error
            .header("message")
            .is_some_and(|m| m.contains("too many bytes in flight")),
        "{error:?}"
    );
    release.send_replace(true);
}
