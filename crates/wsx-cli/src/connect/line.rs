//! What a line typed (or piped) into `wsx connect` means: a message to send or a `/` command.
//!
//! Sits between the stdin reader and the connection in [`super`]: each complete line read from
//! stdin is turned into an [`Action`] here, then carried out by the session loop.

/// What to do with one input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes as a message (text or binary, as the command line says).
    Send(Vec<u8>),
    /// `/ping [data]`: send a ping with this payload.
    Ping(Vec<u8>),
    /// `/close [code [reason]]`: start the close handshake.
    Close {
        /// The close code; 1000 when none was given.
        code: u16,
        /// The reason, possibly empty.
        reason: String,
    },
    /// `/help`: print the command summary.
    Help,
    /// A line that cannot be carried out; the text says why.
    Invalid(String),
}

/// The summary printed by `/help` and after a mistyped command.
pub const HELP: &str = "commands: /ping [data], /close [code [reason]], /help; \
                        start a line with // to send a line that begins with /";

/// Interpret one input line, without its line ending.
///
/// A line starting with `//` is sent without its first `/`; any other line starting with `/`
/// is a command; every other line is sent as it is.
pub fn parse(line: &[u8]) -> Action {
    match line {
        [b'/', b'/', ..] => Action::Send(line[1..].to_vec()),
        [b'/', rest @ ..] => command(rest),
        _ => Action::Send(line.to_vec()),
    }
}

fn command(rest: &[u8]) -> Action {
    let Ok(rest) = std::str::from_utf8(rest) else {
        return Action::Invalid(format!("a command must be UTF-8; {HELP}"));
    };
    let (name, args) = match rest.split_once(' ') {
        Some((name, args)) => (name, args),
        None => (rest, ""),
    };
    match name {
        "ping" => Action::Ping(args.as_bytes().to_vec()),
        "close" => {
            let args = args.trim_start();
            if args.is_empty() {
                return Action::Close {
                    code: 1000,
                    reason: String::new(),
                };
            }
            let (code, reason) = args.split_once(' ').unwrap_or((args, ""));
            match code.parse::<u16>() {
                Ok(code) => Action::Close {
                    code,
                    reason: reason.to_string(),
                },
                Err(_) => Action::Invalid(format!(
                    "/close takes a numeric close code (such as 1000 or 4000), not {code:?}"
                )),
            }
        }
        "help" | "?" => Action::Help,
        other => Action::Invalid(format!("unknown command /{other}; {HELP}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_escapes() {
        assert_eq!(parse(b"hello"), Action::Send(b"hello".to_vec()));
        assert_eq!(parse(b""), Action::Send(Vec::new()));
        assert_eq!(parse(b"//close"), Action::Send(b"/close".to_vec()));
        assert_eq!(parse(b"\xff\x00"), Action::Send(vec![0xff, 0]));
    }

    #[test]
    fn commands() {
        assert_eq!(parse(b"/ping"), Action::Ping(Vec::new()));
        assert_eq!(parse(b"/ping a b"), Action::Ping(b"a b".to_vec()));
        assert_eq!(
            parse(b"/close"),
            Action::Close {
                code: 1000,
                reason: String::new()
            }
        );
        assert_eq!(
            parse(b"/close 4000 bye now"),
            Action::Close {
                code: 4000,
                reason: "bye now".into()
            }
        );
        assert_eq!(
            parse(b"/close 3001"),
            Action::Close {
                code: 3001,
                reason: String::new()
            }
        );
        assert!(matches!(parse(b"/close x"), Action::Invalid(_)));
        assert!(matches!(parse(b"/close 70000"), Action::Invalid(_)));
        assert!(matches!(parse(b"/quit"), Action::Invalid(_)));
        assert!(matches!(parse(b"/\xff"), Action::Invalid(_)));
        assert_eq!(parse(b"/help"), Action::Help);
    }
}
