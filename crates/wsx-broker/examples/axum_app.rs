//! An axum app with a STOMP endpoint at `/stomp`, an application destination and per-user
//! replies: a SEND to `/app/greet` whose body is a name makes the app publish `Hello, NAME!`
//! to `/topic/greetings` and send `welcome NAME` to the sender's `/user/queue/replies`.
//!
//! For the demo, any CONNECT `login` is taken as the principal (a real app checks a password,
//! a session cookie or a token in the authenticator).
//!
//! ```text
//! cargo run -p wsx-broker --features axum --example axum_app -- 127.0.0.1:3000
//! ```
//!
//! It prints the address it listens on as its first line of output.

use std::net::SocketAddr;

use axum::Router;
use wsx_broker::{AppMessage, Broker};
use wsx_stomp::{AuthRequest, Headers, Principal, Refusal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let broker = Broker::builder()
        .authenticator(|request: AuthRequest| async move {
            match request.login {
                Some(login) if !login.is_empty() && !login.contains('/') => {
                    Ok(Principal::allow_all(login))
                }
                _ => Err(Refusal::new("a login is required")),
            }
        })
        .route("/app/greet", |message: AppMessage| async move {
            let name = message.body_str().unwrap_or_default().trim().to_owned();
            if name.is_empty() {
                return Err(Refusal::new("send a name"));
            }
            message.publish(
                "/topic/greetings",
                Headers::new(),
                format!("Hello, {name}!"),
            )?;
            message.reply("/queue/replies", Headers::new(), format!("welcome {name}"))?;
            Ok(())
        })
        .build()?;
    let app = Router::new().route("/stomp", broker.axum_route());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
