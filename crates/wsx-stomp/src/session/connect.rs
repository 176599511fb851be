//! CONNECT / STOMP: version and heart-beat negotiation, authentication, CONNECTED.
//!
//! The [`Authenticator`](crate::Authenticator) answers at once, or defers to the I/O layer
//! ([`Admission::Defer`]): the session then enters [`Phase::Authenticating`], queues
//! [`Transmit::Authenticate`] and decodes nothing more (the frames behind the CONNECT stay
//! buffered in the decoder, and [`Session::wants_input`] is `false`) until
//! [`Session::authenticated`] brings the answer; from there it goes on as if the answer had
//! come at once: CONNECTED and the buffered frames in order, or an ERROR and the close. The
//! CONNECT timeout runs until the answer (see `timers.rs`).

use std::time::Instant;

use super::{After, Fail, Handled, Phase, Session, Transmit};
use crate::auth::{Admission, AuthRequest, ConnectRequest, Principal, Refusal};
use crate::command::Command;
use crate::engine::{Delivery, Engine};
use crate::frame::Frame;
use crate::heartbeat::{HeartBeat, HeartBeatHeader};
use crate::version::Version;

impl From<Refusal> for Fail {
    fn from(refusal: Refusal) -> Self {
        Fail {
            message: refusal.message,
            detail: refusal.detail,
            headers: Vec::new(),
        }
    }
}

impl Session {
    pub(super) fn on_connect(&mut self, frame: &Frame) -> Handled {
        let supported = &self.config.versions;
        let Some(version) = Version::negotiate(frame.header("accept-version"), supported) else {
            let list = Version::list(supported);
            let mut fail = Fail::new(format!(
                "no common protocol version: this server supports {list}"
            ));
            fail.headers.push(("version", list));
            return Err(fail);
        };
        self.version = version;
        self.decoder.set_version(version);

        let client_heart_beat = match (version, frame.header("heart-beat")) {
            (Version::V1_0, _) | (_, None) => HeartBeatHeader::default(),
            (_, Some(value)) => HeartBeatHeader::parse(value)
                .ok_or_else(|| Fail::new(format!("invalid heart-beat header `{value}`")))?,
        };

        let request = ConnectRequest {
            login: frame.header("login"),
            passcode: frame.header("passcode"),
            host: frame.header("host"),
            headers: &frame.headers,
            connection: &self.info,
            // The CONNECT is being handled in the `receive` that set this.
            now: self.timers.last_rx,
        };
        match self.auth.admit(&request) {
            Admission::Accept(principal) => {
                self.send_connected(principal, client_heart_beat);
                Ok(After::Continue)
            }
            Admission::Refuse(refusal) => Err(refusal.into()),
            Admission::Defer => {
                let request = AuthRequest::new(&request, version);
                self.client_heart_beat = client_heart_beat;
                self.phase = Phase::Authenticating;
                self.push(Transmit::Authenticate(Box::new(request)));
                Ok(After::Continue)
            }
        }
    }

    /// Negotiate heart-beats, queue CONNECTED and enter [`Phase::Connected`] as `principal`.
    fn send_connected(&mut self, principal: Principal, client_heart_beat: HeartBeatHeader) {
        let version = self.version;
        let mut connected = Frame::new(Command::Connected);
        if version != Version::V1_0 {
            let server_heart_beat = self.config.heart_beat;
            self.heart_beat = HeartBeat::negotiate(client_heart_beat, server_heart_beat);
            connected = connected
                .with_header("version", version.as_str())
                .with_header("heart-beat", server_heart_beat.to_value());
        }
        connected = connected
            .with_header("session", format!("session-{}", self.conn.0))
            .with_header("server", self.config.server.clone())
            .with_header("user-id", principal.name.clone());
        self.queue_frame(&connected);
        self.principal = Some(principal);
        self.phase = Phase::Connected;
    }

    /// The I/O layer's answer to [`Transmit::Authenticate`], at `now`: CONNECTED (then the
    /// frames that arrived meanwhile are decoded and handled, in order), or an ERROR whose
    /// `message` is the refusal's, then [`Transmit::Close`]. Ignored unless the session is
    /// [`Phase::Authenticating`] (it may have timed out meanwhile). Returns whether it was
    /// taken.
    ///
    /// The client's silence while it waited does not count against its heart-beats or the
    /// idle limit: its input was not read (see [`Session::wants_input`]), so they start again
    /// from `now`.
    pub fn authenticated(
        &mut self,
        now: Instant,
        verdict: Result<Principal, Refusal>,
        engine: &mut dyn Engine,
        out: &mut Vec<Delivery>,
    ) -> bool {
        if self.phase != Phase::Authenticating {
            return false;
        }
        self.timers.last_rx = self.timers.last_rx.max(now);
        match verdict {
            Ok(principal) => {
                let client_heart_beat = self.client_heart_beat;
                self.send_connected(principal, client_heart_beat);
                self.decode_buffered(engine, out);
            }
            Err(refusal) => self.fail(refusal.into(), None, engine, out),
        }
        true
    }
}
