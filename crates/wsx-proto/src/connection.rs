//! The connection state machine: bytes in, messages out; messages in, bytes out.
//!
//! After the handshake, the I/O layer drives a [`Connection`] like this:
//!
//! 1. read bytes from the transport into [`Connection::recv_buf`] (or hand them over with
//!    [`Connection::feed`]);
//! 2. call [`Connection::poll_message`] until it returns `Ok(None)` (more bytes needed);
//! 3. queue messages with [`Connection::send`]; pings are answered and close frames echoed
//!    automatically;
//! 4. write the queued bytes ([`Connection::output_chunks`], [`Connection::advance_output`]);
//! 5. after an error from `poll_message` (the close frame it queued is in the output) or once
//!    [`Connection::is_closed`], flush and close the transport: a server at once, a client after
//!    the server closed its side (or a timeout).
//!
//! Received frames are decoded in place in the read buffer: payloads are unmasked where they lie
//! and handed out as [`Bytes`] split from it, so a single-frame message is never copied. Text is
//! validated as it arrives, even inside a frame that is only partly received.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::deflate::{BroadcastCompression, PerMessageDeflate, stored_blocks};
use crate::error::{Error, ProtocolError};
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode};
use crate::mask::apply_mask;
use crate::mask_keys::MaskKeySource;
use crate::message::{Message, Utf8Bytes};
use crate::output::OutputQueue;
use crate::pool::{self, Class};
use crate::role::Role;
use crate::shared::{SharedPayload, SharedSend};
use crate::timers::{Due, Timeout, TimerConfig, TimerSlot};
use crate::utf8::Utf8Validator;

/// Queued output (in bytes) from which pongs stop being queued one per ping: past it, at most
/// one pong waits (outside the queue), and a newer ping replaces its payload (RFC 6455 §5.5.3
/// allows answering only the most recent ping). Below it every ping gets its own pong, so a
/// burst of pings from a peer that reads (Autobahn cases 2.10 and 2.11) is answered in full.
pub const PONG_COALESCE_AT: usize = 16 * 1024;

/// A frame whose header has been decoded and whose payload is (partly) in the read buffer.
#[derive(Debug)]
struct InFrame {
    header: FrameHeader,
    /// Payload bytes at the front of the read buffer already unmasked (and validated).
    unmasked: usize,
    /// Whether the payload is uncompressed text, validated as it arrives.
    validate_utf8: bool,
}

/// A fragmented or compressed message being assembled.
#[derive(Debug)]
struct InMessage {
    text: bool,
    compressed: bool,
    buf: BytesMut,
}

/// A control frame payload kept inline (at most 125 bytes), so that owing a pong allocates
/// nothing.
#[derive(Debug, Clone, Copy)]
struct PongPayload {
    len: u8,
    bytes: [u8; MAX_CONTROL_PAYLOAD],
}

impl PongPayload {
    /// `payload` is a received ping's, which the frame decoder bounded by 125 bytes.
    fn new(payload: &[u8]) -> Self {
        let len = payload.len().min(MAX_CONTROL_PAYLOAD);
        let mut bytes = [0; MAX_CONTROL_PAYLOAD];
        bytes[..len].copy_from_slice(&payload[..len]);
        PongPayload {
            len: len as u8,
            bytes,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A fragmented message being sent: its type, and UTF-8 checking across fragments.
#[derive(Debug)]
struct OutFragmented {
    text: bool,
    utf8: Utf8Validator,
}

/// A WebSocket connection after the handshake, without I/O.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    rx: BytesMut,
    /// Whether `rx` may be backed by more than the buffer pool keeps: it grew past
    /// `pool::MAX_CAPACITY`, or was handed out by [`Connection::recv_buf`]. Such a buffer is
    /// freed, not pooled, when the connection goes idle.
    rx_oversized: bool,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    utf8: Utf8Validator,
    out: OutputQueue,
    deflate: Option<Box<PerMessageDeflate>>,
    /// The fragmented message being sent, if any.
    out_fragmented: Option<OutFragmented>,
    /// The payload of the pong owed for the latest ping, while the output is backed up (see
    /// [`PONG_COALESCE_AT`]): queued before the next frame, or once the queue has drained.
    /// Only ever set while the output queue is not empty.
    pending_pong: Option<PongPayload>,
    /// The size of the frame of `pending_pong` (0 without one), so that
    /// [`Connection::buffered_amount`] is one addition on the hot path.
    pending_pong_bytes: usize,
    /// Keepalive and the close deadline (see `timers.rs`).
    timers: TimerSlot,
    /// Where a client's masking keys come from; `None`: the thread's random generator.
    mask_keys: Option<Arc<dyn MaskKeySource>>,
    close_sent: bool,
    close_received: bool,
    failed: bool,
}

impl Connection {
    /// A connection for `role` with the given limits and no extension.
    pub fn new(role: Role, config: Config) -> Self {
        Connection {
            role,
            config,
            rx: BytesMut::new(),
            rx_oversized: false,
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            out: OutputQueue::default(),
            deflate: None,
            out_fragmented: None,
            pending_pong: None,
            pending_pong_bytes: 0,
            timers: TimerSlot::None,
            mask_keys: None,
            close_sent: false,
            close_received: false,
            failed: false,
        }
    }

    /// Enable permessage-deflate with the parameters negotiated in the handshake.
    pub fn with_deflate(mut self, deflate: PerMessageDeflate) -> Self {
        self.deflate = Some(Box::new(deflate));
        self
    }

    /// Take the masking keys of a client's frames from `source` instead of the thread's random
    /// generator (a server masks nothing and never asks it).
    pub fn with_mask_keys(mut self, source: Arc<dyn MaskKeySource>) -> Self {
        self.mask_keys = Some(source);
        self
    }

    /// Run the timers of `config` (keepalive, idle timeout, close deadline), starting at `now`;
    /// see [`Connection::poll_timeout`].
    pub fn with_timers(mut self, config: TimerConfig, now: Instant) -> Self {
        self.timers = TimerSlot::new(config, now);
        self
    }

    /// Start with bytes that arrived together with the handshake.
    pub fn with_leftover(mut self, bytes: &[u8]) -> Self {
        self.feed(bytes);
        self
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    // ----- input -----

    /// The read buffer: append received bytes to it (for example with `read_buf`).
    pub fn recv_buf(&mut self) -> &mut BytesMut {
        // The caller may grow it at will: it is not pooled when released.
        self.rx_oversized = true;
        &mut self.rx
    }

    /// The read buffer with at least `min_spare` bytes of free room (three times that while it
    /// is empty, when making room moves no data): when it has less, `reserve` makes room for
    /// `additional` more bytes (at least that). A connection without a buffer (see
    /// [`Connection::release_idle_buffers`]) first borrows one from this thread's buffer pool,
    /// so one that goes idle after every message allocates none per message.
    pub fn recv_buf_reserve(&mut self, min_spare: usize, additional: usize) -> &mut BytesMut {
        if self.rx.capacity() == 0 {
            // Becoming active: borrow a read buffer, and a staging buffer for the output queue
            // (a connection that reads usually answers), in one visit to the pool.
            let out = &mut self.out;
            let rx = &mut self.rx;
            pool::with(|p| {
                *rx = p.take(Class::Read);
                if out.lacks_staging() {
                    out.take_staging(p);
                }
            });
            self.rx_oversized = false;
        }
        // An empty buffer gets the room from its start back (nothing to move) well before its
        // free room runs short, so that a frame of up to `3 * min_spare` bytes fits in it whole
        // instead of being moved to a larger buffer once its first part has arrived.
        let min_spare = if self.rx.is_empty() {
            min_spare.saturating_mul(3)
        } else {
            min_spare
        };
        if self.rx.capacity() - self.rx.len() < min_spare {
            self.rx.reserve(additional.max(min_spare));
            self.rx_oversized |= self.rx.capacity() > pool::MAX_CAPACITY;
        }
        &mut self.rx
    }

    /// Append received bytes (copies them; [`Connection::recv_buf`] avoids the copy).
    pub fn feed(&mut self, data: &[u8]) {
        self.rx.extend_from_slice(data);
        self.rx_oversized |= self.rx.capacity() > pool::MAX_CAPACITY;
    }

    /// How many more bytes the frame being received needs, at least (0 when unknown): a hint for
    /// reserving read buffer space once for a large frame.
    pub fn read_hint(&self) -> usize {
        match &self.frame {
            Some(f) => (f.header.payload_len as usize).saturating_sub(self.rx.len()),
            None => 0,
        }
    }

    /// Process received bytes: the next message, `Ok(None)` when more bytes are needed (or the
    /// connection is closed), or the error that failed the connection. After an error, a close
    /// frame with the matching code is queued and no more messages are produced.
    ///
    /// Pings are answered with a pong and a received close is echoed before they are returned.
    #[inline]
    pub fn poll_message(&mut self) -> Result<Option<Message>, Error> {
        if self.rx.is_empty() && self.frame.is_none() {
            // Nothing to decode (the common case before a read): no frame is half received,
            // and a frame is only ever left pending while its payload is incomplete.
            return Ok(None);
        }
        self.decode_messages()
    }

    /// [`Connection::poll_message`] once there are bytes to look at.
    #[inline(never)]
    fn decode_messages(&mut self) -> Result<Option<Message>, Error> {
        while !(self.failed || self.close_received) {
            match self.step() {
                Ok(Step::NeedMore) => return Ok(None),
                Ok(Step::Continue) => {}
                Ok(Step::Message(m)) => return Ok(Some(m)),
                Err(e) => {
                    self.fail(&e);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    fn step(&mut self) -> Result<Step, Error> {
        if self.frame.is_none() {
            let Some((header, len)) = FrameHeader::decode(&self.rx)? else {
                return Ok(Step::NeedMore);
            };
            let validate_utf8 = self.check_header(&header)?;
            self.rx.advance(len);
            self.frame = Some(InFrame {
                header,
                unmasked: 0,
                validate_utf8,
            });
        }
        let Some(frame) = self.frame.as_mut() else {
            return Ok(Step::NeedMore);
        };
        // check_header bounded the length by max_frame_size, a usize.
        let len = frame.header.payload_len as usize;
        let avail = self.rx.len().min(len);
        if avail > frame.unmasked {
            let fresh = &mut self.rx[frame.unmasked..avail];
            if let Some(key) = frame.header.mask {
                apply_mask(fresh, key, frame.unmasked);
            }
            if frame.validate_utf8 {
                self.utf8.feed(fresh).map_err(|_| Error::InvalidUtf8)?;
            }
            frame.unmasked = avail;
        }
        if avail < len {
            return Ok(Step::NeedMore);
        }
        let header = frame.header;
        self.frame = None;
        let payload = self.rx.split_to(len).freeze();
        self.on_frame(header, payload)
    }

    /// Check a header against the role, extensions, message state and limits. Returns whether
    /// its payload is uncompressed text to validate as it arrives.
    fn check_header(&self, h: &FrameHeader) -> Result<bool, Error> {
        if h.rsv2 || h.rsv3 || (h.rsv1 && self.deflate.is_none()) {
            return Err(ProtocolError::ReservedBits.into());
        }
        if h.rsv1 && (h.opcode == OpCode::Continuation || h.opcode.is_control()) {
            return Err(ProtocolError::CompressedControlOrContinuation.into());
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame.into()),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame.into()),
            _ => {}
        }
        let limit = self.config.max_frame_size;
        if h.payload_len > limit as u64 {
            return Err(Error::FrameTooBig {
                size: h.payload_len,
                limit,
            });
        }
        let (validate, so_far, compressed) = match (h.opcode, &self.message) {
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::UnexpectedContinuation.into());
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation.into());
            }
            (OpCode::Continuation, Some(m)) => (m.text && !m.compressed, m.buf.len(), m.compressed),
            (OpCode::Text, None) => (!h.rsv1, 0, h.rsv1),
            _ => (false, 0, h.rsv1),
        };
        let limit = self.config.max_message_size;
        if !h.opcode.is_control() && !compressed && so_far as u64 + h.payload_len > limit as u64 {
            return Err(Error::MessageTooBig {
                size: so_far as u64 + h.payload_len,
                limit,
            });
        }
        Ok(validate)
    }

    fn on_frame(&mut self, header: FrameHeader, payload: Bytes) -> Result<Step, Error> {
        match header.opcode {
            OpCode::Ping => {
                if !self.close_sent {
                    if self.out.len() < PONG_COALESCE_AT {
                        self.queue_frame(OpCode::Pong, false, &payload, None);
                    } else {
                        // The peer is not reading what we send: owe it one pong, for this
                        // ping (copied: the payload shares the read buffer's memory).
                        let pong = PongPayload::new(&payload);
                        self.pending_pong_bytes = 2 + pong.as_slice().len();
                        self.pending_pong = Some(pong);
                    }
                }
                Ok(Step::Message(Message::Ping(payload)))
            }
            OpCode::Pong => {
                self.timers.on_pong(&payload);
                Ok(Step::Message(Message::Pong(payload)))
            }
            OpCode::Close => {
                let frame = CloseFrame::parse(payload)?;
                self.close_received = true;
                if !self.close_sent {
                    // Echo the status code (RFC 6455 §5.5.1).
                    let echo = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
                    self.queue_close(echo.as_ref());
                }
                Ok(Step::Message(Message::Close(frame)))
            }
            OpCode::Text | OpCode::Binary if header.fin && !header.rsv1 => {
                if header.opcode == OpCode::Binary {
                    return Ok(Step::Message(Message::Binary(payload)));
                }
                self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
                Ok(Step::Message(Message::Text(
                    Utf8Bytes::from_bytes_unchecked(payload),
                )))
            }
            OpCode::Text | OpCode::Binary => {
                self.message = Some(InMessage {
                    text: header.opcode == OpCode::Text,
                    compressed: header.rsv1,
                    buf: BytesMut::new(),
                });
                self.append(payload, header.fin)
            }
            OpCode::Continuation => self.append(payload, header.fin),
        }
    }

    /// Add a data frame's payload to the message being assembled.
    fn append(&mut self, payload: Bytes, fin: bool) -> Result<Step, Error> {
        let Some(msg) = self.message.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation.into());
        };
        if msg.compressed {
            let Some(deflate) = self.deflate.as_mut() else {
                return Err(ProtocolError::ReservedBits.into());
            };
            let before = msg.buf.len();
            deflate.decompress(&payload, fin, &mut msg.buf, self.config.max_message_size)?;
            if msg.text {
                self.utf8
                    .feed(&msg.buf[before..])
                    .map_err(|_| Error::InvalidUtf8)?;
            }
        } else if msg.buf.is_empty() && fin {
            // Nothing to join: hand the payload over as it is.
            msg.buf = BytesMut::from(payload);
        } else {
            msg.buf.extend_from_slice(&payload);
        }
        if !fin {
            return Ok(Step::Continue);
        }
        let Some(msg) = self.message.take() else {
            return Ok(Step::Continue);
        };
        let data = msg.buf.freeze();
        if msg.text {
            self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
            Ok(Step::Message(Message::Text(
                Utf8Bytes::from_bytes_unchecked(data),
            )))
        } else {
            Ok(Step::Message(Message::Binary(data)))
        }
    }

    /// Fail the connection: queue a close frame with the error's code and stop reading.
    fn fail(&mut self, err: &Error) {
        self.failed = true;
        self.frame = None;
        self.message = None;
        if !self.close_sent {
            let frame = match err {
                Error::Timeout(t) => t
                    .close_frame()
                    .map(|(code, why)| CloseFrame::new(code, why)),
                _ => None,
            };
            let frame = frame.unwrap_or_else(|| {
                let code = err.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                CloseFrame::truncated(code, &err.to_string())
            });
            self.queue_close(Some(&frame));
        }
    }

    // ----- output -----

    /// Queue a message to send. Data messages are compressed when permessage-deflate is in use
    /// and the policy says so; a close frame starts (or completes) the close handshake.
    pub fn send(&mut self, msg: Message) -> Result<(), Error> {
        match msg {
            Message::Text(t) => self.send_data(OpCode::Text, t.into_bytes()),
            Message::Binary(b) => self.send_data(OpCode::Binary, b),
            Message::Ping(p) => self.send_control(OpCode::Ping, p),
            Message::Pong(p) => self.send_control(OpCode::Pong, p),
            Message::Close(frame) => self.close(frame),
        }
    }

    #[inline]
    fn send_data(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        if self.close_sent || self.failed {
            return Err(Error::Closed);
        }
        if self.out_fragmented.is_some() {
            return Err(Error::InvalidSend("a fragmented message is being sent"));
        }
        if let Some(deflate) = self.deflate.as_mut()
            && deflate.should_compress(payload.len())
        {
            let mut buf = BytesMut::new();
            deflate.compress(&payload, &mut buf)?;
            let compressed = buf.freeze();
            self.queue_frame(opcode, true, &compressed, Some(&compressed));
            return Ok(());
        }
        self.queue_frame(opcode, false, &payload, Some(&payload));
        Ok(())
    }

    /// Send one frame of a fragmented message: `OpCode::Text` or `OpCode::Binary` starts it,
    /// `OpCode::Continuation` continues it, `fin` ends it. Control messages may be sent between
    /// fragments; other data messages may not. Text may split a code point between fragments,
    /// but the whole must be valid UTF-8. Fragmented messages are sent uncompressed.
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        fin: bool,
    ) -> Result<(), Error> {
        if self.close_sent || self.failed {
            return Err(Error::Closed);
        }
        let mut state = match (opcode, self.out_fragmented.take()) {
            (OpCode::Text | OpCode::Binary, None) => OutFragmented {
                text: opcode == OpCode::Text,
                utf8: Utf8Validator::new(),
            },
            (OpCode::Continuation, Some(state)) => state,
            (OpCode::Continuation, None) => {
                return Err(Error::InvalidSend("no fragmented message to continue"));
            }
            (OpCode::Text | OpCode::Binary, Some(state)) => {
                self.out_fragmented = Some(state);
                return Err(Error::InvalidSend("a fragmented message is being sent"));
            }
            _ => {
                return Err(Error::InvalidSend(
                    "fragments are text, binary or continuation frames",
                ));
            }
        };
        if state.text {
            let checked = state
                .utf8
                .feed(&payload)
                .and_then(|()| if fin { state.utf8.finish() } else { Ok(()) });
            if checked.is_err() {
                // The message can no longer be completed validly; let it be restarted.
                return Err(Error::InvalidSend("text fragments are not valid UTF-8"));
            }
        }
        let mut header = FrameHeader::new(opcode, payload.len() as u64);
        header.fin = fin;
        if self.role.masks_outgoing() {
            header.mask = Some(self.next_mask_key());
        }
        self.queue_pending_pong();
        self.out.push_frame(&header, &payload, Some(&payload));
        if !fin {
            self.out_fragmented = Some(state);
        }
        Ok(())
    }

    /// Queue one unfragmented, uncompressed data message whose payload is `head` followed by
    /// `tail`: a message made of a per-connection part and a part shared by many connections
    /// (a broadcast with a per-recipient prefix). On a server a large `tail` is queued as it is,
    /// without a copy; a client copies both parts, since it must mask them.
    ///
    /// `opcode` is `OpCode::Text` or `OpCode::Binary`; text is checked to be UTF-8 (head and
    /// tail together). The message is never compressed, even when permessage-deflate is in use.
    pub fn send_with_shared_tail(
        &mut self,
        opcode: OpCode,
        head: &[u8],
        tail: Bytes,
    ) -> Result<(), Error> {
        if self.close_sent || self.failed {
            return Err(Error::Closed);
        }
        if self.out_fragmented.is_some() {
            return Err(Error::InvalidSend("a fragmented message is being sent"));
        }
        Connection::check_shared_tail(opcode, head, &tail)?;
        let mut header = FrameHeader::new(opcode, (head.len() + tail.len()) as u64);
        if self.role.masks_outgoing() {
            header.mask = Some(self.next_mask_key());
        }
        self.queue_pending_pong();
        self.out.push_frame_parts(&header, head, &tail, Some(&tail));
        Ok(())
    }

    /// Queue one unfragmented data message whose payload is `head` followed by `tail`, a
    /// payload shared by many connections (a broadcast, with a per-connection head that may be
    /// empty), and say how it went out.
    ///
    /// With permessage-deflate, a message of at least `min_size` bytes is compressed: when our
    /// compressor keeps no context (the default), `tail` is compressed once for every
    /// connection with the same compressor parameters ([`SharedPayload`]) and `head` goes in
    /// front of it as stored deflate blocks; when it keeps context, this connection compresses
    /// the whole message itself. Otherwise the message goes out as it is; on a server a large
    /// `tail` (or compressed tail) is queued without a copy.
    ///
    /// `opcode` is `OpCode::Text` or `OpCode::Binary`; text is checked to be UTF-8.
    pub fn send_shared(
        &mut self,
        opcode: OpCode,
        head: &[u8],
        tail: &SharedPayload,
    ) -> Result<SharedSend, Error> {
        if self.close_sent || self.failed {
            return Err(Error::Closed);
        }
        if self.out_fragmented.is_some() {
            return Err(Error::InvalidSend("a fragmented message is being sent"));
        }
        if !(opcode == OpCode::Text && tail.is_utf8() && simdutf8::basic::from_utf8(head).is_ok()) {
            Connection::check_shared_tail(opcode, head, tail.bytes())?;
        }
        let len = head.len() + tail.len();
        let how = self
            .deflate
            .as_deref()
            .map_or(BroadcastCompression::None, |d| {
                d.broadcast_compression(len, tail.len())
            });
        let sent = match how {
            BroadcastCompression::None => {
                let header = self.data_header(opcode, len, false);
                self.queue_pending_pong();
                self.out
                    .push_frame_parts(&header, head, tail.bytes(), Some(tail.bytes()));
                SharedSend::Uncompressed
            }
            BroadcastCompression::Shared(key) => {
                let (compressed, compressed_now) = tail.compressed(key)?;
                let mut stored = BytesMut::new();
                stored_blocks(head, &mut stored);
                let header = self.data_header(opcode, stored.len() + compressed.len(), true);
                self.queue_pending_pong();
                self.out
                    .push_frame_parts(&header, &stored, &compressed, Some(&compressed));
                SharedSend::SharedCompressed { compressed_now }
            }
            BroadcastCompression::Own => {
                let mut whole = BytesMut::with_capacity(len);
                whole.extend_from_slice(head);
                whole.extend_from_slice(tail.bytes());
                let mut buf = BytesMut::new();
                if let Some(deflate) = self.deflate.as_mut() {
                    deflate.compress(&whole, &mut buf)?;
                }
                let compressed = buf.freeze();
                self.queue_frame(opcode, true, &compressed, Some(&compressed));
                SharedSend::OwnCompressed
            }
        };
        Ok(sent)
    }

    /// Whether `head` followed by `tail` can be sent as one message with `opcode`
    /// ([`Connection::send_with_shared_tail`]): a text or binary opcode, and valid UTF-8 for
    /// text. A layer that queues such messages elsewhere first can check them here.
    pub fn check_shared_tail(opcode: OpCode, head: &[u8], tail: &[u8]) -> Result<(), Error> {
        match opcode {
            OpCode::Binary => Ok(()),
            OpCode::Text => {
                let mut utf8 = Utf8Validator::new();
                utf8.feed(head)
                    .and_then(|()| utf8.feed(tail))
                    .and_then(|()| utf8.finish())
                    .map_err(|_| Error::InvalidSend("text is not valid UTF-8"))
            }
            _ => Err(Error::InvalidSend(
                "a message with a shared tail is text or binary",
            )),
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        if self.close_sent || self.failed {
            return Err(Error::Closed);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::InvalidSend("control frame payload over 125 bytes"));
        }
        self.queue_frame(opcode, false, &payload, None);
        Ok(())
    }

    /// Start the close handshake (or answer the peer's close) with an optional code and reason.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.close_sent || self.failed {
            return Err(Error::Closed);
        }
        if let Some(f) = &frame {
            f.validate_for_send()?;
        }
        self.queue_close(frame.as_ref());
        Ok(())
    }

    /// Queue already encoded, unmasked frames (server role only), for example one broadcast
    /// frame encoded once with [`encode_frame`] and shared among many connections.
    pub fn send_encoded(&mut self, frames: Bytes) -> Result<(), Error> {
        if self.role.masks_outgoing() {
            return Err(Error::InvalidSend("a client must mask its frames"));
        }
        if self.close_sent || self.failed {
            return Err(Error::Closed);
        }
        self.queue_pending_pong();
        self.out.push_encoded(frames);
        Ok(())
    }

    fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = BytesMut::new();
        if let Some(f) = frame {
            f.encode(&mut payload);
        }
        self.queue_frame(OpCode::Close, false, &payload, None);
        self.close_sent = true;
    }

    #[inline(always)]
    fn queue_frame(&mut self, opcode: OpCode, rsv1: bool, payload: &[u8], shared: Option<&Bytes>) {
        self.queue_pending_pong();
        self.push_frame(opcode, rsv1, payload, shared);
    }

    /// Queue the pong owed to the peer, if there is one, ahead of what comes next.
    #[inline(always)]
    fn queue_pending_pong(&mut self) {
        if self.pending_pong.is_some() {
            self.queue_pending_pong_cold();
        }
    }

    /// The rare case of [`Connection::queue_pending_pong`], kept out of the send path.
    #[cold]
    #[inline(never)]
    fn queue_pending_pong_cold(&mut self) {
        self.pending_pong_bytes = 0;
        if let Some(pong) = self.pending_pong.take() {
            self.push_frame(OpCode::Pong, false, pong.as_slice(), None);
        }
    }

    #[inline]
    fn push_frame(&mut self, opcode: OpCode, rsv1: bool, payload: &[u8], shared: Option<&Bytes>) {
        let mut header = FrameHeader::new(opcode, payload.len() as u64);
        header.rsv1 = rsv1;
        if self.role.masks_outgoing() {
            header.mask = Some(self.next_mask_key());
        }
        self.out.push_frame(&header, payload, shared);
    }

    /// The header of an unfragmented data frame of `len` bytes, masked on a client.
    fn data_header(&self, opcode: OpCode, len: usize, rsv1: bool) -> FrameHeader {
        let mut header = FrameHeader::new(opcode, len as u64);
        header.rsv1 = rsv1;
        if self.role.masks_outgoing() {
            header.mask = Some(self.next_mask_key());
        }
        header
    }

    /// The masking key for the next frame (client role).
    fn next_mask_key(&self) -> [u8; 4] {
        match &self.mask_keys {
            Some(source) => source.next_key(),
            None => rand::random(),
        }
    }

    /// Everything queued, as written to a peer that reads it all (for tests).
    #[cfg(test)]
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        let mut written = Vec::new();
        while self.has_output() {
            let chunk = self.output_first_chunk().to_vec();
            self.advance_output(chunk.len());
            written.extend_from_slice(&chunk);
        }
        written
    }

    /// Whether there are bytes to write.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The number of bytes queued for writing (with the pong owed to the peer, if one waits).
    #[inline]
    pub fn buffered_amount(&self) -> usize {
        self.out.len() + self.pending_pong_bytes
    }

    /// Whether a pong waits outside the output queue for the queue to drain (see
    /// [`PONG_COALESCE_AT`]).
    pub fn has_pending_pong(&self) -> bool {
        self.pending_pong.is_some()
    }

    /// Fill `dst` with the queued output, in order, for a vectored write; returns the number of
    /// slices filled.
    pub fn output_chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.out.chunks(dst)
    }

    /// The first contiguous run of queued output, for a plain write.
    pub fn output_first_chunk(&self) -> &[u8] {
        self.out.first_chunk()
    }

    /// Mark `n` bytes of output as written. Once everything is written, the pong owed to the
    /// peer (if any) is queued.
    #[inline]
    pub fn advance_output(&mut self, n: usize) {
        self.out.advance(n);
        if self.out.is_empty() {
            self.queue_pending_pong();
        }
    }

    /// Drop buffers that hold nothing, so an idle connection keeps no read or write buffer.
    /// Frames and messages handed out stay valid. The buffers go back to a small per-thread
    /// pool (bounded in number and size) that [`Connection::recv_buf_reserve`] and the output
    /// queue borrow from.
    pub fn release_idle_buffers(&mut self) {
        let mut give_rx = false;
        if self.rx.is_empty() && self.rx.capacity() != 0 {
            if std::mem::replace(&mut self.rx_oversized, false) {
                self.rx = BytesMut::new();
            } else {
                give_rx = true;
            }
        }
        let give_staging = self.out.release_if_empty_keeping_staging();
        if give_rx || give_staging {
            let out = &mut self.out;
            let rx = &mut self.rx;
            let given = pool::with(|p| {
                if give_rx {
                    p.give(Class::Read, rx);
                }
                if give_staging {
                    out.give_staging(p);
                }
            });
            if given.is_none() {
                // No pool (the thread is shutting down): free them.
                if give_rx {
                    self.rx = BytesMut::new();
                }
                self.out.release_if_empty();
            }
        }
    }

    // ----- time (see `timers.rs`) -----

    /// Whether keepalive (pings or an idle timeout) runs: then report when bytes arrive with
    /// [`Connection::mark_received`].
    pub fn has_keepalive(&self) -> bool {
        self.timers.has_keepalive()
    }

    /// Bytes arrived from the peer at `now`: silence is measured from here.
    pub fn mark_received(&mut self, now: Instant) {
        self.timers.mark_received(now);
    }

    /// When [`Connection::handle_timeout`] must next be called, if ever. Ask again after
    /// anything that may change it: a message sent or received, a close, a timeout handled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers
            .poll_timeout(self.is_closing(), self.keepalive_runs())
    }

    /// Act on the deadlines passed at `now`: a keepalive ping may be queued (write the output);
    /// a keepalive failure fails the connection (its close frame is queued, as after an error
    /// from [`Connection::poll_message`]) and is returned as [`Error::Timeout`]; so is the end
    /// of the close deadline, after which the transport should be closed
    /// ([`Connection::is_closed`]).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let (closing, keepalive) = (self.is_closing(), self.keepalive_runs());
        match self.timers.handle_timeout(now, closing, keepalive) {
            None => Ok(()),
            Some(Due::Ping(payload)) => {
                self.queue_frame(OpCode::Ping, false, &payload, None);
                Ok(())
            }
            Some(Due::Expired(Timeout::Close)) => Err(Timeout::Close.into()),
            Some(Due::Expired(t)) => {
                let err = Error::Timeout(t);
                self.fail(&err);
                // The close handshake starts now: arm its deadline.
                self.timers.handle_timeout(now, true, false);
                Err(err)
            }
        }
    }

    /// Whether the close handshake has started (or the connection failed).
    fn is_closing(&self) -> bool {
        self.close_sent || self.close_received || self.failed
    }

    /// Whether keepalive still applies: until our close frame is sent.
    fn keepalive_runs(&self) -> bool {
        !(self.close_sent || self.failed)
    }

    // ----- state -----

    /// Whether we have sent a close frame.
    pub fn is_close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the peer's close frame has arrived.
    pub fn is_close_received(&self) -> bool {
        self.close_received
    }

    /// Whether the connection was failed because of an error from the peer.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Whether the close handshake is complete (or the connection failed, or the close deadline
    /// passed): once the output is written, the transport should be closed.
    pub fn is_closed(&self) -> bool {
        self.failed || (self.close_sent && self.close_received) || self.timers.gave_up()
    }
}

enum Step {
    NeedMore,
    Continue,
    Message(Message),
}

/// Encode one unmasked, uncompressed frame holding `msg` (server role), for sending the same
/// bytes to many connections with [`Connection::send_encoded`].
pub fn encode_frame(msg: &Message) -> Result<Bytes, Error> {
    let (opcode, payload): (OpCode, Bytes) = match msg {
        Message::Text(t) => (OpCode::Text, t.clone().into_bytes()),
        Message::Binary(b) => (OpCode::Binary, b.clone()),
        Message::Ping(p) => (OpCode::Ping, p.clone()),
        Message::Pong(p) => (OpCode::Pong, p.clone()),
        Message::Close(f) => {
            let mut buf = BytesMut::new();
            if let Some(f) = f {
                f.validate_for_send()?;
                f.encode(&mut buf);
            }
            (OpCode::Close, buf.freeze())
        }
    };
    if opcode.is_control() && payload.len() > MAX_CONTROL_PAYLOAD {
        return Err(Error::InvalidSend("control frame payload over 125 bytes"));
    }
    let mut header = [0u8; crate::frame::MAX_HEADER_LEN];
    let n = FrameHeader::new(opcode, payload.len() as u64).encode(&mut header);
    let mut buf = BytesMut::with_capacity(n + payload.len());
    buf.extend_from_slice(&header[..n]);
    buf.extend_from_slice(&payload);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MAX_HEADER_LEN;

    /// A masked client frame carrying `payload`.
    fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut header = FrameHeader::new(opcode, payload.len() as u64);
        header.mask = Some([1, 2, 3, 4]);
        let mut hdr = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut hdr);
        let mut out = hdr[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], [1, 2, 3, 4], 0);
        out
    }

    /// Read `bytes` the way the I/O layer does: into the buffer from `recv_buf_reserve`.
    fn receive(conn: &mut Connection, bytes: &[u8]) {
        conn.recv_buf_reserve(4096, 16 * 1024)
            .extend_from_slice(bytes);
    }

    #[test]
    fn idle_connections_recycle_buffers_and_messages_stay_intact() {
        let config = Config::default();
        let mut a = Connection::new(Role::Server, config);
        receive(&mut a, &client_frame(OpCode::Text, b"first message"));
        let first = a.poll_message().unwrap().unwrap();
        a.send(first.clone()).unwrap();
        let written = a.buffered_amount();
        a.advance_output(written);
        // Idle: both buffers go to this thread's pool; the message handed out stays valid.
        a.release_idle_buffers();
        assert_eq!(a.rx.capacity(), 0);
        assert!(a.out.lacks_staging());
        let pooled = pool::with(|p| (p.len(Class::Read), p.len(Class::Staging))).unwrap();
        assert!(pooled.0 >= 1 && pooled.1 >= 1, "{pooled:?}");

        // Another connection on the same thread borrows them and overwrites their free room.
        let mut b = Connection::new(Role::Server, config);
        receive(&mut b, &client_frame(OpCode::Binary, &[0xAA; 300]));
        let second = b.poll_message().unwrap().unwrap();
        assert_eq!(second, Message::binary(vec![0xAA; 300]));
        assert_eq!(first, Message::text("first message"));
        let after = pool::with(|p| (p.len(Class::Read), p.len(Class::Staging))).unwrap();
        assert_eq!(after.0, pooled.0 - 1);

        // A message split across reads and a released, reused buffer still decodes.
        b.release_idle_buffers();
        let frame = client_frame(OpCode::Text, "ünïcödé".repeat(40).as_bytes());
        let (head, tail) = frame.split_at(7);
        receive(&mut b, head);
        assert_eq!(b.poll_message().unwrap(), None);
        b.release_idle_buffers(); // not empty: keeps its buffer
        assert!(b.rx.capacity() != 0);
        receive(&mut b, tail);
        assert_eq!(
            b.poll_message().unwrap().unwrap(),
            Message::text("ünïcödé".repeat(40))
        );
    }

    /// The opcodes and payloads of the frames in `bytes` (unmasked server frames).
    fn frames(mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((header, len)) = FrameHeader::decode(bytes).unwrap() {
            let end = len + header.payload_len as usize;
            out.push((header.opcode, bytes[len..end].to_vec()));
            bytes = &bytes[end..];
        }
        out
    }

    /// Everything queued, as written to a peer that reads it all.
    fn drain(conn: &mut Connection) -> Vec<u8> {
        conn.take_output()
    }

    #[test]
    fn a_burst_of_pings_gets_every_pong() {
        let mut conn = Connection::new(Role::Server, Config::default());
        let burst: Vec<u8> = (0..10)
            .flat_map(|i| client_frame(OpCode::Ping, format!("payload-{i}").as_bytes()))
            .collect();
        receive(&mut conn, &burst);
        while conn.poll_message().unwrap().is_some() {}
        let pongs = frames(&drain(&mut conn));
        let expected: Vec<_> = (0..10)
            .map(|i| (OpCode::Pong, format!("payload-{i}").into_bytes()))
            .collect();
        assert_eq!(pongs, expected);
    }

    #[test]
    fn pings_while_output_is_backed_up_owe_one_pong_for_the_latest() {
        let mut conn = Connection::new(Role::Server, Config::default());
        conn.send(Message::binary(vec![1u8; PONG_COALESCE_AT]))
            .unwrap();
        let backlog = conn.buffered_amount();
        // A peer that never reads floods pings: the output does not grow past one pong.
        for i in 0..10_000u32 {
            receive(&mut conn, &client_frame(OpCode::Ping, &i.to_be_bytes()));
            assert!(matches!(conn.poll_message(), Ok(Some(Message::Ping(_)))));
            assert_eq!(conn.buffered_amount(), backlog + 2 + 4);
        }
        assert!(conn.has_pending_pong());
        // Once the backlog is written, the pong answers the latest ping.
        let written = drain(&mut conn);
        let sent = frames(&written);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1], (OpCode::Pong, 9_999u32.to_be_bytes().to_vec()));
        assert!(!conn.has_pending_pong() && !conn.has_output());

        // A frame queued meanwhile goes out after the owed pong; a close too.
        conn.send(Message::binary(vec![2u8; PONG_COALESCE_AT]))
            .unwrap();
        receive(&mut conn, &client_frame(OpCode::Ping, b"late"));
        assert!(conn.poll_message().unwrap().is_some());
        conn.send(Message::text("after")).unwrap();
        conn.close(None).unwrap();
        let sent = frames(&drain(&mut conn));
        let kinds: Vec<_> = sent.iter().map(|(op, _)| *op).collect();
        assert_eq!(
            kinds,
            [OpCode::Binary, OpCode::Pong, OpCode::Text, OpCode::Close]
        );
        assert_eq!(sent[1].1, b"late");
    }

    #[test]
    fn encode_frame_matches_the_queued_encoding() {
        assert_eq!(
            &encode_frame(&Message::text("hi")).unwrap()[..],
            b"\x81\x02hi"
        );
        let big = Message::binary(vec![9u8; 300]);
        let frame = encode_frame(&big).unwrap();
        let mut queue = OutputQueue::default();
        queue.push_frame(&FrameHeader::new(OpCode::Binary, 300), &[9u8; 300], None);
        assert_eq!(&frame[..], queue.first_chunk());
        assert_eq!(&frame[..4], b"\x82\x7e\x01\x2c");
    }

    #[test]
    fn a_large_shared_tail_is_queued_without_a_copy() {
        let mut conn = Connection::new(Role::Server, Config::default());
        let tail = Bytes::from(vec![5u8; 64 * 1024]);
        conn.send_with_shared_tail(OpCode::Binary, b"head", tail.clone())
            .unwrap();
        let mut slices = [IoSlice::new(&[]); 4];
        let n = conn.output_chunks(&mut slices);
        assert_eq!(n, 2);
        assert_eq!(&slices[0][..], b"\x82\x7f\0\0\0\0\0\x01\0\x04head");
        assert_eq!(
            slices[1].as_ptr(),
            tail.as_ptr(),
            "the tail is the caller's buffer"
        );
        assert_eq!(conn.buffered_amount(), 10 + 4 + tail.len());
    }

    /// Keys 0x10, 0x20, 0x30, … repeated four times, frame by frame.
    #[derive(Debug, Default)]
    struct StepKeys(std::sync::atomic::AtomicU8);

    impl MaskKeySource for StepKeys {
        fn next_key(&self) -> [u8; 4] {
            let n = self.0.fetch_add(0x10, std::sync::atomic::Ordering::Relaxed) + 0x10;
            [n; 4]
        }
    }

    #[test]
    fn client_frames_use_the_supplied_mask_keys() {
        let mut conn = Connection::new(Role::Client, Config::default())
            .with_mask_keys(Arc::new(StepKeys::default()));
        conn.send(Message::text("ab")).unwrap();
        conn.send_with_shared_tail(OpCode::Binary, b"c", Bytes::from_static(b"d"))
            .unwrap();
        conn.close(None).unwrap();
        assert_eq!(
            drain(&mut conn),
            [
                0x81,
                0x82,
                0x10,
                0x10,
                0x10,
                0x10,
                b'a' ^ 0x10,
                b'b' ^ 0x10, //
                0x82,
                0x82,
                0x20,
                0x20,
                0x20,
                0x20,
                b'c' ^ 0x20,
                b'd' ^ 0x20, //
                0x88,
                0x80,
                0x30,
                0x30,
                0x30,
                0x30,
            ]
        );
        // A server masks nothing and never asks the source.
        let source = Arc::new(StepKeys::default());
        let mut server =
            Connection::new(Role::Server, Config::default()).with_mask_keys(source.clone());
        server.send(Message::text("ab")).unwrap();
        assert_eq!(drain(&mut server), b"\x81\x02ab");
        assert_eq!(source.next_key(), [0x10; 4]);
    }

    /// A connection with only a close timeout allocates nothing for its timers while open; the
    /// deadline is armed by the first `handle_timeout` once the close starts, and expires.
    #[test]
    fn a_close_only_timeout_stays_inline_until_the_close() {
        use std::time::Duration;
        let t0 = Instant::now();
        let config = TimerConfig {
            close_timeout: Some(Duration::from_millis(1500)),
            ..TimerConfig::default()
        };
        let mut conn = Connection::new(Role::Server, Config::default()).with_timers(config, t0);
        assert!(matches!(conn.timers, TimerSlot::CloseOnly { .. }));
        assert_eq!(conn.poll_timeout(), None);
        conn.close(None).unwrap();
        let at = conn
            .poll_timeout()
            .expect("a call at once to arm the deadline");
        assert!(at <= t0 + Duration::from_secs(1));
        let t1 = t0 + Duration::from_secs(1);
        conn.handle_timeout(t1).unwrap();
        assert!(matches!(conn.timers, TimerSlot::Running(_)));
        assert_eq!(conn.poll_timeout(), Some(t1 + Duration::from_millis(1500)));
        let err = conn
            .handle_timeout(t1 + Duration::from_secs(2))
            .unwrap_err();
        assert!(matches!(err, Error::Timeout(Timeout::Close)), "{err:?}");
        assert_eq!(conn.poll_timeout(), None);
    }

    /// An idle connection's memory is mostly this struct: timers and the mask key source
    /// added 40 bytes to the 368 it had (the timer slot, which keeps a close-only timeout
    /// inline so that an idle connection allocates nothing for it, and one `Arc` of a trait
    /// object).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn connection_stays_small() {
        assert!(
            std::mem::size_of::<Connection>() <= 408,
            "{}",
            std::mem::size_of::<Connection>()
        );
    }

    #[test]
    fn pool_is_bounded_and_skips_oversized_buffers() {
        let config = Config::default();
        let mut conns: Vec<Connection> = (0..pool::MAX_BUFFERS + 4)
            .map(|_| {
                let mut c = Connection::new(Role::Server, config);
                receive(&mut c, &client_frame(OpCode::Binary, b"x"));
                assert!(c.poll_message().unwrap().is_some());
                c
            })
            .collect();
        for c in &mut conns {
            c.release_idle_buffers();
        }
        assert_eq!(
            pool::with(|p| p.len(Class::Read)).unwrap(),
            pool::MAX_BUFFERS
        );

        // A buffer that grew past what the pool keeps is freed, not pooled.
        pool::with(|p| p.clear());
        let mut big = Connection::new(Role::Server, config);
        let payload = vec![7u8; 2 * pool::MAX_CAPACITY];
        big.feed(&client_frame(OpCode::Binary, &payload));
        assert!(big.poll_message().unwrap().is_some());
        big.release_idle_buffers();
        assert_eq!(pool::with(|p| p.len(Class::Read)).unwrap(), 0);
        // So is one handed out with `recv_buf` (its owner may have grown it).
        let mut lent = Connection::new(Role::Server, config);
        lent.recv_buf()
            .extend_from_slice(&client_frame(OpCode::Binary, b"y"));
        assert!(lent.poll_message().unwrap().is_some());
        lent.release_idle_buffers();
        assert_eq!(pool::with(|p| p.len(Class::Read)).unwrap(), 0);
    }
}
