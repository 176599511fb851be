//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): ask a SOCKS5 proxy
//! for a tunnel to `host:port`, resolving the name here (`socks5://`) or at the proxy
//! (`socks5h://`).
//!
//! Written here rather than taken from a crate: the protocol is a few fixed-layout messages,
//! and owning it keeps the errors in this crate's type.

use std::io;
use std::net::IpAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx_proto::handshake::join_host_port;

use super::{ProxyConfig, ProxyScheme};
use crate::error::{Error, Result};

impl ProxyConfig {
    pub(super) async fn socks5_connect(
        &self,
        tcp: &mut TcpStream,
        host: &str,
        port: u16,
    ) -> Result<()> {
        let proxy = self.addr();
        let fail = |why: String| Error::Proxy(format!("SOCKS5 proxy {proxy}: {why}"));
        let eof = |e: io::Error| match e.kind() {
            io::ErrorKind::UnexpectedEof => fail("closed the connection during negotiation".into()),
            _ => Error::Io(e),
        };

        // The address to ask for, resolved here for socks5://.
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocksAddr::Ip(ip),
            Err(_) if self.scheme == ProxyScheme::Socks5 => {
                let mut addrs = tokio::net::lookup_host((host, port)).await?;
                let ip = addrs.next().map(|a| a.ip()).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
                })?;
                SocksAddr::Ip(ip)
            }
            Err(_) => {
                if host.is_empty() || host.len() > 255 {
                    return Err(fail(format!(
                        "host name of {} bytes cannot be sent",
                        host.len()
                    )));
                }
                SocksAddr::Domain(host)
            }
        };

        // Greeting: version 5, the methods offered (RFC 1928 §3).
        let greeting: &[u8] = match self.credentials {
            None => &[5, 1, 0],
            Some(_) => &[5, 2, 0, 2],
        };
        tcp.write_all(greeting).await?;
        let mut choice = [0u8; 2];
        tcp.read_exact(&mut choice).await.map_err(eof)?;
        if choice[0] != 5 {
            return Err(fail(format!(
                "not a SOCKS5 server (version {} in its answer)",
                choice[0]
            )));
        }
        match (choice[1], &self.credentials) {
            (0, _) => {}
            (2, Some((user, pass))) => {
                // Username/password sub-negotiation (RFC 1929).
                if user.len() > 255 || pass.len() > 255 {
                    return Err(fail(
                        "user name and password are limited to 255 bytes".into(),
                    ));
                }
                let mut msg = Vec::with_capacity(3 + user.len() + pass.len());
                msg.push(1);
                msg.push(user.len() as u8);
                msg.extend_from_slice(user.as_bytes());
                msg.push(pass.len() as u8);
                msg.extend_from_slice(pass.as_bytes());
                tcp.write_all(&msg).await?;
                let mut status = [0u8; 2];
                tcp.read_exact(&mut status).await.map_err(eof)?;
                if status[1] != 0 {
                    return Err(fail(format!(
                        "username/password rejected (status {})",
                        status[1]
                    )));
                }
            }
            (0xff, None) => {
                return Err(fail(
                    "no acceptable authentication method: the proxy wants credentials \
                     (socks5://user:pass@host:port)"
                        .into(),
                ));
            }
            (0xff, Some(_)) => {
                return Err(fail(
                    "no acceptable authentication method (offered none and username/password)"
                        .into(),
                ));
            }
            (m, _) => return Err(fail(format!("chose method {m}, which was not offered"))),
        }

        // CONNECT request (RFC 1928 §4).
        let mut req = vec![5, 1, 0];
        match addr {
            SocksAddr::Ip(IpAddr::V4(ip)) => {
                req.push(1);
                req.extend_from_slice(&ip.octets());
            }
            SocksAddr::Ip(IpAddr::V6(ip)) => {
                req.push(4);
                req.extend_from_slice(&ip.octets());
            }
            SocksAddr::Domain(name) => {
                req.push(3);
                req.push(name.len() as u8);
                req.extend_from_slice(name.as_bytes());
            }
        }
        req.extend_from_slice(&port.to_be_bytes());
        tcp.write_all(&req).await?;

        // Reply: VER REP RSV ATYP BND.ADDR BND.PORT (RFC 1928 §6).
        let mut head = [0u8; 4];
        tcp.read_exact(&mut head).await.map_err(eof)?;
        if head[0] != 5 {
            return Err(fail(format!("bad version {} in its reply", head[0])));
        }
        if head[1] != 0 {
            return Err(fail(format!(
                "refused CONNECT {}: {} (reply {})",
                join_host_port(host, port),
                socks_reply(head[1]),
                head[1]
            )));
        }
        let skip = match head[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => {
                let mut len = [0u8; 1];
                tcp.read_exact(&mut len).await.map_err(eof)?;
                usize::from(len[0]) + 2
            }
            t => return Err(fail(format!("bad address type {t} in its reply"))),
        };
        let mut bound = [0u8; 255 + 2];
        tcp.read_exact(&mut bound[..skip]).await.map_err(eof)?;
        Ok(())
    }
}

/// The destination in a SOCKS5 request.
enum SocksAddr<'a> {
    Ip(IpAddr),
    Domain(&'a str),
}

/// The meaning of a SOCKS5 reply code (RFC 1928 §6).
fn socks_reply(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}
