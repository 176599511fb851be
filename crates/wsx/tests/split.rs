//! Split connections: a driver task, a receiver and cloneable senders, over real sockets.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{echo_server, within};
use tokio::net::TcpListener;
use wsx::{CloseCode, Message};

#[tokio::test]
async fn many_senders_one_receiver() {
    let addr = echo_server().await;
    let (ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    common::four_split_senders_are_echoed_in_order(ws).await;
}

#[tokio::test]
async fn pings_are_answered_when_nobody_receives() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        ws.send(Message::Ping(Bytes::from_static(b"hello?")))
            .await
            .unwrap();
        loop {
            match ws.recv().await {
                Some(Ok(Message::Pong(p))) => return p,
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    });
    let (ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    // Keep both halves alive but never poll the receiver.
    let (_tx, _rx) = ws.split();
    assert_eq!(within(server).await.unwrap(), Bytes::from_static(b"hello?"));
}

#[tokio::test]
async fn recv_in_select_with_timeouts_loses_nothing() {
    let addr = echo_server().await;
    let (ws, _) = wsx::connect(&format!("ws://{addr}/")).await.unwrap();
    let (tx, mut rx) = ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..300u32 {
            tx.send(Message::binary(i.to_be_bytes().to_vec()))
                .await
                .unwrap();
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        tx
    });
    let mut got = 0u32;
    let mut timeouts = 0;
    while got < 300 {
        tokio::select! {
            m = rx.recv() => {
                let m = m.unwrap().unwrap();
                assert_eq!(m, Message::binary(got.to_be_bytes().to_vec()));
                got += 1;
            }
            _ = tokio::time::sleep(Duration::from_micros(50)) => timeouts += 1,
        }
        assert!(timeouts < 1_000_000);
    }
    let tx = sender.await.unwrap();
    // Cancelled sends do not queue anything: a send raced against an expired timer.
    let before = tx.buffered_amount();
    tokio::select! {
        biased;
        _ = std::future::ready(()) => {}
        _ = tx.send(Message::text("never")) => panic!("the ready branch wins"),
    }
    assert_eq!(tx.buffered_amount(), before);
    tx.close(CloseCode::NORMAL, "").await.unwrap();
    while let Some(m) = within(rx.recv()).await {
        assert!(!matches!(m, Ok(Message::Text(ref t)) if t.as_str() == "never"));
    }
}
