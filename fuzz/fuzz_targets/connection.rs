//! Fuzz target: a whole `wsx_proto::Connection`, in the server or client role, with or without
//! permessage-deflate, fed a byte stream (raw bytes mixed with well-formed and malformed frames
//! and compressed messages) split at fuzzer-chosen points, while the harness polls messages,
//! echoes them, sends its own, and drains the output in writes of fuzzer-chosen sizes.
//!
//! Invariants checked, besides "no panic":
//! - after `poll_message` returns an error, or a close message, it never returns anything again;
//!   an error leaves the connection failed, closed and with its close frame queued;
//! - every received message respects the limits and the RFC (valid UTF-8 text, control payloads
//!   of at most 125 bytes, allowed close codes), and every error maps to a close code;
//! - the buffered output stays bounded by what was fed and sent (at most 3 bytes out per byte in,
//!   for the automatic pongs and close echoes, plus what we sent);
//! - the output is a valid WebSocket stream for the opposite role: a peer `Connection` decodes
//!   it without error into exactly what we sent (plus the automatic pongs and close), with
//!   nothing after our close frame;
//! - what is received does not depend on how the bytes were split: a second connection fed the
//!   whole stream at once (through `with_leftover`) produces the same messages and error.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wsx_fuzz::{DeflateSetup, LenForm, Payload, drain, raw_frame};
use wsx_proto::deflate::PerMessageDeflate;
use wsx_proto::{CloseFrame, Config, Connection, Error, Message, Role, encode_frame};

#[derive(Arbitrary, Debug)]
struct Input {
    server: bool,
    echo: bool,
    deflate: Option<DeflateSetup>,
    limits: Limits,
    pieces: Vec<Piece>,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Limits {
    Default,
    Small { frame: u16, message: u16 },
}

#[derive(Arbitrary, Debug)]
enum Mask {
    /// Masked if and only if the role requires it.
    Auto([u8; 4]),
    Unmasked,
    Masked([u8; 4]),
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Raw(Vec<u8>),
    Frame {
        fin: bool,
        rsv: u8,
        opcode: u8,
        mask: Mask,
        form: LenForm,
        payload: Payload,
    },
    /// A data message, compressed when asked (and deflate is on), cut into fragments.
    Message {
        text: bool,
        compress: bool,
        payload: Payload,
        fragments: Vec<u16>,
        mask: [u8; 4],
        form: LenForm,
    },
}

#[derive(Arbitrary, Debug)]
enum Step {
    Feed(u16),
    FeedRecvBuf(u16),
    Poll,
    Drain(u16),
    Send(Out),
    Release,
}

#[derive(Arbitrary, Debug)]
enum Out {
    Text(String),
    Binary(Vec<u8>),
    Run {
        byte: u8,
        len: u16,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    /// `encode_frame` + `send_encoded` (server role only).
    Encoded(String),
}

/// What the peer must receive from us, in order.
#[derive(Debug)]
enum Expect {
    Msg(Message),
    /// The close frame queued when the connection failed, with its code.
    FailClose(u16),
}

struct Run {
    conn: Connection,
    role: Role,
    config: Config,
    echo: bool,
    events: Vec<Result<Message, Error>>,
    done: bool,
    expected: Vec<Expect>,
    out: Vec<u8>,
    fed: usize,
    send_bound: usize,
}

fn peer_of(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

impl Run {
    fn check_bound(&self) {
        let bound = 256 + 3 * self.fed + self.send_bound;
        assert!(
            self.conn.buffered_amount() <= bound,
            "output grew to {} bytes, bound {bound} (fed {}, sent up to {})",
            self.conn.buffered_amount(),
            self.fed,
            self.send_bound
        );
    }

    fn feed(&mut self, bytes: &[u8], recv_buf: bool) {
        if recv_buf {
            self.conn.recv_buf().extend_from_slice(bytes);
        } else {
            self.conn.feed(bytes);
        }
        self.fed += bytes.len();
        let _ = self.conn.read_hint();
    }

    fn poll(&mut self) {
        loop {
            let close_sent_before = self.conn.is_close_sent();
            let result = self.conn.poll_message();
            if self.done {
                assert!(
                    matches!(result, Ok(None)),
                    "poll_message after an error or close: {result:?}"
                );
                return;
            }
            match result {
                Ok(None) => return,
                Ok(Some(msg)) => {
                    check_message(&msg, &self.config);
                    match &msg {
                        Message::Ping(p) if !close_sent_before => {
                            self.expected.push(Expect::Msg(Message::Pong(p.clone())));
                        }
                        Message::Close(frame) => {
                            assert!(self.conn.is_close_received());
                            assert!(self.conn.is_close_sent(), "a close was not answered");
                            assert!(self.conn.is_closed());
                            if !close_sent_before {
                                let echo = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
                                self.expected.push(Expect::Msg(Message::Close(echo)));
                            }
                            self.done = true;
                        }
                        _ => {}
                    }
                    self.events.push(Ok(msg.clone()));
                    if self.echo && msg.is_data() {
                        self.send(msg);
                    }
                }
                Err(e) => {
                    let code = e.close_code();
                    assert!(
                        code.is_some(),
                        "a receive error without a close code: {e:?}"
                    );
                    assert!(self.conn.is_failed() && self.conn.is_closed());
                    assert!(self.conn.is_close_sent(), "no close frame after an error");
                    if !close_sent_before {
                        assert!(
                            self.conn.has_output(),
                            "the failing close frame is not queued"
                        );
                        if let Some(code) = code {
                            self.expected.push(Expect::FailClose(code.0));
                        }
                    }
                    self.events.push(Err(e));
                    self.done = true;
                }
            }
            self.check_bound();
        }
    }

    fn send(&mut self, msg: Message) {
        let closed = self.conn.is_close_sent() || self.conn.is_failed();
        let len = msg.payload().len();
        match self.conn.send(msg.clone()) {
            Ok(()) => {
                assert!(!closed, "send succeeded after close/failure");
                self.send_bound += len + len / 64 + 64;
                self.expected.push(Expect::Msg(msg));
            }
            Err(Error::Closed) => assert!(closed, "send refused with Closed while open"),
            Err(Error::InvalidSend(_)) => match &msg {
                Message::Ping(p) | Message::Pong(p) => assert!(p.len() > 125),
                Message::Close(Some(f)) => assert!(f.validate_for_send().is_err()),
                other => panic!("InvalidSend for {other:?}"),
            },
            Err(e) => panic!("unexpected send error {e:?}"),
        }
        self.check_bound();
    }

    fn send_encoded(&mut self, text: String) {
        let msg = Message::text(text);
        let Ok(frame) = encode_frame(&msg) else {
            panic!("encode_frame refused a text message");
        };
        let closed = self.conn.is_close_sent() || self.conn.is_failed();
        let len = frame.len();
        match self.conn.send_encoded(frame) {
            Ok(()) => {
                assert!(!closed && self.role == Role::Server);
                self.send_bound += len;
                self.expected.push(Expect::Msg(msg));
            }
            Err(Error::InvalidSend(_)) => assert_eq!(self.role, Role::Client),
            Err(Error::Closed) => assert!(closed),
            Err(e) => panic!("unexpected send_encoded error {e:?}"),
        }
    }

    fn drain(&mut self, max_write: usize) {
        let bytes = drain(&mut self.conn, max_write);
        self.out.extend_from_slice(&bytes);
    }
}

fn check_message(msg: &Message, config: &Config) {
    match msg {
        Message::Text(t) => {
            assert!(
                std::str::from_utf8(t.as_bytes()).is_ok(),
                "invalid UTF-8 text"
            );
            assert!(t.len() <= config.max_message_size, "text over the limit");
        }
        Message::Binary(b) => assert!(b.len() <= config.max_message_size, "binary over the limit"),
        Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125),
        Message::Close(Some(f)) => {
            assert!(
                f.code.is_allowed_on_wire(),
                "close code {} let through",
                f.code.0
            );
            assert!(f.reason.len() <= 123);
            assert!(std::str::from_utf8(f.reason.as_bytes()).is_ok());
        }
        Message::Close(None) => {}
    }
}

/// The byte stream the pieces make, as the peer would send it.
fn build_stream(input: &Input, role: Role) -> Vec<u8> {
    let mut peer_deflate = input
        .deflate
        .as_ref()
        .map(|d| PerMessageDeflate::new(peer_of(role), d.params(), &d.peer_config()));
    let masked = role == Role::Server;
    let mut stream = Vec::new();
    for piece in input.pieces.iter().take(64) {
        match piece {
            Piece::Raw(b) => stream.extend_from_slice(b),
            Piece::Frame {
                fin,
                rsv,
                opcode,
                mask,
                form,
                payload,
            } => {
                let mask = match mask {
                    Mask::Auto(k) => masked.then_some(*k),
                    Mask::Unmasked => None,
                    Mask::Masked(k) => Some(*k),
                };
                stream.extend(raw_frame(
                    *fin,
                    *rsv,
                    *opcode,
                    mask,
                    *form,
                    &payload.bytes(),
                ));
            }
            Piece::Message {
                text,
                compress,
                payload,
                fragments,
                mask,
                form,
            } => {
                let plain = payload.bytes();
                let data = match (compress, peer_deflate.as_mut()) {
                    (true, Some(d)) => {
                        let mut buf = bytes::BytesMut::new();
                        match d.compress(&plain, &mut buf) {
                            Ok(()) => buf.to_vec(),
                            Err(e) => panic!("compressing a test message failed: {e:?}"),
                        }
                    }
                    _ => plain,
                };
                let mask = masked.then_some(*mask);
                let mut rest = &data[..];
                let mut first = true;
                for size in fragments.iter().take(16) {
                    let n = usize::from(*size) % (rest.len() + 1);
                    let (now, later) = rest.split_at(n);
                    let op = if first { if *text { 1 } else { 2 } } else { 0 };
                    let rsv = if first && *compress { 4 } else { 0 };
                    stream.extend(raw_frame(false, rsv, op, mask, *form, now));
                    rest = later;
                    first = false;
                }
                let op = if first { if *text { 1 } else { 2 } } else { 0 };
                let rsv = if first && *compress { 4 } else { 0 };
                stream.extend(raw_frame(true, rsv, op, mask, *form, rest));
            }
        }
    }
    stream
}

fn new_conn(role: Role, config: Config, deflate: Option<&DeflateSetup>) -> Connection {
    let conn = Connection::new(role, config);
    match deflate {
        Some(d) => conn.with_deflate(PerMessageDeflate::new(role, d.params(), &d.config())),
        None => conn,
    }
}

fuzz_target!(|input: Input| {
    let role = if input.server {
        Role::Server
    } else {
        Role::Client
    };
    let config = match input.limits {
        Limits::Default => Config::default(),
        Limits::Small { frame, message } => Config::default()
            .max_frame_size(usize::from(frame))
            .max_message_size(usize::from(message)),
    };
    let stream = build_stream(&input, role);

    let mut run = Run {
        conn: new_conn(role, config, input.deflate.as_ref()),
        role,
        config,
        echo: input.echo,
        events: Vec::new(),
        done: false,
        expected: Vec::new(),
        out: Vec::new(),
        fed: 0,
        send_bound: 0,
    };
    assert_eq!(run.conn.is_compressed(), input.deflate.is_some());

    let mut at = 0;
    for step in input.steps.iter().take(256) {
        match step {
            Step::Feed(n) | Step::FeedRecvBuf(n) => {
                let n = (usize::from(*n) % 4096 + 1).min(stream.len() - at);
                let chunk = &stream[at..at + n];
                at += n;
                run.feed(chunk, matches!(step, Step::FeedRecvBuf(_)));
            }
            Step::Poll => run.poll(),
            Step::Drain(n) => run.drain(usize::from(*n)),
            Step::Send(out) => match out {
                Out::Text(s) => run.send(Message::text(s.as_str())),
                Out::Binary(b) => run.send(Message::binary(b.clone())),
                Out::Run { byte, len } => run.send(Message::binary(vec![*byte; usize::from(*len)])),
                Out::Ping(p) => run.send(Message::Ping(Bytes::copy_from_slice(p))),
                Out::Pong(p) => run.send(Message::Pong(Bytes::copy_from_slice(p))),
                Out::Close(c) => run
                    .send(Message::Close(c.as_ref().map(|(code, reason)| {
                        CloseFrame::new(*code, reason.as_str())
                    }))),
                Out::Encoded(s) => run.send_encoded(s.clone()),
            },
            Step::Release => run.conn.release_idle_buffers(),
        }
        run.check_bound();
    }
    run.feed(&stream[at..], false);
    run.poll();
    // Once failed or closed, more bytes change nothing.
    if run.done {
        run.feed(&stream, false);
        run.poll();
    }
    run.drain(0);
    assert!(!run.conn.has_output() && run.conn.buffered_amount() == 0);

    // The same stream in one piece gives the same messages and error.
    let mut whole = new_conn(role, config, input.deflate.as_ref()).with_leftover(&stream);
    let mut events = Vec::new();
    loop {
        match whole.poll_message() {
            Ok(None) => break,
            Ok(Some(m)) => events.push(Ok(m)),
            Err(e) => {
                events.push(Err(e));
                break;
            }
        }
    }
    assert_eq!(
        run.events, events,
        "received messages depend on how the input was split"
    );

    // Our output is a valid stream for the peer, carrying exactly what we sent.
    let peer_role = peer_of(role);
    let mut peer = Connection::new(peer_role, Config::default());
    if let Some(d) = &input.deflate {
        peer = peer.with_deflate(PerMessageDeflate::new(
            peer_role,
            d.params(),
            &d.peer_config(),
        ));
    }
    peer.feed(&run.out);
    let mut expected = run.expected.iter();
    loop {
        match peer.poll_message() {
            Ok(None) => break,
            Ok(Some(got)) => match expected.next() {
                Some(Expect::Msg(want)) => assert_eq!(&got, want, "the peer got something else"),
                Some(Expect::FailClose(code)) => match &got {
                    Message::Close(Some(f)) => assert_eq!(f.code.0, *code),
                    other => panic!("the peer got {other:?} instead of a close {code}"),
                },
                None => panic!("the peer got {got:?}, which we never sent"),
            },
            Err(e) => panic!("our output is not a valid WebSocket stream: {e:?}"),
        }
    }
    let rest: Vec<&Expect> = expected.collect();
    assert!(rest.is_empty(), "the peer never got {rest:?}");
    assert!(
        peer.recv_buf().is_empty(),
        "{} bytes of output left over after our last frame (or after our close)",
        peer.recv_buf().len()
    );
});
