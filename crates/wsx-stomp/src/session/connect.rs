//! CONNECT / STOMP: version and heart-beat negotiation, authentication, CONNECTED.

use super::{After, Fail, Handled, Phase, Session};
use crate::auth::ConnectRequest;
use crate::command::Command;
use crate::frame::Frame;
use crate::heartbeat::{HeartBeat, HeartBeatHeader};
use crate::version::Version;

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
        let principal = self.auth.authenticate(&request).map_err(|refusal| Fail {
            message: refusal.message,
            detail: refusal.detail,
            headers: Vec::new(),
        })?;

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
        Ok(After::Continue)
    }
}
