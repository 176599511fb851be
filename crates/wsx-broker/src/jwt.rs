//! JWT authentication of STOMP clients: the [`wsx_stomp::Authenticator`] of `/stomp` when
//! `--jwt-secret` (HS256) or `--jwt-public-key` (RS256) is given.
//!
//! The broker session calls [`JwtAuth::authenticate`] when a client's CONNECT arrives. The token
//! is taken from, in order: an `Authorization: Bearer TOKEN` header of the CONNECT frame, its
//! `passcode` header (`login` is ignored), or the `access_token` query parameter of the
//! WebSocket URL (`/stomp?access_token=TOKEN`, for clients that cannot set CONNECT headers).
//!
//! The token must be signed with an accepted algorithm and key, must name the user (`sub`) and
//! carry an expiry (`exp`); it is refused once expired and, when it has a `nbf`, before that
//! time, both with `--jwt-leeway` seconds of tolerance for clock skew (default
//! [`DEFAULT_LEEWAY_SECS`]). With `--jwt-issuer` its `iss` must be one of those given, with
//! `--jwt-audience` its `aud` must name one of those given (both claims then required);
//! without `--jwt-audience` a token with an `aud` claim is refused (it is meant for someone
//! else). Its `subscribe` and `send` claims are arrays of destination patterns (`*` within a
//! path segment, `**` across them, e.g. `["/topic/chat.*", "/queue/jobs"]`); a missing claim
//! allows nothing.
//!
//! Any failure refuses the CONNECT: the session answers with an ERROR frame whose `message`
//! header says why, then closes. An accepted token's expiry (`exp` plus the leeway) becomes the
//! principal's [`Principal::expires_at`]: the session then ends with an ERROR
//! `message:token expired` (and close 1008) when it passes.

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use wsx_stomp::{Authenticator, ConnectRequest, Principal, Refusal};

/// The default of `--jwt-leeway`: the seconds of clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

/// The claims `/stomp` reads (`iss`, `aud` and `nbf` are checked by the validation).
#[derive(Debug, Deserialize)]
struct Claims {
    /// The user (the session's `user-id`).
    sub: String,
    /// When the token expires, in seconds since the Unix epoch.
    exp: u64,
    /// Destination patterns the user may SUBSCRIBE to.
    #[serde(default)]
    subscribe: Vec<String>,
    /// Destination patterns the user may SEND to.
    #[serde(default)]
    send: Vec<String>,
}

/// What the `--jwt-*` flags say.
#[derive(Debug, Clone, Default)]
pub struct JwtOptions<'a> {
    /// `--jwt-secret`: the HS256 secret.
    pub secret: Option<&'a str>,
    /// `--jwt-public-key`: the RS256 public key file (PEM).
    pub public_key_file: Option<&'a Path>,
    /// `--jwt-leeway`: seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// `--jwt-issuer`: the accepted `iss` values (empty: any, or none).
    pub issuers: &'a [String],
    /// `--jwt-audience`: the accepted `aud` values (empty: the token must have no `aud`).
    pub audiences: &'a [String],
}

/// Verifies JWTs signed with HS256 (a shared secret) and/or RS256 (an RSA key pair).
pub struct JwtAuth {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    leeway_secs: u64,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("leeway_secs", &self.leeway_secs)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl JwtAuth {
    /// An authenticator for tokens signed with `secret` (HS256) and/or the private key matching
    /// the PEM public key in `public_key_file` (RS256). `None` when neither is given.
    pub fn from_options(options: &JwtOptions<'_>) -> Result<Option<JwtAuth>, String> {
        let hs256 = match options.secret {
            Some("") => return Err("--jwt-secret must not be empty".to_owned()),
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())),
            None => None,
        };
        let rs256 = match options.public_key_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read --jwt-public-key {}: {e}", path.display()))?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    format!(
                        "--jwt-public-key {}: not an RSA public key in PEM: {e}",
                        path.display()
                    )
                })?;
                Some(key)
            }
            None => None,
        };
        if hs256.is_none() && rs256.is_none() {
            return Ok(None);
        }
        Ok(Some(JwtAuth {
            hs256,
            rs256,
            leeway_secs: options.leeway_secs,
            issuers: options.issuers.to_vec(),
            audiences: options.audiences.to_vec(),
        }))
    }

    /// What a token signed with `alg` must satisfy.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if !self.issuers.is_empty() {
            validation.set_issuer(&self.issuers);
            required.push("iss");
        }
        if !self.audiences.is_empty() {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// When a session on a token expiring at `exp` (Unix seconds) must end: `exp` plus the
    /// leeway, on the session's clock (`now` is the session's instant for the present). `None`
    /// when too far to represent.
    fn expires_at(&self, exp: u64, now: Instant) -> Option<Instant> {
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let expiry = Duration::from_secs(exp.saturating_add(self.leeway_secs));
        now.checked_add(expiry.saturating_sub(unix_now))
    }

    /// The token a client presented, if any.
    fn token<'r>(request: &'r ConnectRequest<'_>) -> Option<Cow<'r, str>> {
        let non_empty = |s: &&str| !s.trim().is_empty();
        if let Some(token) = request.bearer_token().filter(non_empty) {
            return Some(Cow::Borrowed(token));
        }
        if let Some(token) = request.passcode.filter(non_empty) {
            return Some(Cow::Borrowed(token.trim()));
        }
        request
            .connection
            .query_param("access_token")
            .filter(non_empty)
            .map(percent_decode)
    }
}

impl Authenticator for JwtAuth {
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, Refusal> {
        let Some(token) = JwtAuth::token(request) else {
            return Err(Refusal::new("authentication required").with_detail(
                "send a JWT in an `Authorization: Bearer TOKEN` or `passcode` header of \
                 CONNECT, or as ?access_token=TOKEN in the WebSocket URL",
            ));
        };
        self.verify(&token, request.now)
    }
}

impl JwtAuth {
    /// The principal of `token` (its `sub`, `subscribe` and `send` claims, its expiry on the
    /// clock of `now`), or why it is refused: what [`Authenticator::authenticate`] does with
    /// the token a CONNECT presented, and the HTTP publish API with a Bearer token.
    pub fn verify(&self, token: &str, now: Instant) -> Result<Principal, Refusal> {
        let header = decode_header(token.as_bytes())
            .map_err(|e| Refusal::new(format!("invalid token: {e}")))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        };
        let Some(key) = key else {
            return Err(Refusal::new(format!(
                "invalid token: algorithm {:?} is not accepted",
                header.alg
            )));
        };
        let data = decode::<Claims>(token.as_bytes(), key, &self.validation(header.alg))
            .map_err(|e| Refusal::new(format!("invalid token: {}", why(&e))))?;
        let claims = data.claims;
        let mut principal = Principal::new(claims.sub);
        if let Some(at) = self.expires_at(claims.exp, now) {
            principal = principal.expires_at(at);
        }
        for pattern in claims.subscribe {
            principal = principal.allow_subscribe(pattern.as_str());
        }
        for pattern in claims.send {
            principal = principal.allow_send(pattern.as_str());
        }
        Ok(principal)
    }
}

/// Why a token was refused, in words.
fn why(error: &jsonwebtoken::errors::Error) -> Cow<'static, str> {
    match error.kind() {
        ErrorKind::ExpiredSignature => "expired (exp)".into(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "issuer (iss) not accepted".into(),
        ErrorKind::InvalidAudience => "audience (aud) not accepted".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("no {claim} claim").into(),
        _ => error.to_string().into(),
    }
}

/// Decode `%XX` escapes (and `+` as a space) of a query parameter value; invalid escapes are
/// kept as they are.
pub(crate) fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains(['%', '+']) {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a.b_c-d"), "a.b_c-d");
        assert_eq!(percent_decode("a%2Eb%2e"), "a.b.");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
