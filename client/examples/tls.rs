//! Mutual TLS: verify nodes against a CA and present a client certificate
//! (e.g. from `proglog cert`).
//!
//! `cargo run -p proglog-client --example tls -- n1:8400 ca.pem client.pem client-key.pem`

use std::path::Path;
use std::time::Duration;

use proglog_client::{Client, TlsConfig};

#[tokio::main]
async fn main() -> proglog_client::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seeds, ca, cert, key] = &args[..] else {
        eprintln!("usage: tls SEEDS CA_PEM CERT_PEM KEY_PEM");
        std::process::exit(2);
    };
    // Pass Some("node-0") as the server name to verify every node's
    // certificate against one name (when dialling addresses it lacks).
    let tls =
        TlsConfig::from_pem_files(Path::new(ca), Some((Path::new(cert), Path::new(key))), None)?;
    let client = Client::builder(seeds.split(','))
        .tls(tls)
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await?;
    let info = client.log_info().await?;
    println!("{info:?}");
    Ok(())
}
