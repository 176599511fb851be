//! End-to-end tests of the `/stomp` endpoint of `wsx serve`: the real binary on an ephemeral
//! port, the `wsx` library as the WebSocket client and `wsx-stomp`'s codec as the STOMP client,
//! JWTs made here with `jsonwebtoken`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Client, Event, Server, body};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wsx::CloseCode;
use wsx_stomp::{Command, Frame};

/// The HS256 secret of the servers started with `--jwt-secret`.
const SECRET: &str = "stomp-test-secret";

// ---------------------------------------------------------------------------------------------
// the server

/// Helpers of `wsx serve` with `/stomp` in mind.
trait StompServer {
    /// A server requiring HS256 tokens signed with [`SECRET`].
    fn with_jwt(extra: &[&str]) -> Server;
    /// The WebSocket URL of `path_and_query`.
    fn url(&self, path_and_query: &str) -> String;
    /// The value of a line of `/metrics` (`name` including labels).
    async fn metric(&self, name: &str) -> u64;
}

impl StompServer for Server {
    fn with_jwt(extra: &[&str]) -> Server {
        let mut args = vec!["--jwt-secret", SECRET];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    fn url(&self, path_and_query: &str) -> String {
        self.ws_url(path_and_query)
    }

    async fn metric(&self, name: &str) -> u64 {
        let text = http_get(self.addr, "/metrics").await.1;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }
}

/// A plain HTTP GET: the status and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let resp = common::http(addr, "GET", path).await;
    (resp.status, resp.body)
}

// ---------------------------------------------------------------------------------------------
// tokens

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// An HS256 token for `sub` with the given destination patterns, valid for ten minutes.
fn token(sub: &str, subscribe: &[&str], send: &[&str]) -> String {
    sign_hs256(&json!({
        "sub": sub,
        "exp": unix_now() + 600,
        "subscribe": subscribe,
        "send": send,
    }))
}

/// A token allowed every destination.
fn full_token(sub: &str) -> String {
    token(sub, &["**"], &["**"])
}

fn sign_hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode a token")
}

// ---------------------------------------------------------------------------------------------
// tests

#[tokio::test]
async fn connect_subscribe_send_receipt() {
    let server = Server::with_jwt(&[]);
    let mut client =
        Client::open(&server, "/stomp", &["v10.stomp", "v11.stomp", "v12.stomp"]).await;
    assert_eq!(client.subprotocol.as_deref(), Some("v12.stomp"));
    let bearer = format!("Bearer {}", full_token("alice"));
    client
        .send(
            Frame::new(Command::Connect)
                .with_header("accept-version", "1.0,1.1,1.2")
                .with_header("host", "localhost")
                .with_header("Authorization", bearer.as_str()),
        )
        .await;
    let connected = client.expect(Command::Connected).await;
    assert_eq!(connected.header("version"), Some("1.2"));
    assert_eq!(connected.header("user-id"), Some("alice"));
    assert_eq!(connected.header("heart-beat"), Some("10000,10000"));

    client.subscribe("0", "/topic/chat.general", "auto").await;
    client
        .publish(
            "/topic/chat.general",
            "hello: world\n",
            &[("x-trace", "a:b"), ("receipt", "sent")],
        )
        .await;
    // The RECEIPT and the MESSAGE (to this same client) may come in either order.
    let (mut receipt, mut message) = (None, None);
    for _ in 0..2 {
        let frame = client.frame().await;
        match frame.command {
            Command::Receipt => receipt = Some(frame),
            Command::Message => message = Some(frame),
            _ => panic!("unexpected {frame:?}"),
        }
    }
    assert_eq!(
        receipt.expect("a RECEIPT").header("receipt-id"),
        Some("sent")
    );
    let message = message.expect("a MESSAGE");
    assert_eq!(body(&message), "hello: world\n");
    assert_eq!(message.header("subscription"), Some("0"));
    assert_eq!(message.header("destination"), Some("/topic/chat.general"));
    assert_eq!(message.header("x-trace"), Some("a:b"));
    assert_eq!(message.header("content-type"), Some("text/plain"));
    assert!(message.header("message-id").is_some());
    assert_eq!(
        message.header("receipt"),
        None,
        "SEND-only headers are not passed on"
    );

    assert_eq!(server.metric("wsx_stomp_sessions").await, 1);
    assert_eq!(server.metric("wsx_stomp_subscriptions").await, 1);
    assert_eq!(
        server
            .metric("wsx_stomp_messages_published_total{kind=\"topic\"}")
            .await,
        1
    );
    assert_eq!(
        server
            .metric("wsx_stomp_messages_delivered_total{kind=\"topic\"}")
            .await,
        1
    );
    client.disconnect().await;
    assert_eq!(server.metric("wsx_stomp_sessions").await, 0);
    assert_eq!(server.metric("wsx_stomp_subscriptions").await, 0);
}

#[tokio::test]
async fn topic_fans_out_to_three_subscribers() {
    let server = Server::with_jwt(&[]);
    let mut subscribers = Vec::new();
    for i in 0..3 {
        let mut client = Client::connect(&server, &full_token(&format!("sub{i}"))).await;
        client
            .subscribe(&format!("s{i}"), "/topic/news", "auto")
            .await;
        subscribers.push(client);
    }
    let mut publisher = Client::connect(&server, &full_token("publisher")).await;
    publisher.publish_confirmed("/topic/news", "extra!").await;
    publisher.publish_confirmed("/topic/news", "more").await;
    let mut ids = Vec::new();
    for (i, client) in subscribers.iter_mut().enumerate() {
        let first = client.expect(Command::Message).await;
        assert_eq!(body(&first), "extra!");
        assert_eq!(first.header("subscription"), Some(format!("s{i}").as_str()));
        ids.push(first.header("message-id").map(str::to_owned));
        assert_eq!(client.message_body().await, "more");
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one message id: {ids:?}"
    );
    assert_eq!(
        server
            .metric("wsx_stomp_messages_delivered_total{kind=\"topic\"}")
            .await,
        6
    );
}

#[tokio::test]
async fn queue_is_round_robin() {
    let server = Server::with_jwt(&[]);
    let mut a = Client::connect(&server, &full_token("a")).await;
    a.subscribe("a", "/queue/jobs", "auto").await;
    let mut b = Client::connect(&server, &full_token("b")).await;
    b.subscribe("b", "/queue/jobs", "auto").await;
    let mut producer = Client::connect(&server, &full_token("producer")).await;
    for job in ["1", "2", "3", "4"] {
        producer.publish_confirmed("/queue/jobs", job).await;
    }
    assert_eq!(a.message_body().await, "1");
    assert_eq!(b.message_body().await, "2");
    assert_eq!(a.message_body().await, "3");
    assert_eq!(b.message_body().await, "4");
    assert_eq!(
        server
            .metric("wsx_stomp_messages_published_total{kind=\"queue\"}")
            .await,
        4
    );
    assert_eq!(
        server
            .metric("wsx_stomp_messages_delivered_total{kind=\"queue\"}")
            .await,
        4
    );
}

#[tokio::test]
async fn client_individual_ack_nack_and_redelivery() {
    let server = Server::with_jwt(&[]);
    let mut producer = Client::connect(&server, &full_token("producer")).await;
    let mut a = Client::connect(&server, &full_token("a")).await;
    a.subscribe("w", "/queue/work", "client-individual").await;

    // NACK: the message comes back, marked redelivered.
    producer.publish_confirmed("/queue/work", "m1").await;
    let first = a.expect(Command::Message).await;
    assert_eq!(body(&first), "m1");
    assert_eq!(first.header("redelivered"), None);
    let ack = first.header("ack").expect("an ack header").to_owned();
    a.send(Frame::new(Command::Nack).with_header("id", ack.as_str()))
        .await;
    let again = a.expect(Command::Message).await;
    assert_eq!(body(&again), "m1");
    assert_eq!(again.header("redelivered"), Some("true"));
    assert_eq!(again.header("message-id"), first.header("message-id"));
    let ack = again.header("ack").expect("an ack header").to_owned();
    a.send(
        Frame::new(Command::Ack)
            .with_header("id", ack.as_str())
            .with_header("receipt", "acked"),
    )
    .await;
    a.expect_receipt("acked").await;

    // Individual acknowledgements: ACK the second of two, NACK the first.
    producer.publish_confirmed("/queue/work", "m2").await;
    producer.publish_confirmed("/queue/work", "m3").await;
    let m2 = a.expect(Command::Message).await;
    let m3 = a.expect(Command::Message).await;
    assert_eq!((body(&m2), body(&m3)), ("m2", "m3"));
    a.send(Frame::new(Command::Ack).with_header("id", m3.header("ack").expect("ack")))
        .await;
    a.send(Frame::new(Command::Nack).with_header("id", m2.header("ack").expect("ack")))
        .await;
    let m2_again = a.expect(Command::Message).await;
    assert_eq!(body(&m2_again), "m2");
    assert_eq!(m2_again.header("redelivered"), Some("true"));

    // A consumer that goes away unacknowledged: its message goes to the next consumer.
    let mut b = Client::connect(&server, &full_token("b")).await;
    b.subscribe("w", "/queue/work", "client-individual").await;
    drop(a); // no DISCONNECT: the TCP connection just ends
    let handed_over = b.expect(Command::Message).await;
    assert_eq!(body(&handed_over), "m2");
    assert_eq!(handed_over.header("redelivered"), Some("true"));
    assert_eq!(server.metric("wsx_stomp_redeliveries_total").await, 3);
}

#[tokio::test]
async fn transactions_commit_and_abort() {
    let server = Server::with_jwt(&[]);
    let mut consumer = Client::connect(&server, &full_token("consumer")).await;
    consumer.subscribe("q", "/queue/orders", "auto").await;
    let mut producer = Client::connect(&server, &full_token("producer")).await;

    producer
        .send(Frame::new(Command::Begin).with_header("transaction", "t1"))
        .await;
    producer
        .publish("/queue/orders", "dropped-1", &[("transaction", "t1")])
        .await;
    producer
        .publish("/queue/orders", "dropped-2", &[("transaction", "t1")])
        .await;
    producer
        .send(
            Frame::new(Command::Abort)
                .with_header("transaction", "t1")
                .with_header("receipt", "aborted"),
        )
        .await;
    producer.expect_receipt("aborted").await;

    producer
        .send(Frame::new(Command::Begin).with_header("transaction", "t2"))
        .await;
    producer
        .publish("/queue/orders", "kept-1", &[("transaction", "t2")])
        .await;
    producer
        .publish("/queue/orders", "kept-2", &[("transaction", "t2")])
        .await;
    producer.publish_confirmed("/queue/orders", "outside").await;
    producer
        .send(
            Frame::new(Command::Commit)
                .with_header("transaction", "t2")
                .with_header("receipt", "committed"),
        )
        .await;
    producer.expect_receipt("committed").await;

    // Nothing of t1; t2's messages only once committed, after the one sent outside it.
    assert_eq!(consumer.message_body().await, "outside");
    assert_eq!(consumer.message_body().await, "kept-1");
    assert_eq!(consumer.message_body().await, "kept-2");
    assert_eq!(
        server
            .metric("wsx_stomp_messages_published_total{kind=\"queue\"}")
            .await,
        3
    );
}

#[tokio::test]
async fn heart_beats_kept_both_ways() {
    let server = Server::with_jwt(&["--stomp-heartbeat", "400,400"]);
    let bearer = format!("Bearer {}", full_token("beating"));
    let (mut client, connected) = Client::connect_with(
        &server,
        "/stomp",
        &[("Authorization", &bearer), ("heart-beat", "100,400")],
    )
    .await;
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    assert_eq!(connected.header("heart-beat"), Some("400,400"));

    // For 2 s (more than three times the 600 ms the server allows: 400 ms + 50 %), beat every
    // 100 ms and count the server's beats (it sends one every 400 ms when idle).
    let until = tokio::time::Instant::now() + Duration::from_millis(2000);
    let mut beat = tokio::time::interval(Duration::from_millis(100));
    let mut received = 0;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                if tokio::time::Instant::now() >= until {
                    break;
                }
                client.heart_beat().await;
            }
            event = client.next() => match event {
                Event::HeartBeat => received += 1,
                other => panic!("unexpected {other:?}"),
            },
        }
    }
    assert!(received >= 3, "server heart-beats received: {received}");
    // Still connected.
    client.publish_confirmed("/topic/pulse", "alive").await;
}

#[tokio::test]
async fn a_silent_client_is_dropped() {
    let server = Server::with_jwt(&["--stomp-heartbeat", "0,300"]);
    let bearer = format!("Bearer {}", full_token("silent"));
    let (mut client, connected) = Client::connect_with(
        &server,
        "/stomp",
        &[("Authorization", &bearer), ("heart-beat", "300,0")],
    )
    .await;
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    let start = Instant::now();
    let message = client.expect_error_then_close().await;
    let elapsed = start.elapsed();
    assert!(message.contains("heart-beat"), "{message}");
    // 300 ms interval + 50 % grace, counted from the CONNECT (a little before `start`).
    assert!(
        elapsed >= Duration::from_millis(350),
        "dropped after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "dropped after {elapsed:?}"
    );
}

#[tokio::test]
async fn refused_connects_get_an_error_then_close() {
    let server = Server::with_jwt(&[]);
    let expired = sign_hs256(&json!({"sub": "late", "exp": unix_now() - 3600}));
    let no_sub = sign_hs256(&json!({"exp": unix_now() + 600}));
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "mallory", "exp": unix_now() + 600}),
        &EncodingKey::from_secret(b"not-the-secret"),
    )
    .expect("encode");
    // (what, CONNECT headers, expected in the ERROR message)
    type Case = (&'static str, Vec<(&'static str, String)>, &'static str);
    let cases: [Case; 5] = [
        ("no token", vec![], "authentication required"),
        (
            "garbage",
            vec![("Authorization", "Bearer not.a.jwt".to_owned())],
            "invalid token",
        ),
        (
            "expired",
            vec![("Authorization", format!("Bearer {expired}"))],
            "invalid token",
        ),
        (
            "no sub",
            vec![("Authorization", format!("Bearer {no_sub}"))],
            "invalid token",
        ),
        ("wrong key", vec![("passcode", other_key)], "invalid token"),
    ];
    for (case, headers, expected) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (mut client, answer) = Client::connect_with(&server, "/stomp", &headers).await;
        assert_eq!(answer.command, Command::Error, "{case}: {answer:?}");
        let message = answer.header("message").expect("a message header");
        assert!(message.contains(expected), "{case}: {message}");
        let close = client.expect_closed().await.expect("a close frame");
        assert_eq!(close.code, CloseCode::POLICY_VIOLATION, "{case}");
    }
    assert_eq!(server.metric("wsx_stomp_sessions").await, 0);
}

/// CONNECT with `token` as a bearer token: the server's answer (CONNECTED or ERROR) and, for
/// an ERROR, the close code that followed.
async fn try_token(server: &Server, token: &str) -> (Frame, Option<CloseCode>) {
    let bearer = format!("Bearer {token}");
    let (mut client, answer) =
        Client::connect_with(server, "/stomp", &[("Authorization", &bearer)]).await;
    if answer.command != Command::Error {
        return (answer, None);
    }
    let close = client.expect_closed().await.map(|c| c.code);
    (answer, close)
}

#[tokio::test]
async fn jwt_claims_table() {
    // Defaults: a leeway of at most 5 s on exp and nbf; no issuer or audience configured.
    let server = Server::with_jwt(&[]);
    let now = unix_now();
    // (what, claims, expected: None = accepted, Some(words in the ERROR message))
    type Case = (&'static str, Value, Option<&'static str>);
    let cases: [Case; 5] = [
        ("valid", json!({"sub": "a", "exp": now + 600}), None),
        (
            "nbf tomorrow",
            json!({"sub": "a", "exp": now + 2 * 86_400, "nbf": now + 86_400}),
            Some("not valid yet (nbf)"),
        ),
        (
            "nbf a minute ahead (past the leeway)",
            json!({"sub": "a", "exp": now + 600, "nbf": now + 60}),
            Some("not valid yet (nbf)"),
        ),
        (
            "expired 30 s ago (past the leeway)",
            json!({"sub": "a", "exp": now - 30}),
            Some("expired (exp)"),
        ),
        (
            "an audience nobody configured",
            json!({"sub": "a", "exp": now + 600, "aud": "elsewhere"}),
            Some("audience (aud) not accepted"),
        ),
    ];
    check_token_cases(&server, &cases).await;

    // Issuer, audience and leeway configured.
    let server = Server::with_jwt(&[
        "--jwt-issuer",
        "https://issuer.example",
        "--jwt-audience",
        "wsx",
        "--jwt-audience",
        "stomp",
        "--jwt-leeway",
        "20",
    ]);
    let now = unix_now();
    let iss = "https://issuer.example";
    let cases: [Case; 9] = [
        (
            "right iss and aud",
            json!({"sub": "a", "exp": now + 600, "iss": iss, "aud": "stomp"}),
            None,
        ),
        (
            "aud as a list naming one of them",
            json!({"sub": "a", "exp": now + 600, "iss": iss, "aud": ["other", "wsx"]}),
            None,
        ),
        (
            "wrong iss",
            json!({"sub": "a", "exp": now + 600, "iss": "https://evil.example", "aud": "wsx"}),
            Some("issuer (iss) not accepted"),
        ),
        (
            "no iss",
            json!({"sub": "a", "exp": now + 600, "aud": "wsx"}),
            Some("no iss claim"),
        ),
        (
            "wrong aud",
            json!({"sub": "a", "exp": now + 600, "iss": iss, "aud": "billing"}),
            Some("audience (aud) not accepted"),
        ),
        (
            "no aud",
            json!({"sub": "a", "exp": now + 600, "iss": iss}),
            Some("no aud claim"),
        ),
        (
            "expired 5 s ago, within the 20 s leeway",
            json!({"sub": "a", "exp": now - 5, "iss": iss, "aud": "wsx"}),
            None,
        ),
        (
            "nbf in 5 s, within the 20 s leeway",
            json!({"sub": "a", "exp": now + 600, "nbf": now + 5, "iss": iss, "aud": "wsx"}),
            None,
        ),
        (
            "expired 60 s ago, past the 20 s leeway",
            json!({"sub": "a", "exp": now - 60, "iss": iss, "aud": "wsx"}),
            Some("expired (exp)"),
        ),
    ];
    check_token_cases(&server, &cases).await;
}

/// Try each token of `cases`: accepted (CONNECTED) or refused with an ERROR containing the
/// expected words, then close 1008.
async fn check_token_cases(server: &Server, cases: &[(&'static str, Value, Option<&'static str>)]) {
    for (case, claims, expected) in cases {
        let (answer, close) = try_token(server, &sign_hs256(claims)).await;
        match expected {
            None => assert_eq!(answer.command, Command::Connected, "{case}: {answer:?}"),
            Some(words) => {
                assert_eq!(answer.command, Command::Error, "{case}: {answer:?}");
                let message = answer.header("message").unwrap_or_default();
                assert!(message.contains(words), "{case}: {message}");
                assert_eq!(close, Some(CloseCode::POLICY_VIOLATION), "{case}");
            }
        }
    }
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let server = Server::with_jwt(&["--jwt-leeway", "0", "--stomp-heartbeat", "0,0"]);
    // Valid for 2 more seconds (1 to 2 s, as `exp` counts whole seconds).
    let exp = unix_now() + 2;
    let token =
        sign_hs256(&json!({"sub": "brief", "exp": exp, "subscribe": ["**"], "send": ["**"]}));
    let start = Instant::now();
    let mut client = Client::connect(&server, &token).await;
    // The session works until then.
    client.subscribe("s", "/topic/brief", "auto").await;
    client.publish_confirmed("/topic/brief", "before").await;
    assert_eq!(client.message_body().await, "before");
    // No further input: the expiry is a deadline of its own.
    let message = client.expect_error_then_close().await;
    assert_eq!(message, "token expired");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed after {elapsed:?}"
    );
    assert!(
        SystemTime::now() >= UNIX_EPOCH + Duration::from_secs(exp),
        "closed before exp"
    );
    assert!(elapsed < Duration::from_secs(4), "closed after {elapsed:?}");
    assert_eq!(server.metric("wsx_stomp_sessions").await, 0);
}

/// CONNECT anonymously as `login` with `heart-beat:0,0`; expects CONNECTED.
async fn connect_without_heart_beats(server: &Server, login: &str) -> Client {
    let headers = [("login", login), ("heart-beat", "0,0")];
    let (client, connected) = Client::connect_with(server, "/stomp", &headers).await;
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    // The server asks for heart-beats; this client offers none.
    assert_eq!(connected.header("heart-beat"), Some("10000,10000"));
    client
}

#[tokio::test]
async fn an_idle_client_without_heart_beats_is_closed() {
    let server = Server::start(&["--stomp-idle-timeout", "1"]);
    // heart-beat 0,0: no heart-beat check; only the server's idle limit.
    let start = Instant::now();
    let mut idle = connect_without_heart_beats(&server, "idle").await;
    let mut beating = connect_without_heart_beats(&server, "beating").await;
    // Anything from the client counts: an end-of-line every 300 ms keeps `beating` alive.
    let mut beat = tokio::time::interval(Duration::from_millis(300));
    let closed = loop {
        tokio::select! {
            _ = beat.tick() => beating.heart_beat().await,
            event = idle.next() => break event,
        }
    };
    let elapsed = start.elapsed();
    let Event::Frame(error) = closed else {
        panic!("expected an ERROR, got {closed:?}");
    };
    assert_eq!(error.command, Command::Error, "{error:?}");
    let message = error.header("message").unwrap_or_default();
    assert!(message.contains("idle timeout"), "{message}");
    assert!(message.contains("1 s"), "{message}");
    let close = idle.expect_closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::POLICY_VIOLATION);
    assert!(
        elapsed >= Duration::from_secs(1),
        "closed after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    // The one that kept sending is still served, well past the limit.
    while start.elapsed() < Duration::from_millis(2500) {
        beat.tick().await;
        beating.heart_beat().await;
    }
    beating.publish_confirmed("/topic/alive", "yes").await;
}

#[tokio::test]
async fn forbidden_destinations_get_an_error() {
    let server = Server::with_jwt(&[]);
    let limited = token("bob", &["/topic/chat.*"], &["/queue/jobs"]);

    let mut client = Client::connect(&server, &limited).await;
    client.subscribe("ok", "/topic/chat.general", "auto").await;
    client.publish_confirmed("/queue/jobs", "allowed").await;
    client
        .send(
            Frame::new(Command::Subscribe)
                .with_header("id", "no")
                .with_header("destination", "/topic/other"),
        )
        .await;
    let message = client.expect_error_then_close().await;
    assert!(
        message.contains("not allowed to subscribe to /topic/other"),
        "{message}"
    );

    let mut client = Client::connect(&server, &limited).await;
    client.publish("/topic/chat.general", "nope", &[]).await;
    let message = client.expect_error_then_close().await;
    assert!(
        message.contains("not allowed to send to /topic/chat.general"),
        "{message}"
    );
}

#[tokio::test]
async fn token_in_passcode_or_url_query() {
    let server = Server::with_jwt(&[]);
    let jwt = full_token("carol");
    let (client, answer) = Client::connect_with(
        &server,
        "/stomp",
        &[("login", "ignored"), ("passcode", &jwt)],
    )
    .await;
    assert_eq!(answer.command, Command::Connected, "{answer:?}");
    assert_eq!(answer.header("user-id"), Some("carol"));
    client.disconnect().await;

    let path = format!("/stomp?access_token={jwt}");
    let (client, answer) = Client::connect_with(&server, &path, &[]).await;
    assert_eq!(answer.command, Command::Connected, "{answer:?}");
    assert_eq!(answer.header("user-id"), Some("carol"));
    client.disconnect().await;
}

/// Issue 12: a client-supplied `user-id` reached subscribers unchanged. Now a SEND's
/// `user-id` is the token's subject, and an anonymous client's is removed.
#[tokio::test]
async fn subscribers_never_see_a_forged_user_id() {
    let server = Server::with_jwt(&[]);
    let mut reader = Client::connect(&server, &full_token("reader")).await;
    reader.subscribe("s", "/topic/who", "auto").await;
    let mut alice = Client::connect(&server, &full_token("alice")).await;
    alice
        .publish("/topic/who", "one", &[("user-id", "bob")])
        .await;
    let message = reader.expect(Command::Message).await;
    assert_eq!(
        message.headers.get_all("user-id").collect::<Vec<_>>(),
        ["alice"]
    );

    let anonymous = Server::start(&[]);
    let mut reader = Client::connect_anonymous(&anonymous, "reader").await;
    reader.subscribe("s", "/topic/who", "auto").await;
    let mut mallory = Client::connect_anonymous(&anonymous, "alice").await;
    mallory
        .publish("/topic/who", "two", &[("user-id", "alice")])
        .await;
    let message = reader.expect(Command::Message).await;
    assert_eq!(message.header("user-id"), None);
}

#[tokio::test]
async fn rs256_tokens_with_a_public_key() {
    let dir = std::env::temp_dir().join(format!("wsx-stomp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key_file: PathBuf = dir.join("public.pem");
    std::fs::write(&key_file, TEST_RSA_PUBLIC_KEY).expect("write the key");
    let server = Server::start(&["--jwt-public-key", key_file.to_str().expect("UTF-8 path")]);

    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "dave", "exp": unix_now() + 600, "subscribe": ["**"], "send": ["**"]}),
        &EncodingKey::from_rsa_pem(TEST_RSA_PRIVATE_KEY.as_bytes()).expect("a private key"),
    )
    .expect("encode");
    let client = Client::connect(&server, &rs256).await;
    client.disconnect().await;

    // No --jwt-secret: HS256 tokens are refused.
    let bearer = format!("Bearer {}", full_token("eve"));
    let (mut client, answer) =
        Client::connect_with(&server, "/stomp", &[("Authorization", &bearer)]).await;
    assert_eq!(answer.command, Command::Error);
    let message = answer.header("message").expect("a message header");
    assert!(message.contains("HS256 is not accepted"), "{message}");
    client.expect_closed().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn anonymous_without_jwt_flags_and_subprotocol_choice() {
    let server = Server::start(&[]);
    // Offering older versions only: the best of them is chosen.
    let client = Client::open(&server, "/stomp", &["v10.stomp", "v11.stomp"]).await;
    assert_eq!(client.subprotocol.as_deref(), Some("v11.stomp"));
    // Offering none (as some clients do): served all the same, without a subprotocol.
    let (mut client, answer) = {
        let mut client = Client::open(&server, "/stomp", &[]).await;
        assert_eq!(client.subprotocol, None);
        client
            .send(Frame::new(Command::Connect).with_header("accept-version", "1.2"))
            .await;
        let answer = client.frame().await;
        (client, answer)
    };
    assert_eq!(answer.command, Command::Connected, "{answer:?}");
    assert_eq!(answer.header("user-id"), Some("anonymous"));
    client.subscribe("any", "/queue/anything", "auto").await;
    client.publish_confirmed("/queue/anything", "free").await;
    assert_eq!(client.message_body().await, "free");
}

#[tokio::test]
async fn stomp_off_is_not_found() {
    let server = Server::start(&["--stomp", "off"]);
    let result = wsx::connect(&server.url("/stomp")).await;
    let Err(error) = result else {
        panic!("a WebSocket at /stomp despite --stomp off");
    };
    assert!(error.to_string().contains("404"), "{error}");
    assert_eq!(http_get(server.addr, "/metrics").await.0, 200);
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_dropped() {
    let server = Server::with_jwt(&[]);
    let mut slow = Client::connect(&server, &full_token("slow")).await;
    slow.subscribe("all", "/topic/firehose", "auto").await;
    let mut publisher = Client::connect(&server, &full_token("fast")).await;
    let chunk = "x".repeat(256 * 1024);
    // 256 KiB messages until the slow subscriber's queue overflows: its queue holds 8 MiB,
    // the rest sits in socket buffers. Bounded: at most 256 MiB.
    let mut sent = 0;
    while server.metric("wsx_stomp_slow_disconnects_total").await == 0 {
        assert!(sent < 1024, "still connected after {sent} messages");
        for _ in 0..15 {
            publisher.publish("/topic/firehose", &chunk, &[]).await;
        }
        publisher
            .publish_confirmed("/topic/firehose", "batch")
            .await;
        sent += 16;
    }
    // It gets what was already on its way, then the close.
    let close = loop {
        match slow.next().await {
            Event::Frame(frame) => assert_eq!(frame.command, Command::Message),
            Event::HeartBeat => {}
            Event::Closed(close) => break close.expect("a close frame"),
        }
    };
    assert_eq!(close.code, CloseCode::POLICY_VIOLATION);
    assert_eq!(close.reason, "too slow");
    // The publisher is unaffected.
    publisher
        .publish_confirmed("/topic/firehose", "after")
        .await;
    assert_eq!(server.metric("wsx_stomp_subscriptions").await, 0);
}

// ---------------------------------------------------------------------------------------------
// keys

/// A throwaway 2048-bit RSA key made for these tests only (`openssl genrsa 2048`).
const TEST_RSA_PRIVATE_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCsSM6m/z5M/nhm\n\
OJkLeqbpalUhzdi5YKWMjnS+MIWItjV91/n52AfulqGUPB18R2kyV8xzQbz0oluA\n\
mnTO2XmVy6nBS0lyb/RMPze9scNSSHWCg0RSDY2GMeRtzvX3C26bKYzozEruyMj5\n\
8z8tsx5uLP+yiEc5lo+fMfUB4JUXhX4JXyjQr5u5PVU1f9bqOcFk3Ea2hjXOniew\n\
aNwAuS4SW/HK2BipB5mOHQvQxOKLt52JO2S3NJIPsb7f3tTU5zfn6d3OqYM4tLFM\n\
akoCSdac56HQvQguhmruJEvlKtqyjWp6lCvlcGBa3MuM46rgK2fcKO7WDUZLEK83\n\
gUQS3SBhAgMBAAECggEAAIzak0z1Lkcq+KsAmux62pVhptIV+ZpitpBNgVf9U5W+\n\
/DAAfXkTpjVQvpaMj46/OfWiBdI1bMb7kAcUpwTc+9eV9+b282JPjB8ww3ttJyoF\n\
E6dT3geeDP1dM36TaYUQ7UNUm5LsQFcsar2JbtEHuiYmcOcF6miqyVreMFg++Axb\n\
PpKRJvBcjFUlJ53OGZMpju/bsthC6sKIxJPxCsEq3vnqVVFasNt5RJdU4nfrhxvm\n\
xtMb5HAk2UZERurFs4DbOJfPCeKdDRpCGm2PbGHOpyFGIgDN0PdUv1E87c1yIRsW\n\
K/0tFtesHiWHjqvMRXrhGpA+Cpaxivb0P2hkEXghEwKBgQDnYstAwk61kZ3D6eU9\n\
XwR2Lhhic9zbimhxmIuvowu/beE+9N5QPZmw9wLO3hZJeO/TzgWR5C/OnD7Hd/hd\n\
6WOCgjp2wKEDDxmCvoKg1G90HlpmBErRLRvIGwfwHFSbVsN3IS5Qvdp0N5tU0Hma\n\
IltujZXEOYaGqSEeiOgAu21txwKBgQC+nIi+87Kem/Nd+JpVzqYGeaZe76kISoHg\n\
w/Ivy5/yUdAPoWWHlHKGieSx4PDlXGBzl2PqIOMkygcGGmqKJyHzeLq9K5Gw0sC5\n\
hKdiTvZaAl8q00AqUlRb0wGjSamv0qg4PbJT+gKVo7+QLR5soAdHaYytkfb+L3SA\n\
80qF7aOglwKBgQC79LCOZkhxjVvObQzeEXUaWs9MCjn5zDCTNgsiHRvJ4IP8FAUS\n\
wTc7XStWx2jrPeXy84PqwqVi++CzP2ztPEytEwRSup8QUQ+z+PU7l9UBSja8b/gm\n\
erH6lpqYHStNE+mrt7RbuhzeEt2Gw+JDpm0HHNPvlZsFgBV7LFLpZVa6uQKBgAcd\n\
NIVb9xiwXV7ufmQheFTZiXoVm8txbHOFHK7n/KpAn3FV5sIuqi+XSe/Ro2wMDJWD\n\
2vjMDW48FBMIPV22pC/AG8gfripZU1QZPV4P8GXfnMmuZMCvnfJnZ7I+d5TWWezv\n\
cI5t0Fbha67n4DDRsDPcHqIDxqIqB0Eg03E4M1k1AoGBAIynQinetBUV9ThwKsB+\n\
mm42zRX08cOz+7Q/bOutgqViddYJIcDFheK9YAcoFu0QmmyOzkYnAqHcVYcqAWgE\n\
M4lPqJT0yXuc/m9Pn1ZI5qeq+7fnc34vj6InRBdbmpgzSGB9WEmitvBzpG0IoZrv\n\
M/zpsUBIFd8SJbF/zNnG8UzQ\n\
-----END PRIVATE KEY-----\n";

/// The public half of [`TEST_RSA_PRIVATE_KEY`].
const TEST_RSA_PUBLIC_KEY: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArEjOpv8+TP54ZjiZC3qm\n\
6WpVIc3YuWCljI50vjCFiLY1fdf5+dgH7pahlDwdfEdpMlfMc0G89KJbgJp0ztl5\n\
lcupwUtJcm/0TD83vbHDUkh1goNEUg2NhjHkbc719wtumymM6MxK7sjI+fM/LbMe\n\
biz/sohHOZaPnzH1AeCVF4V+CV8o0K+buT1VNX/W6jnBZNxGtoY1zp4nsGjcALku\n\
ElvxytgYqQeZjh0L0MTii7ediTtktzSSD7G+397U1Oc35+ndzqmDOLSxTGpKAknW\n\
nOeh0L0ILoZq7iRL5Sraso1qepQr5XBgWtzLjOOq4Ctn3Cju1g1GSxCvN4FEEt0g\n\
YQIDAQAB\n\
-----END PUBLIC KEY-----\n";

#[tokio::test]
async fn selectors_filter_what_a_subscription_gets() {
    let server = Server::with_jwt(&[]);
    let mut eu = Client::connect(&server, &full_token("eu")).await;
    let receipt = "sel-eu";
    eu.send(
        Frame::new(Command::Subscribe)
            .with_header("id", "eu")
            .with_header("destination", "/topic/orders")
            .with_header("selector", "region = 'eu' AND NOT (priority = 'low')")
            .with_header("receipt", receipt),
    )
    .await;
    eu.expect_receipt(receipt).await;
    let mut all = Client::connect(&server, &full_token("all")).await;
    all.subscribe("all", "/topic/orders", "auto").await;

    let mut producer = Client::connect(&server, &full_token("producer")).await;
    let sends: [(&str, &[(&str, &str)]); 4] = [
        ("us", &[("region", "us")]),
        ("eu-low", &[("region", "eu"), ("priority", "low")]),
        ("eu-high", &[("region", "eu"), ("priority", "high")]),
        ("none", &[]),
    ];
    for (body, headers) in sends {
        producer.publish("/topic/orders", body, headers).await;
    }
    producer.publish_confirmed("/topic/orders", "end").await;
    // The unfiltered subscriber sees all five in order; the filtered one only eu-high: its next
    // frame is the receipt of its own later SEND, so `end` (which does not match) never came.
    for expected in ["us", "eu-low", "eu-high", "none", "end"] {
        assert_eq!(all.message_body().await, expected);
    }
    assert_eq!(eu.message_body().await, "eu-high");
    eu.publish_confirmed("/topic/orders", "probe").await;
    assert_eq!(all.message_body().await, "probe");

    // An invalid selector is an ERROR naming the problem, then a close.
    let mut bad = Client::connect(&server, &full_token("bad")).await;
    bad.send(
        Frame::new(Command::Subscribe)
            .with_header("id", "x")
            .with_header("destination", "/topic/orders")
            .with_header("selector", "region = "),
    )
    .await;
    let message = bad.expect_error_then_close().await;
    assert!(message.contains("selector"), "{message}");
}
