//! Produce a few records, one at a time, as a batch, and pipelined.
//!
//! `cargo run -p proglog-client --example produce -- 127.0.0.1:8400`
//! (any nodes of the cluster, comma-separated).

use bytes::Bytes;
use proglog_client::Client;

#[tokio::main]
async fn main() -> proglog_client::Result<()> {
    let seeds = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8400".to_owned());
    let client = Client::connect(seeds.split(',')).await?;
    println!("leader: {:?}", client.leader());

    // One record: its offset. Retried on another node if the leader moves;
    // the producer id makes the retry safe.
    let offset = client.produce("hello").await?;
    println!("hello at {offset}");

    // A batch: dense offsets, one durable write.
    let offsets = client
        .produce_batch(vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("c")])
        .await?;
    println!("batch at {offsets:?}");

    // Pipelined: many in flight on one stream, acknowledged in order.
    let producer = client.producer();
    let mut acks = Vec::new();
    for i in 0..1000 {
        acks.push(producer.send(format!("record {i}")).await?);
    }
    let mut last = None;
    for ack in acks {
        last = Some(ack.await?);
    }
    println!("1000 pipelined records, the last at {last:?}");
    Ok(())
}
