//! The Autobahn|Testsuite testee client: runs every case the fuzzingserver offers, echoing each
//! message back, then asks it to write its reports.
//!
//! `cargo run --release -p wsx --example autobahn_client -- ws://127.0.0.1:9001`

use wsx::{ClientBuilder, DeflateConfig, Message, WebSocketConfig};

const AGENT: &str = "wsx";

async fn case_count(base: &str) -> Result<u32, wsx::Error> {
    let (mut ws, _) = wsx::connect(&format!("{base}/getCaseCount")).await?;
    let mut count = 0;
    while let Some(msg) = ws.recv().await {
        if let Message::Text(t) = msg? {
            count = t.as_str().trim().parse().unwrap_or(0);
        }
    }
    Ok(count)
}

async fn run_case(base: &str, case: u32, config: &WebSocketConfig) -> Result<(), wsx::Error> {
    let url = format!("{base}/runCase?case={case}&agent={AGENT}");
    let (mut ws, _) = ClientBuilder::new(url)
        .config(config.clone())
        .connect()
        .await?;
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        if msg.is_data() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

async fn update_reports(base: &str) -> Result<(), wsx::Error> {
    let (mut ws, _) = wsx::connect(&format!("{base}/updateReports?agent={AGENT}")).await?;
    ws.close(wsx::CloseCode::NORMAL, "").await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_string());
    let base = base.trim_end_matches('/').to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut config = WebSocketConfig::default();
        if std::env::var("WSX_COMPRESSION").as_deref() != Ok("off") {
            config = config.compression(DeflateConfig::default());
        }
        let count = case_count(&base).await?;
        println!("autobahn_client: {count} cases");
        for case in 1..=count {
            if let Err(e) = run_case(&base, case, &config).await {
                // Many cases end with an error on purpose (the fuzzer sends bad frames).
                eprintln!("case {case}: {e}");
            }
        }
        update_reports(&base).await?;
        println!("autobahn_client: reports updated");
        Ok(())
    })
}
