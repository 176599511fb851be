//! The STOMP client (feature `client`) against a scripted server: a real `wsx::Server` on
//! 127.0.0.1 whose connections the test drives frame by frame, so it can check what the client
//! sends (the resume offset of a SUBSCRIBE, the CONNECT headers) and cut connections exactly
//! where it wants. The client against the real broker is tested in wsx-broker and wsx-cli.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use wsx::{Answer, Message, Upgrade, WebSocket};
use wsx_stomp::{
    AckMode, Backoff, ClientError, ClientMessage, Command, ConnectionState, Decoder, Frame,
    Headers, Limits, StartOffset, StompClient, StompClientBuilder, SubscribeOptions, Subscription,
    Version,
};

/// How long anything may take.
const WAIT: Duration = Duration::from_secs(10);

/// A server whose connections come to the test.
struct Scripted {
    addr: SocketAddr,
    connections: mpsc::Receiver<Peer>,
}

impl Scripted {
    async fn start() -> Scripted {
        let server = wsx::Server::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("an address");
        let (tx, connections) = mpsc::channel(8);
        tokio::spawn(server.serve_routes(move |_| {
            let tx = tx.clone();
            Answer::Upgrade(
                Upgrade::new(move |ws, _| async move {
                    let _ = tx.send(Peer::new(ws)).await;
                })
                .subprotocol("v12.stomp"),
            )
        }));
        Scripted { addr, connections }
    }

    fn url(&self) -> String {
        format!("ws://{}/stomp", self.addr)
    }

    /// The next connection.
    async fn accept(&mut self) -> Peer {
        tokio::time::timeout(WAIT, self.connections.recv())
            .await
            .expect("a connection in time")
            .expect("the server runs")
    }

    /// The next connection, answered CONNECTED (no heart-beats); returns the CONNECT too.
    async fn accept_connected(&mut self) -> (Peer, Frame) {
        self.accept_with_heart_beat("0,0").await
    }

    /// The next connection, answered CONNECTED with this `heart-beat` header.
    async fn accept_with_heart_beat(&mut self, heart_beat: &str) -> (Peer, Frame) {
        let mut peer = self.accept().await;
        let connect = peer.expect(Command::Connect).await;
        peer.send(
            Frame::new(Command::Connected)
                .with_header("version", "1.2")
                .with_header("heart-beat", heart_beat),
        )
        .await;
        (peer, connect)
    }
}

/// The server's end of one connection.
struct Peer {
    ws: WebSocket<wsx::MaybeTlsStream>,
    decoder: Decoder,
}

impl Peer {
    fn new(ws: WebSocket<wsx::MaybeTlsStream>) -> Peer {
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(Version::V1_2);
        Peer { ws, decoder }
    }

    async fn send(&mut self, frame: Frame) {
        let bytes = frame.encode(Version::V1_2).expect("encodable");
        let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 frame");
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next frame from the client, which must be a `command`.
    async fn expect(&mut self, command: Command) -> Frame {
        let frame = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(frame) = self.decoder.poll_frame().expect("a valid frame") {
                    return frame;
                }
                match self.ws.recv().await {
                    Some(Ok(message)) => self.decoder.feed(message.payload()),
                    other => panic!("the client went away: {other:?}"),
                }
            }
        })
        .await
        .expect("a frame in time");
        assert_eq!(frame.command, command, "{frame:?}");
        frame
    }

    /// Answer a frame's `receipt` header.
    async fn receipt(&mut self, frame: &Frame) {
        let id = frame.header("receipt").expect("a receipt header");
        self.send(Frame::new(Command::Receipt).with_header("receipt-id", id))
            .await;
    }

    /// Expect a SUBSCRIBE, confirm it, return it.
    async fn subscribed(&mut self) -> Frame {
        let subscribe = self.expect(Command::Subscribe).await;
        self.receipt(&subscribe).await;
        subscribe
    }

    /// A topic MESSAGE with an offset for subscription `id`.
    async fn message(&mut self, id: &str, offset: u64, extra: &[(&str, &str)]) {
        let mut frame = Frame::new(Command::Message)
            .with_header("subscription", id)
            .with_header("destination", "/topic/t")
            .with_header("message-id", format!("m-{offset}"))
            .with_header("x-stream-offset", offset.to_string())
            .with_body(format!("body-{offset}"));
        for (name, value) in extra {
            frame.headers.push(*name, *value);
        }
        self.send(frame).await;
    }

    /// Drop the connection without a goodbye (the TCP connection closes).
    fn cut(self) {
        drop(self);
    }
}

fn builder(urls: &[String]) -> StompClientBuilder {
    let mut builder = StompClient::builder().login("tester").backoff(Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
    ));
    for url in urls {
        builder = builder.url(url);
    }
    builder
}

/// Connect `builder` while `server` answers the first connection.
async fn connect(builder: StompClientBuilder, server: &mut Scripted) -> (StompClient, Peer) {
    let (client, (peer, connect)) = tokio::join!(
        async { builder.connect().await.expect("connected") },
        server.accept_connected()
    );
    assert_eq!(connect.header("accept-version"), Some("1.2"));
    assert_eq!(connect.header("login"), Some("tester"));
    assert!(connect.header("heart-beat").is_some());
    (client, peer)
}

/// Subscribe while `peer` confirms; returns the subscription and the SUBSCRIBE frame.
async fn subscribe(
    client: &StompClient,
    peer: &mut Peer,
    destination: &str,
    options: SubscribeOptions,
) -> (Subscription, Frame) {
    let (subscription, frame) = tokio::join!(
        async {
            client
                .subscribe_with(destination, options)
                .await
                .expect("subscribed")
        },
        peer.subscribed()
    );
    (subscription, frame)
}

async fn next(subscription: &mut Subscription) -> ClientMessage {
    tokio::time::timeout(WAIT, subscription.recv())
        .await
        .expect("a message in time")
        .expect("the client runs")
}

async fn wait_connected(client: &StompClient, connection: u64) {
    tokio::time::timeout(
        WAIT,
        client.wait_for_state(
            |s| matches!(s, ConnectionState::Connected { connection: c, .. } if *c == connection),
        ),
    )
    .await
    .expect("connected in time")
    .expect("the client runs");
}

#[tokio::test]
async fn a_topic_subscription_resumes_after_the_last_message_handed_over() {
    let mut server = Scripted::start().await;
    let (client, mut peer) = connect(builder(&[server.url()]), &mut server).await;
    let (mut topic, subscribe) =
        subscribe(&client, &mut peer, "/topic/t", SubscribeOptions::new()).await;
    // `next` is the default: no header.
    assert_eq!(subscribe.header("x-stream-offset"), None);
    assert_eq!(subscribe.header("destination"), Some("/topic/t"));
    let id = subscribe.header("id").expect("an id").to_owned();

    for offset in 5..=7 {
        peer.message(&id, offset, &[]).await;
    }
    assert_eq!(next(&mut topic).await.offset(), Some(5));
    let six = next(&mut topic).await;
    assert_eq!((six.offset(), six.body_text()), (Some(6), Some("body-6")));
    assert_eq!(topic.last_offset(), Some(6));
    // 7 waits in the subscription's buffer, not handed over, when the connection is cut.
    peer.cut();

    let (mut peer, _) = server.accept_connected().await;
    let resubscribe = peer.subscribed().await;
    assert_eq!(resubscribe.header("id"), Some(id.as_str()));
    assert_eq!(resubscribe.header("x-stream-offset"), Some("offset=7"));
    wait_connected(&client, 2).await;
    peer.message(&id, 7, &[]).await;
    peer.message(&id, 8, &[]).await;
    // The 7 of the first connection was dropped: the server sent it again.
    let seven = next(&mut topic).await;
    assert_eq!((seven.offset(), seven.connection()), (Some(7), 2));
    assert!(!seven.is_gap());
    assert_eq!(next(&mut topic).await.offset(), Some(8));

    // Again, and this time the server no longer has 9: the first message says so.
    peer.cut();
    let (mut peer, _) = server.accept_connected().await;
    let resubscribe = peer.subscribed().await;
    assert_eq!(resubscribe.header("x-stream-offset"), Some("offset=9"));
    peer.message(&id, 12, &[("x-stream-gap", "true")]).await;
    peer.message(&id, 13, &[]).await;
    let twelve = next(&mut topic).await;
    assert_eq!(twelve.offset(), Some(12));
    assert!(twelve.is_gap());
    assert!(!next(&mut topic).await.is_gap());

    // A server that skips without saying so: the client notices at the seam.
    peer.cut();
    let (mut peer, _) = server.accept_connected().await;
    let resubscribe = peer.subscribed().await;
    assert_eq!(resubscribe.header("x-stream-offset"), Some("offset=14"));
    peer.message(&id, 20, &[]).await;
    assert!(next(&mut topic).await.is_gap());
}

#[tokio::test]
async fn a_subscription_that_handed_nothing_resumes_from_its_start_position() {
    let mut server = Scripted::start().await;
    let (client, mut peer) = connect(builder(&[server.url()]), &mut server).await;
    let (_first, first) = subscribe(
        &client,
        &mut peer,
        "/topic/t",
        SubscribeOptions::new().start(StartOffset::First),
    )
    .await;
    assert_eq!(first.header("x-stream-offset"), Some("first"));
    let (_from, from) = subscribe(
        &client,
        &mut peer,
        "/topic/t",
        SubscribeOptions::new().start(StartOffset::Offset(42)),
    )
    .await;
    assert_eq!(from.header("x-stream-offset"), Some("offset=42"));
    // Queues have no offsets.
    let (_queue, queue) = subscribe(
        &client,
        &mut peer,
        "/queue/q",
        SubscribeOptions::new()
            .start(StartOffset::First)
            .ack(AckMode::ClientIndividual)
            .header("selector", "kind = 'a'"),
    )
    .await;
    assert_eq!(queue.header("x-stream-offset"), None);
    assert_eq!(queue.header("ack"), Some("client-individual"));
    assert_eq!(queue.header("selector"), Some("kind = 'a'"));

    peer.cut();
    let (mut peer, _) = server.accept_connected().await;
    let mut offsets = Vec::new();
    for _ in 0..3 {
        let frame = peer.subscribed().await;
        offsets.push((
            frame.header("destination").map(str::to_owned),
            frame.header("x-stream-offset").map(str::to_owned),
        ));
    }
    offsets.sort();
    assert_eq!(
        offsets,
        [
            (Some("/queue/q".to_owned()), None),
            (Some("/topic/t".to_owned()), Some("first".to_owned())),
            (Some("/topic/t".to_owned()), Some("offset=42".to_owned())),
        ]
    );
}

#[tokio::test]
async fn a_send_waits_for_its_receipt_and_fails_clearly_when_the_connection_drops() {
    let mut server = Scripted::start().await;
    let (client, mut peer) = connect(builder(&[server.url()]), &mut server).await;

    let mut headers = Headers::new();
    headers.push("content-type", "text/plain");
    let (sent, frame) = tokio::join!(client.send("/queue/q", headers.clone(), "one"), async {
        let frame = peer.expect(Command::Send).await;
        peer.receipt(&frame).await;
        frame
    });
    sent.expect("confirmed");
    assert_eq!(frame.header("destination"), Some("/queue/q"));
    assert_eq!(frame.header("content-type"), Some("text/plain"));
    assert_eq!(&frame.body[..], b"one");

    // No RECEIPT, and the connection goes: the send fails, and says the server may have it.
    let (sent, ()) = tokio::join!(
        client.send("/queue/q", headers.clone(), "two"),
        async move {
            peer.expect(Command::Send).await;
            peer.cut();
        }
    );
    let error = sent.expect_err("no receipt came");
    assert!(
        matches!(error, ClientError::ConnectionLost { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("may or may not"), "{error}");

    // An ERROR answering the SEND fails it with the server's message.
    let (mut peer, _) = server.accept_connected().await;
    wait_connected(&client, 2).await;
    let (sent, ()) = tokio::join!(client.send("/queue/q", headers, "three"), async {
        let frame = peer.expect(Command::Send).await;
        let id = frame.header("receipt").expect("a receipt").to_owned();
        peer.send(
            Frame::new(Command::Error)
                .with_header("receipt-id", id)
                .with_header("message", "not allowed"),
        )
        .await;
    });
    assert_eq!(
        sent.expect_err("refused"),
        ClientError::Server {
            message: "not allowed".to_owned()
        }
    );
}

#[tokio::test]
async fn the_next_url_is_tried_when_one_is_down_and_connect_fails_when_all_are() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("ws://{}/stomp", listener.local_addr().expect("addr"))
    };
    let mut server = Scripted::start().await;
    let (client, _peer) = connect(builder(&[dead.clone(), server.url()]), &mut server).await;
    let state = client.state().borrow().clone();
    assert_eq!(
        state,
        ConnectionState::Connected {
            url: server.url(),
            connection: 2
        }
    );

    let error = builder(&[dead.clone(), dead.clone()])
        .connect()
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(&error, ClientError::Connect { url, .. } if *url == dead),
        "{error:?}"
    );
    assert_eq!(
        StompClient::builder().connect().await.expect_err("no URL"),
        ClientError::NoUrl
    );
}

#[tokio::test]
async fn an_error_answering_connect_is_a_refusal() {
    let mut server = Scripted::start().await;
    let (result, ()) = tokio::join!(builder(&[server.url()]).connect(), async {
        let mut peer = server.accept().await;
        peer.expect(Command::Connect).await;
        peer.send(Frame::new(Command::Error).with_header("message", "bad credentials"))
            .await;
    });
    let error = result.expect_err("refused");
    assert_eq!(
        error,
        ClientError::Refused {
            url: server.url(),
            message: "bad credentials".to_owned()
        }
    );
}

#[tokio::test]
async fn a_silent_server_is_dropped_after_twice_its_heart_beat() {
    let mut server = Scripted::start().await;
    let client = builder(&[server.url()]).heart_beat(Duration::ZERO, Duration::from_millis(100));
    let (client, (_silent, connect)) = tokio::join!(
        async { client.connect().await.expect("connected") },
        // The server promises something every 100 ms, then says nothing.
        server.accept_with_heart_beat("100,0")
    );
    assert_eq!(connect.header("heart-beat"), Some("0,100"));
    // The peer is still open; the client gives up on it and comes back.
    let (_peer, _) = server.accept_connected().await;
    wait_connected(&client, 2).await;
}

#[tokio::test]
async fn acknowledgements_go_to_the_connection_the_message_came_on() {
    let mut server = Scripted::start().await;
    let (client, mut peer) = connect(builder(&[server.url()]), &mut server).await;
    let (mut queue, subscribe) = subscribe(
        &client,
        &mut peer,
        "/queue/q",
        SubscribeOptions::new().ack(AckMode::ClientIndividual),
    )
    .await;
    let id = subscribe.header("id").expect("an id").to_owned();
    for n in 0..2 {
        peer.send(
            Frame::new(Command::Message)
                .with_header("subscription", id.as_str())
                .with_header("destination", "/queue/q")
                .with_header("message-id", format!("m{n}"))
                .with_header("ack", format!("a{n}"))
                .with_body(format!("job {n}")),
        )
        .await;
    }
    let first = next(&mut queue).await;
    let (acked, ack) = tokio::join!(client.ack(&first), peer.expect(Command::Ack));
    acked.expect("written");
    assert_eq!(ack.header("id"), Some("a0"));
    let second = next(&mut queue).await;
    let (nacked, nack) = tokio::join!(client.nack(&second), peer.expect(Command::Nack));
    nacked.expect("written");
    assert_eq!(nack.header("id"), Some("a1"));

    // A message of a closed connection: the server has put it back already.
    peer.send(
        Frame::new(Command::Message)
            .with_header("subscription", id.as_str())
            .with_header("destination", "/queue/q")
            .with_header("message-id", "m2")
            .with_header("ack", "a2")
            .with_body("job 2"),
    )
    .await;
    let third = next(&mut queue).await;
    peer.cut();
    let (mut peer, _) = server.accept_connected().await;
    peer.subscribed().await;
    wait_connected(&client, 2).await;
    assert_eq!(client.ack(&third).await, Err(ClientError::StaleAck));
}

#[tokio::test]
async fn disconnect_waits_for_the_receipt_and_ends_the_subscriptions() {
    let mut server = Scripted::start().await;
    let (client, mut peer) = connect(builder(&[server.url()]), &mut server).await;
    let (mut topic, _) = subscribe(&client, &mut peer, "/topic/t", SubscribeOptions::new()).await;
    let watcher = client.clone();
    let ((), disconnect) = tokio::join!(client.disconnect(), async {
        let frame = peer.expect(Command::Disconnect).await;
        peer.receipt(&frame).await;
        frame
    });
    assert!(disconnect.header("receipt").is_some());
    assert_eq!(topic.recv().await, None);
    assert_eq!(*watcher.state().borrow(), ConnectionState::Closed);
    assert_eq!(
        watcher.send("/queue/q", Headers::new(), "late").await,
        Err(ClientError::Closed)
    );
}
