//! HTTP `CONNECT` (RFC 9110 §9.3.6): ask an HTTP proxy for a tunnel to `host:port`, with
//! `Proxy-Authorization: Basic` when the [`ProxyConfig`] has credentials.

use base64::Engine as _;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx_proto::handshake::join_host_port;

use super::ProxyConfig;
use crate::error::{Error, Result};

/// The largest HTTP response head accepted from a proxy.
const MAX_PROXY_HEAD: usize = 16 * 1024;

impl ProxyConfig {
    pub(super) async fn http_connect(
        &self,
        tcp: &mut TcpStream,
        host: &str,
        port: u16,
    ) -> Result<()> {
        let target = join_host_port(host, port);
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((user, pass)) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await?;
        tcp.flush().await?;

        let proxy = self.addr();
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            let n = tcp.read_buf(&mut buf).await?;
            if n == 0 {
                return Err(Error::Proxy(format!(
                    "HTTP proxy {proxy} closed the connection before answering CONNECT {target}"
                )));
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            let used = match resp.parse(&buf) {
                Ok(httparse::Status::Complete(used)) => used,
                Ok(httparse::Status::Partial) if buf.len() < MAX_PROXY_HEAD => continue,
                Ok(httparse::Status::Partial) => {
                    return Err(Error::Proxy(format!(
                        "HTTP proxy {proxy}: response head longer than {MAX_PROXY_HEAD} bytes"
                    )));
                }
                Err(e) => {
                    return Err(Error::Proxy(format!(
                        "HTTP proxy {proxy}: malformed response to CONNECT: {e}"
                    )));
                }
            };
            let status = resp.code.unwrap_or(0);
            if !(200..300).contains(&status) {
                let reason = resp.reason.unwrap_or("").trim();
                let hint = match (status, &self.credentials) {
                    (407, None) => " (the proxy wants credentials: http://user:pass@host:port)",
                    (407, Some(_)) => " (the proxy rejected the credentials)",
                    _ => "",
                };
                return Err(Error::Proxy(format!(
                    "HTTP proxy {proxy} refused CONNECT {target}: {status} {reason}{hint}"
                )));
            }
            if used != buf.len() {
                return Err(Error::Proxy(format!(
                    "HTTP proxy {proxy} sent data after its {status} response, before the \
                     tunnel was used"
                )));
            }
            return Ok(());
        }
    }
}
