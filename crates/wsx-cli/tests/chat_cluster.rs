//! End-to-end tests of chat rooms with offsets and `since`, on one `wsx serve` (memory broker)
//! and across two nodes on one Redis: every `message` event carries its offset, a member coming
//! back with `since` gets exactly what it missed (from the room's history, or replayed from the
//! topic when the room keeps fewer), on any node, also after the node it was on was killed;
//! messages, files and presence cross the nodes (a name taken on one node is not given out on
//! another; a member joining where the room is new gets its recent messages), a killed node's
//! members expire; STOMP clients may read the rooms' topics but not SEND to them.
//!
//! Redis: `WSX_TEST_REDIS_URL` (scripts/test.sh starts one), each test under a key prefix of
//! its own; without it the Redis tests print a skip line, or fail under `CI=true`.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use wsx::{CloseCode, Message};

use common::chat::{Ws, join, join_with, next_json, recv, send_json, until};
use common::{Client, Server, body, cluster_node as node, redis_url, unique_prefix};
use wsx_stomp::Command;

/// How long a killed node's members may stay in the others' presence lists: the expiry (10 s)
/// plus a refresh (3 s), with room to spare.
const EXPIRY_WAIT: Duration = Duration::from_secs(25);

/// Send `text` and wait until `ws` (the sender) gets it back; returns its offset.
async fn say(ws: &mut Ws, text: &str) -> u64 {
    send_json(ws, json!({"type": "message", "text": text})).await;
    let m = until(ws, "message").await;
    assert_eq!(m["text"], text, "{m}");
    m["offset"].as_u64().expect("an offset")
}

/// The next `message` events of `ws`, `n` of them: (offset, text) each.
async fn messages(ws: &mut Ws, n: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = until(ws, "message").await;
        assert!(m.get("gap").is_none(), "no gap expected: {m}");
        got.push((
            m["offset"].as_u64().expect("an offset"),
            m["text"].as_str().expect("a text").to_owned(),
        ));
    }
    got
}

/// Skip events until a `join` of `name` (presence crossing the nodes).
async fn until_join(ws: &mut Ws, name: &str) {
    loop {
        let v = next_json(ws).await;
        if v["type"] == "join" && v["name"] == name {
            return;
        }
    }
}

/// Skip events until a `leave` of `name`, within `within`.
async fn until_leave(ws: &mut Ws, name: &str, within: Duration) {
    tokio::time::timeout(within, async {
        loop {
            let v = next_json(ws).await;
            if v["type"] == "leave" && v["name"] == name {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no leave of {name} within {within:?}"));
}

/// `texts` with offsets following `first`.
fn numbered(first: u64, texts: &[&str]) -> Vec<(u64, String)> {
    texts
        .iter()
        .zip(first..)
        .map(|(t, o)| (o, (*t).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_coming_back_with_since_gets_exactly_what_it_missed() {
    // The room keeps 3 messages: a longer absence is replayed from the topic.
    let server = Server::start(&["--history", "3"]);
    let (mut alice, _) = join(&server, "since", "alice").await;
    until(&mut alice, "presence").await;
    let (mut bob, _) = join(&server, "since", "bob").await;
    until(&mut bob, "presence").await;

    let first = say(&mut alice, "m0").await;
    say(&mut alice, "m1").await;
    assert_eq!(messages(&mut bob, 2).await, numbered(first, &["m0", "m1"]));
    bob.close(CloseCode::NORMAL, "away").await.expect("close");

    let missed = ["m2", "m3", "m4", "m5", "m6"];
    for text in missed {
        say(&mut alice, text).await;
    }

    // Back, from the offset after the last message seen: the five missed, in order, then live.
    let (mut bob, _) = join_with(
        &server,
        "since",
        json!({"type": "join", "name": "bob", "since": first + 2}),
    )
    .await;
    assert_eq!(messages(&mut bob, 5).await, numbered(first + 2, &missed));
    say(&mut alice, "live").await;
    assert_eq!(messages(&mut bob, 1).await, numbered(first + 7, &["live"]));

    // A recent `since` is answered from the room's history.
    let (mut carol, _) = join_with(
        &server,
        "since",
        json!({"type": "join", "name": "carol", "since": first + 6}),
    )
    .await;
    assert_eq!(
        messages(&mut carol, 2).await,
        numbered(first + 6, &["m6", "live"])
    );
    // Without `since`: the room's last three.
    let (mut dan, _) = join(&server, "since", "dan").await;
    assert_eq!(
        messages(&mut dan, 3).await,
        numbered(first + 5, &["m5", "m6", "live"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_clients_read_the_rooms_topics_but_cannot_send_to_them() {
    let server = Server::start(&[]);
    let (mut alice, _) = join(&server, "open", "alice").await;
    until(&mut alice, "presence").await;

    let mut reader = Client::connect_anonymous(&server, "reader").await;
    reader.subscribe("s", "/topic/wsx.chat.open", "auto").await;
    let offset = say(&mut alice, "hello STOMP").await;
    let frame = reader.expect(Command::Message).await;
    let line: Value = serde_json::from_str(body(&frame)).expect("JSON");
    assert_eq!(
        (&line["name"], &line["text"]),
        (&json!("alice"), &json!("hello STOMP"))
    );
    if let Some(header) = frame.header("x-stream-offset") {
        assert_eq!(header, offset.to_string());
    }

    let mut forger = Client::connect_anonymous(&server, "forger").await;
    forger
        .publish(
            "/topic/wsx.chat.open",
            r#"{"name":"alice","text":"forged","ts":0}"#,
            &[],
        )
        .await;
    let error = forger.expect_error_then_close().await;
    assert!(error.contains("reserved"), "{error}");
    // Nothing reached the room: alice's next message is her own.
    say(&mut alice, "still me").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spans_two_nodes_and_a_killed_nodes_members_expire() {
    let Some(redis) = redis_url("a_room_spans_two_nodes_and_a_killed_nodes_members_expire") else {
        return;
    };
    let prefix = unique_prefix("chat-span");
    let a = node(&redis, &prefix, "chat-a", &[]);
    let mut b = node(&redis, &prefix, "chat-b", &[]);
    let (mut ann, _) = join(&a, "span", "ann").await;
    until(&mut ann, "presence").await;
    let (mut bob, _) = join(&b, "span", "bob").await;
    // Presence crosses both ways (B's room says hello, A answers with its members).
    until_join(&mut ann, "bob").await;
    until_join(&mut bob, "ann").await;
    let (mut cy, _) = join(&b, "span", "cy").await;
    let presence = until(&mut cy, "presence").await;
    assert_eq!(presence["users"], json!(["bob", "cy", "ann"]));
    until_join(&mut ann, "cy").await;

    // Messages both ways, in the same order with the same offsets on both nodes.
    let from_a = say(&mut ann, "hi from A").await;
    let expected = numbered(from_a, &["hi from A", "hi from B"]);
    assert_eq!(messages(&mut bob, 1).await, expected[..1]);
    assert_eq!(say(&mut bob, "hi from B").await, from_a + 1);
    assert_eq!(messages(&mut ann, 1).await, expected[1..]);
    assert_eq!(messages(&mut cy, 2).await, expected);

    // A file from B reaches A.
    let data: Vec<u8> = (0..30_000u32).map(|i| (i * 13) as u8).collect();
    send_json(
        &mut bob,
        json!({"type": "file", "name": "notes.txt", "mime": "text/plain", "size": data.len()}),
    )
    .await;
    bob.send(Message::binary(data.clone()))
        .await
        .expect("send file");
    let header = until(&mut ann, "file").await;
    assert_eq!(
        (&header["name"], &header["from"], &header["size"]),
        (&json!("notes.txt"), &json!("bob"), &json!(data.len()))
    );
    assert_eq!(recv(&mut ann).await, Message::binary(data));

    // A member leaving B is a leave on A at once; B killed, its other members expire.
    cy.close(CloseCode::NORMAL, "bye").await.expect("close");
    until_leave(&mut ann, "cy", Duration::from_secs(5)).await;
    b.kill();
    until_leave(&mut ann, "bob", EXPIRY_WAIT).await;
    let (mut dee, _) = join(&a, "span", "dee").await;
    assert_eq!(
        until(&mut dee, "presence").await["users"],
        json!(["ann", "dee"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_across_nodes_after_the_members_node_was_killed() {
    let Some(redis) = redis_url("since_across_nodes_after_the_members_node_was_killed") else {
        return;
    };
    let prefix = unique_prefix("chat-since");
    // Rooms keep 2 messages: what the member missed comes from the topic's history in Redis.
    let mut a = node(&redis, &prefix, "since-a", &["--history", "2"]);
    let b = node(&redis, &prefix, "since-b", &["--history", "2"]);
    let (mut cat, _) = join(&a, "failover", "cat").await;
    until(&mut cat, "presence").await;
    let (mut dan, _) = join(&b, "failover", "dan").await;
    until_join(&mut cat, "dan").await;
    until_join(&mut dan, "cat").await;

    let first = say(&mut dan, "before 1").await;
    say(&mut dan, "before 2").await;
    assert_eq!(
        messages(&mut cat, 2).await,
        numbered(first, &["before 1", "before 2"])
    );
    cat.close(CloseCode::NORMAL, "phone changes networks")
        .await
        .expect("close");

    let missed = ["gone 1", "gone 2", "gone 3", "gone 4", "gone 5"];
    for text in missed {
        say(&mut dan, text).await;
    }
    a.kill();

    let (mut cat, _) = join_with(
        &b,
        "failover",
        json!({"type": "join", "name": "cat", "since": first + 2}),
    )
    .await;
    assert_eq!(messages(&mut cat, 5).await, numbered(first + 2, &missed));
    say(&mut dan, "live").await;
    assert_eq!(messages(&mut cat, 1).await, numbered(first + 7, &["live"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_where_the_room_is_new_gets_its_recent_messages() {
    let Some(redis) = redis_url("a_member_joining_where_the_room_is_new_gets_its_recent_messages")
    else {
        return;
    };
    let prefix = unique_prefix("chat-recent");
    let a = node(&redis, &prefix, "recent-a", &["--history", "3"]);
    let b = node(&redis, &prefix, "recent-b", &["--history", "3"]);
    let (mut ann, _) = join(&a, "recent", "ann").await;
    until(&mut ann, "presence").await;
    let sent = ["m0", "m1", "m2", "m3", "m4"];
    let first = say(&mut ann, sent[0]).await;
    for text in &sent[1..] {
        say(&mut ann, text).await;
    }

    // Node B has no member in the room yet: joining without `since`, bob gets the room's last
    // three messages from the topic, as he would on node A, then live ones.
    let (mut bob, _) = join(&b, "recent", "bob").await;
    assert_eq!(
        messages(&mut bob, 3).await,
        numbered(first + 2, &["m2", "m3", "m4"])
    );
    say(&mut ann, "live").await;
    assert_eq!(messages(&mut bob, 1).await, numbered(first + 5, &["live"]));
}

#[tokio::test]
async fn a_name_taken_on_another_node_is_not_given_out_again() {
    let Some(redis) = redis_url("a_name_taken_on_another_node_is_not_given_out_again") else {
        return;
    };
    let prefix = unique_prefix("chat-names");
    let a = node(&redis, &prefix, "names-a", &[]);
    let b = node(&redis, &prefix, "names-b", &[]);
    let (mut ann, welcome) = join(&a, "names", "ann").await;
    assert_eq!(welcome["name"], "ann");
    until(&mut ann, "presence").await;
    let (mut bob, _) = join(&b, "names", "bob").await;
    // Node B knows ann once its member sees her in the room.
    until_join(&mut bob, "ann").await;
    let (mut second, welcome) = join(&b, "names", "ANN").await;
    assert_eq!(welcome["name"], "ANN 2", "{welcome}");
    let presence = until(&mut second, "presence").await;
    assert_eq!(presence["users"], json!(["bob", "ANN 2", "ann"]));
    until_join(&mut ann, "ANN 2").await;
}
