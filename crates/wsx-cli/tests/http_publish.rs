//! End-to-end tests of `POST /api/publish` on `wsx serve`: who may publish (the API token, a
//! JWT whose `send` claim allows the destination, loopback clients when no auth is configured)
//! and what is answered, the message as STOMP subscribers get it, and a publish on one node
//! reaching a subscriber on another node sharing Redis; a queue publish answered only once
//! Redis stored it.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    Client, RedisServer, Response, Server, WAIT, body, free_port, http_exchange, http_post,
    redis_url, unique_prefix, wait_metric,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use wsx_stomp::Command;

/// The HS256 secret of the servers started with `--jwt-secret`.
const SECRET: &str = "http-publish-secret";
/// The `--api-token` of the servers started with one.
const API_TOKEN: &str = "api-token-for-tests";

/// A token for `sub` allowed to send to `send`, signed with `secret`, expiring `exp_in` seconds
/// from now (negative: expired).
fn token_with(secret: &str, send: &[&str], exp_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "sub": "backend",
        "exp": now.saturating_add_signed(exp_in),
        "subscribe": ["**"],
        "send": send,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode a token")
}

/// Publish `body` to `destination` as `bearer` (if any) with more headers.
async fn publish(
    server: &Server,
    destination: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(authorization) = &authorization {
        all.push(("Authorization", authorization));
    }
    let path = format!("/api/publish?destination={destination}");
    http_post(server.addr, &path, &all, body.as_bytes()).await
}

/// The JSON body of `response`.
fn json_of(response: &Response) -> Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("JSON body ({e}): {:?}", response.body))
}

#[tokio::test]
async fn http_publish_auth_table() {
    let server = Server::start(&["--jwt-secret", SECRET, "--api-token", API_TOKEN]);
    let mut subscriber = Client::connect(&server, &token_with(SECRET, &["**"], 600)).await;
    subscriber.subscribe("t", "/topic/prices", "auto").await;
    subscriber.subscribe("q", "/queue/jobs", "auto").await;

    let prices_only = token_with(SECRET, &["/topic/prices"], 600);
    let foreign = token_with("another-secret", &["**"], 600);
    let expired = token_with(SECRET, &["**"], -3600);
    // (case, destination, bearer token, status)
    let table: [(&str, &str, Option<&str>, u16); 11] = [
        ("no token", "/topic/prices", None, 401),
        ("a wrong token", "/topic/prices", Some("nope"), 401),
        ("a JWT of another key", "/topic/prices", Some(&foreign), 401),
        ("an expired JWT", "/topic/prices", Some(&expired), 401),
        (
            "a JWT not allowed there",
            "/topic/other",
            Some(&prices_only),
            403,
        ),
        (
            "a JWT allowed there",
            "/topic/prices",
            Some(&prices_only),
            200,
        ),
        ("the API token", "/topic/prices", Some(API_TOKEN), 200),
        (
            "the API token, a queue",
            "/queue/jobs",
            Some(API_TOKEN),
            202,
        ),
        ("an application destination", "/app/x", Some(API_TOKEN), 400),
        (
            "a destination the server reserves",
            "/topic/wsx.chat.lobby",
            Some(API_TOKEN),
            403,
        ),
        (
            "an encoded destination",
            "%2Ftopic%2Fprices",
            Some(API_TOKEN),
            200,
        ),
    ];
    for (n, (case, destination, bearer, status)) in table.into_iter().enumerate() {
        let body = format!("m{n}");
        let response = publish(
            &server,
            destination,
            bearer,
            &[
                ("Content-Type", "application/json"),
                ("X-Conflation-Key", "EURUSD"),
            ],
            &body,
        )
        .await;
        assert_eq!(response.status, status, "{case}: {}", response.body);
        assert!(
            response.head.contains("content-type: application/json"),
            "{case}: {}",
            response.head
        );
        let answer = json_of(&response);
        let mut offset = None;
        match status {
            200 => {
                assert_eq!(answer["destination"], "/topic/prices", "{case}");
                offset = answer["offset"].as_u64();
                assert!(offset.is_some(), "{case}: {answer}");
            }
            202 => assert_eq!(answer["destination"], "/queue/jobs", "{case}"),
            _ => {
                assert!(answer["error"].is_string(), "{case}: {answer}");
                if status == 401 {
                    assert!(response.head.contains("www-authenticate: bearer"), "{case}");
                }
            }
        }
        // What was published reaches the subscriber, with its headers; nothing else does.
        if status < 300 {
            let message = subscriber.expect(Command::Message).await;
            assert_eq!(body_of(&message), body, "{case}");
            assert_eq!(message.header("content-type"), Some("application/json"));
            assert_eq!(message.header("x-conflation-key"), Some("EURUSD"));
            // The offset answered is the one the subscriber sees.
            if let Some(offset) = offset {
                let seen = offset.to_string();
                assert_eq!(
                    message.header("x-stream-offset"),
                    Some(seen.as_str()),
                    "{case}"
                );
            }
        }
    }
    assert!(
        subscriber
            .frame_within(Duration::from_millis(200))
            .await
            .is_none(),
        "nothing refused was published"
    );

    // No destination, a body past the broker's limit (1 MiB), another method.
    let response = http_post(
        server.addr,
        "/api/publish",
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        b"x",
    )
    .await;
    assert_eq!(response.status, 400, "{}", response.body);
    // Refused from the head alone: the body is not sent (the server does not read it).
    let path = "/api/publish?destination=/topic/prices";
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n\
         Content-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    let response = http_exchange(server.addr, head.as_bytes()).await;
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(json_of(&response)["error"].is_string());
    let response = common::http(server.addr, "GET", path).await;
    assert_eq!(response.status, 405);
    assert!(response.head.contains("allow: post"), "{}", response.head);
}

/// The body of a frame as text.
fn body_of(frame: &wsx_stomp::Frame) -> &str {
    body(frame)
}

#[tokio::test]
async fn without_auth_only_loopback_clients_publish() {
    // Listening on every address: a client may come from a non-loopback one.
    let server = Server::start_listening("0.0.0.0:0", &[]);
    let port = server.addr.port();
    let loopback = Server::start(&[]);
    let mut subscriber = Client::connect_anonymous(&loopback, "sub").await;
    subscriber.subscribe("t", "/topic/news", "auto").await;
    let response = publish(&loopback, "/topic/news", None, &[], "hello").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["destination"], "/topic/news");
    assert_eq!(subscriber.message_body().await, "hello");
    // A token is not needed, and one that is not known changes nothing on loopback.
    let response = publish(&loopback, "/topic/news", Some("whatever"), &[], "again").await;
    assert_eq!(response.status, 200, "{}", response.body);

    // This machine's non-loopback address, if it has one (the route to a public address).
    let local = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:9")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let Some(ip) = local else {
        eprintln!("no non-loopback address here: the 403 case is covered by wsx-broker's tests");
        return;
    };
    let response = http_post(
        SocketAddr::new(ip, port),
        "/api/publish?destination=/topic/news",
        &[],
        b"from afar",
    )
    .await;
    assert_eq!(response.status, 403, "{}", response.body);
    assert!(json_of(&response)["error"].is_string());
}

#[tokio::test]
async fn a_publish_on_one_node_reaches_a_subscriber_on_another() {
    let Some(redis) = redis_url("a_publish_on_one_node_reaches_a_subscriber_on_another") else {
        return;
    };
    let prefix = unique_prefix("http-publish");
    let node = |name: &str| {
        Server::start(&[
            "--broker",
            &redis,
            "--redis-prefix",
            &prefix,
            "--node-id",
            name,
            "--api-token",
            API_TOKEN,
        ])
    };
    let a = node("publish-a");
    let b = node("publish-b");
    let mut on_b = Client::connect_anonymous(&b, "sub-b").await;
    on_b.subscribe("s", "/topic/quotes", "auto").await;
    // The subscription is live in Redis once a warm-up message comes through.
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        assert!(Instant::now() < deadline, "no warm-up reached node B");
        let response = publish(
            &a,
            "/topic/quotes",
            Some(API_TOKEN),
            &[],
            &format!("warmup-{n}"),
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.body);
        n += 1;
        if on_b
            .frame_within(Duration::from_millis(100))
            .await
            .is_some()
        {
            break;
        }
    }
    let response = publish(
        &a,
        "/topic/quotes",
        Some(API_TOKEN),
        &[("X-Conflation-Key", "AAPL")],
        "AAPL 190.5",
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    loop {
        let message = on_b.expect(Command::Message).await;
        if body(&message).starts_with("warmup-") {
            continue;
        }
        assert_eq!(body(&message), "AAPL 190.5");
        assert_eq!(message.header("x-conflation-key"), Some("AAPL"));
        break;
    }
    // A queue: 202 on node A, consumed on node B.
    on_b.subscribe("q", "/queue/orders", "auto").await;
    let response = publish(&a, "/queue/orders", Some(API_TOKEN), &[], "order-1").await;
    assert_eq!(response.status, 202, "{}", response.body);
    loop {
        let message = on_b.expect(Command::Message).await;
        if body(&message).starts_with("warmup-") {
            continue;
        }
        assert_eq!(body(&message), "order-1");
        break;
    }
}

/// A queue publish is answered `202` once the message is stored: with Redis down the answer
/// waits (the message is held within the broker's pending-send budget), and comes when Redis
/// is back and has stored it; the message then reaches a consumer.
#[tokio::test]
async fn a_queue_publish_is_answered_once_redis_has_stored_it() {
    if !RedisServer::available("a_queue_publish_is_answered_once_redis_has_stored_it") {
        return;
    }
    let port = free_port();
    let mut redis = RedisServer::start(port);
    let prefix = unique_prefix("http-publish-stored");
    let server = Server::start(&[
        "--broker",
        &redis.url(),
        "--redis-prefix",
        &prefix,
        "--api-token",
        API_TOKEN,
    ]);
    let response = publish(&server, "/queue/orders", Some(API_TOKEN), &[], "before").await;
    assert_eq!(response.status, 202, "{}", response.body);
    wait_metric(&server, "wsx_stomp_redis_pending_sends", |v| v == 0).await;

    redis.kill();
    let mut during = std::pin::pin!(publish(
        &server,
        "/queue/orders",
        Some(API_TOKEN),
        &[],
        "during"
    ));
    // The publish is held, not answered: the answer would promise what Redis has not stored.
    tokio::select! {
        response = &mut during => panic!("answered while redis is down: {}", response.status),
        _ = wait_metric(&server, "wsx_stomp_redis_pending_sends", |v| v == 1) => {}
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut during)
            .await
            .is_err(),
        "no answer while redis is down"
    );

    let _redis = RedisServer::start(port);
    let response = tokio::time::timeout(WAIT, during)
        .await
        .expect("an answer once redis is back");
    assert_eq!(response.status, 202, "{}", response.body);
    assert_eq!(json_of(&response)["destination"], "/queue/orders");
    // Stored: a consumer that comes now gets it (the one before was lost with Redis's keys).
    let mut consumer = Client::connect_anonymous(&server, "consumer").await;
    consumer.subscribe("q", "/queue/orders", "auto").await;
    let message = consumer.expect(Command::Message).await;
    assert_eq!(body(&message), "during");
}

/// Send a publish request's head (the body announced, not sent) and read what the server
/// answers before the body: `100 Continue` (admitted: the body may come) or a final answer.
async fn head_only(server: &Server, bearer: Option<&str>, length: usize) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST /api/publish?destination=/topic/uploads HTTP/1.1\r\nHost: x\r\n{auth}\
         Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("write head");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Until a complete head comes (a 100 Continue, or the final answer's head).
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("an answer before the body, long before --handshake-timeout")
            .expect("read");
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    (tcp, String::from_utf8_lossy(&got).into_owned())
}

/// Nothing of a publish body is held for a request its head already refuses, nor past the
/// budget of bodies being read (16 MiB): a client announcing bodies it sends slowly, or never,
/// gets `503` once sixteen 1 MiB bodies are on their way, and room again once one is done.
#[tokio::test]
async fn publish_bodies_are_read_only_when_admitted_and_within_the_budget() {
    // A late body would be answered 408 only after a minute: every answer below comes first.
    let server = Server::start(&["--api-token", API_TOKEN, "--handshake-timeout", "60"]);
    let mb = 1 << 20;
    let (_refused, answer) = head_only(&server, None, mb).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let (_refused, answer) = head_only(&server, Some("wrong"), mb).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    let mut uploads = Vec::new();
    for n in 0..16 {
        let (tcp, answer) = head_only(&server, Some(API_TOKEN), mb).await;
        assert!(answer.starts_with("HTTP/1.1 100"), "upload {n}: {answer}");
        uploads.push(tcp);
    }
    let (_refused, answer) = head_only(&server, Some(API_TOKEN), mb).await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "past the budget: {answer}"
    );
    assert!(answer.contains("too many request bodies"), "{answer}");
    // A small one does not fit either: the budget is spent.
    let (_refused, answer) = head_only(&server, Some(API_TOKEN), 10).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    // One upload completes: published, and its share of the budget is free again.
    let mut done = uploads.pop().expect("an upload");
    done.write_all(&vec![b'x'; mb]).await.expect("write body");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, done.read_to_end(&mut rest))
        .await
        .expect("the answer")
        .expect("read");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    let (_next, answer) = head_only(&server, Some(API_TOKEN), mb).await;
    assert!(answer.starts_with("HTTP/1.1 100"), "room again: {answer}");
}
