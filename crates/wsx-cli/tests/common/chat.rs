//! Chat clients for the `wsx serve` end-to-end tests: JSON events over a `wsx` WebSocket on
//! `/ws/chat/{room}`.

use serde_json::{Value, json};
use wsx::{Message, WebSocket};

use super::{Server, WAIT};

/// A chat connection.
pub type Ws = WebSocket<wsx::MaybeTlsStream>;

/// The next message (in time).
pub async fn recv(ws: &mut Ws) -> Message {
    tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a message in time")
        .expect("the connection is open")
        .expect("no error")
}

/// The next JSON text message (pings and pongs skipped).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match recv(ws).await {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a JSON text message, got {other:?}"),
        }
    }
}

/// Skip JSON messages until one of type `ty`.
pub async fn until(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == ty {
            return v;
        }
    }
}

/// Receive until the server's close frame; returns its code and reason, and finishes the close
/// handshake.
pub async fn until_close(ws: &mut Ws) -> (u16, String) {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.recv())
            .await
            .expect("a message in time");
        match msg {
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.expect("a close code");
                // Finish the handshake: recv returns None once it is done.
                while let Some(Ok(_)) = tokio::time::timeout(WAIT, ws.recv())
                    .await
                    .expect("close handshake in time")
                {}
                return (frame.code.0, frame.reason.to_string());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error before the close frame: {e}"),
            None => panic!("closed without a close frame"),
        }
    }
}

/// Send a JSON command.
pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// Connect to `room` and join as `name`; returns the socket and the welcome.
pub async fn join(server: &Server, room: &str, name: &str) -> (Ws, Value) {
    join_with(server, room, json!({"type": "join", "name": name})).await
}

/// Connect to `room` and send `join` (a `join` command); returns the socket and the welcome.
pub async fn join_with(server: &Server, room: &str, join: Value) -> (Ws, Value) {
    let (mut ws, _) = wsx::connect(&server.ws_url(&format!("/ws/chat/{room}")))
        .await
        .expect("connect to the chat");
    send_json(&mut ws, join).await;
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}
