//! Fuzz target: permessage-deflate, both halves.
//!
//! - `PerMessageDeflate::decompress` on arbitrary input, in both roles, with a small message
//!   limit, message after message (frames of one message share the output buffer, which starts
//!   with unrelated bytes), with `compress` and `release_idle` in between;
//! - round trips between the two roles through `compress` and `decompress`, with the
//!   compressed message cut into frames, and at exactly the message's size as the limit (and
//!   one byte under it, which must fail with `MessageTooBig`);
//! - negotiation: `DeflateConfig::server_accept` and `client_accept` on arbitrary strings, and a
//!   full negotiation between two arbitrary configs, whose parameters must agree and carry a
//!   message each way.
//!
//! Invariants checked, besides "no panic": a message never inflates to more than the limit, the
//! output buffer only grows by what was inflated and its capacity stays near the limit, errors
//! are `Inflate` or `MessageTooBig`, round trips give the message back, negotiated window sizes
//! are in 8..=15, and both ends of a negotiation agree.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsx_fuzz::{DeflateSetup, Payload};
use wsx_proto::deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
use wsx_proto::{Error, Role};

#[derive(Arbitrary, Debug)]
enum Input {
    Stream {
        server: bool,
        setup: DeflateSetup,
        limit: u16,
        ops: Vec<Op>,
    },
    RoundTrip {
        server: bool,
        setup: DeflateSetup,
        messages: Vec<(Payload, Vec<u16>, bool)>,
    },
    ServerAccept {
        config: Config,
        offers: Vec<String>,
    },
    ClientAccept {
        config: Config,
        answers: Vec<String>,
    },
    Negotiate {
        client: Config,
        server: Config,
        message: Payload,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Decompress {
        data: Vec<u8>,
        fin: bool,
        prefix: u8,
    },
    Compress(Payload),
    ReleaseIdle,
}

#[derive(Arbitrary, Debug)]
struct Config {
    level: u8,
    min_size: u8,
    server_bits: u8,
    client_bits: u8,
    server_nct: bool,
    client_nct: bool,
}

impl Config {
    fn get(&self) -> DeflateConfig {
        DeflateConfig {
            level: u32::from(self.level % 12),
            min_size: usize::from(self.min_size),
            server_max_window_bits: self.server_bits % 18,
            client_max_window_bits: self.client_bits % 18,
            server_no_context_takeover: self.server_nct,
            client_no_context_takeover: self.client_nct,
        }
    }
}

fn other(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

fn check_params(p: &DeflateParams) {
    for bits in [p.server_max_window_bits, p.client_max_window_bits] {
        assert!((8..=15).contains(&bits), "negotiated window bits {bits}");
    }
}

/// One message from `from` to `to`; the compressed form cut where `cuts` says.
fn carry(from: &mut PerMessageDeflate, to: &mut PerMessageDeflate, msg: &[u8], cuts: &[u16]) {
    let mut wire = BytesMut::new();
    if let Err(e) = from.compress(msg, &mut wire) {
        panic!("compress failed: {e:?}");
    }
    assert!(!wire.is_empty());
    let mut out = BytesMut::new();
    let mut rest = &wire[..];
    for cut in cuts.iter().take(8) {
        let n = usize::from(*cut) % (rest.len() + 1);
        let (now, later) = rest.split_at(n);
        if let Err(e) = to.decompress(now, false, &mut out, msg.len()) {
            panic!("decompress (frame) failed: {e:?}");
        }
        rest = later;
    }
    if let Err(e) = to.decompress(rest, true, &mut out, msg.len()) {
        panic!("decompress (final frame) failed: {e:?}");
    }
    assert_eq!(&out[..], msg, "round trip changed the message");
}

fn stream(role: Role, setup: &DeflateSetup, limit: usize, ops: &[Op]) {
    let mut codec = PerMessageDeflate::new(role, setup.params(), &setup.config());
    // The message being received: its buffer, the length it had before the message began,
    // and the capacity then.
    let mut current: Option<(BytesMut, usize, usize)> = None;
    for op in ops.iter().take(64) {
        match op {
            Op::Decompress { data, fin, prefix } => {
                let (mut dst, start, cap0) = current.take().unwrap_or_else(|| {
                    let mut b = BytesMut::with_capacity(usize::from(*prefix));
                    b.extend_from_slice(&vec![0xAB; usize::from(*prefix)]);
                    let (len, cap) = (b.len(), b.capacity());
                    (b, len, cap)
                });
                let before = dst.len();
                let result = codec.decompress(data, *fin, &mut dst, limit);
                assert!(dst.len() >= before, "decompress shrank the buffer");
                assert_eq!(
                    &dst[..start],
                    &vec![0xAB; start][..],
                    "decompress touched old bytes"
                );
                let inflated = dst.len() - start;
                assert!(
                    inflated <= limit,
                    "{inflated} bytes inflated, limit {limit}"
                );
                assert!(
                    dst.capacity() <= cap0.max(start + limit).max(8),
                    "capacity {} for {start} + limit {limit}",
                    dst.capacity()
                );
                match result {
                    Ok(()) if !*fin => current = Some((dst, start, cap0)),
                    Ok(()) => {}
                    Err(Error::Inflate(_)) => {}
                    Err(Error::MessageTooBig { size, limit: l }) => {
                        assert_eq!(l, limit);
                        assert!(size > limit as u64);
                    }
                    Err(e) => panic!("unexpected decompress error {e:?}"),
                }
            }
            Op::Compress(p) => {
                let mut out = BytesMut::new();
                if let Err(e) = codec.compress(&p.bytes(), &mut out) {
                    panic!("compress failed: {e:?}");
                }
                assert!(!out.is_empty());
            }
            Op::ReleaseIdle => codec.release_idle(),
        }
    }
}

fn round_trip(role: Role, setup: &DeflateSetup, messages: &[(Payload, Vec<u16>, bool)]) {
    let params = setup.params();
    let mut ours = PerMessageDeflate::new(role, params, &setup.config());
    let mut theirs = PerMessageDeflate::new(other(role), params, &setup.peer_config());
    // Whether our compressor starts afresh for every message: only then may their
    // decompressor lose its context (after a failure) without breaking the next message.
    let resets = match role {
        Role::Server => params.server_no_context_takeover || setup.cfg_server_nct,
        Role::Client => params.client_no_context_takeover || setup.cfg_client_nct,
    };
    for (i, (payload, cuts, tight)) in messages.iter().take(16).enumerate() {
        let msg = payload.bytes();
        if i % 2 == 0 {
            carry(&mut ours, &mut theirs, &msg, cuts);
        } else {
            carry(&mut theirs, &mut ours, &msg, cuts);
        }
        if *tight && !msg.is_empty() && resets {
            // One byte under the message's size must fail, and only with MessageTooBig.
            let mut wire = BytesMut::new();
            if let Err(e) = ours.compress(&msg, &mut wire) {
                panic!("compress failed: {e:?}");
            }
            let mut out = BytesMut::new();
            match theirs.decompress(&wire, true, &mut out, msg.len() - 1) {
                Err(Error::MessageTooBig { .. }) => {}
                other => panic!("a limit one byte short gave {other:?}"),
            }
            assert!(out.len() < msg.len());
        }
        if i % 3 == 2 {
            ours.release_idle();
            theirs.release_idle();
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Stream {
            server,
            setup,
            limit,
            ops,
        } => {
            let role = if server { Role::Server } else { Role::Client };
            stream(role, &setup, usize::from(limit % 4096), &ops);
        }
        Input::RoundTrip {
            server,
            setup,
            messages,
        } => {
            let role = if server { Role::Server } else { Role::Client };
            round_trip(role, &setup, &messages);
        }
        Input::ServerAccept { config, offers } => {
            if let Some((params, answer)) = config.get().server_accept(&offers) {
                check_params(&params);
                assert!(answer.starts_with("permessage-deflate"));
            }
        }
        Input::ClientAccept { config, answers } => {
            let config = config.get();
            if let Ok(Some(params)) = config.client_accept(&answers) {
                check_params(&params);
                let asked = config.server_max_window_bits.clamp(8, 15);
                if asked < 15 {
                    assert!(params.server_max_window_bits <= asked);
                }
                assert!(
                    params.client_max_window_bits <= config.client_max_window_bits.clamp(8, 15)
                );
                if config.client_no_context_takeover {
                    assert!(params.client_no_context_takeover);
                }
            }
        }
        Input::Negotiate {
            client,
            server,
            message,
        } => {
            let (client, server) = (client.get(), server.get());
            let offer = client.client_offer();
            let Some((server_params, answer)) = server.server_accept(std::slice::from_ref(&offer))
            else {
                panic!("the server declined the offer {offer:?}");
            };
            check_params(&server_params);
            let client_params = match client.client_accept(std::slice::from_ref(&answer)) {
                Ok(Some(p)) => p,
                other => panic!("the client refused {answer:?} to {offer:?}: {other:?}"),
            };
            assert_eq!(
                client_params, server_params,
                "offer {offer:?}, answer {answer:?}"
            );
            let mut s = PerMessageDeflate::new(Role::Server, server_params, &server);
            let mut c = PerMessageDeflate::new(Role::Client, client_params, &client);
            let msg = message.bytes();
            for _ in 0..2 {
                carry(&mut s, &mut c, &msg, &[]);
                carry(&mut c, &mut s, &msg, &[7]);
            }
        }
    }
});
