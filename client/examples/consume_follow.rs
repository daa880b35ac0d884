//! Read from an offset and follow the tail, surviving node failures.
//!
//! `cargo run -p proglog-client --example consume_follow -- 127.0.0.1:8400 0`

use futures_util::StreamExt as _;
use proglog_client::{Client, ReadPreference};

#[tokio::main]
async fn main() -> proglog_client::Result<()> {
    let mut args = std::env::args().skip(1);
    let seeds = args.next().unwrap_or_else(|| "127.0.0.1:8400".to_owned());
    let client = Client::builder(seeds.split(','))
        .read_preference(ReadPreference::Followers)
        .connect()
        .await?;
    let from = match args.next() {
        Some(offset) => offset.parse().unwrap_or(0),
        None => client.log_info().await?.lowest_offset,
    };
    // If the node this reads from dies, the stream moves to another one and
    // resumes after the last record it delivered.
    let mut records = client.follow(from);
    while let Some(record) = records.next().await {
        let record = record?;
        println!(
            "{}: {}",
            record.offset,
            String::from_utf8_lossy(&record.value)
        );
    }
    Ok(())
}
