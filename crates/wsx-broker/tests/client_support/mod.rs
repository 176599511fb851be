//! What the STOMP client tests share: a TCP proxy the client connects through to a broker on a
//! real socket, which the test cuts ([`Proxy::cut`]) or makes refuse new connections for a
//! while ([`Proxy::refuse`], [`Proxy::admit`]), as a network outage would; waiting for the
//! client to notice the outage and to come back; receiving with a deadline.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wsx_stomp::{ClientMessage, ConnectionState, StompClient, Subscription};

/// How long anything may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The next message of `subscription`, within [`WAIT`].
pub async fn next(subscription: &mut Subscription) -> ClientMessage {
    tokio::time::timeout(WAIT, subscription.recv())
        .await
        .expect("a message in time")
        .expect("the client runs")
}

/// Cut `proxy` and refuse new connections until the client has noticed.
pub async fn outage(proxy: &Proxy, client: &StompClient) {
    let mut state = client.state();
    proxy.refuse();
    proxy.cut();
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| matches!(s, ConnectionState::Disconnected { .. })),
    )
    .await
    .expect("the loss noticed in time")
    .expect("the client runs");
}

/// Admit connections through `proxy` again and wait until the client has reconnected and
/// resubscribed.
pub async fn recover(proxy: &Proxy, client: &StompClient) {
    proxy.admit();
    tokio::time::timeout(
        WAIT,
        client.wait_for_state(
            |s| matches!(s, ConnectionState::Connected { connection, .. } if *connection >= 2),
        ),
    )
    .await
    .expect("reconnected in time")
    .expect("the client runs");
}

/// A proxy from a port of 127.0.0.1 to `target`.
pub struct Proxy {
    /// The proxy's address.
    pub addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("an address");
        let refusing = Arc::new(AtomicBool::new(false));
        let pipes: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let refusing = refusing.clone();
            let pipes = pipes.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection close at once
                    }
                    let pipe = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    pipes.lock().expect("lock").push(pipe);
                }
            }
        });
        Proxy {
            addr,
            refusing,
            pipes,
            accept,
        }
    }

    /// The client's URL for the broker's `/stomp` through the proxy.
    pub fn url(&self) -> String {
        format!("ws://{}/stomp", self.addr)
    }

    /// Close every connection through the proxy (both sides).
    pub fn cut(&self) {
        for pipe in self.pipes.lock().expect("lock").drain(..) {
            pipe.abort();
        }
    }

    /// Close new connections at once until [`admit`](Self::admit).
    pub fn refuse(&self) {
        self.refusing.store(true, Ordering::SeqCst);
    }

    /// Pass new connections through again.
    pub fn admit(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
