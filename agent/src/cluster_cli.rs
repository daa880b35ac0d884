//! `proglog cluster`: status, leadership transfer and voter removal of a
//! replicated cluster, over `proglog.v1.Cluster` (the `admin` action).
//! Status asks the first node of `--addr` that answers; transfer and
//! removal go to the leader, found through it. Connections are the client
//! crate's (TLS as for every command); only `admin` is needed, so the
//! cluster is learned from `Status`, not `GetServers`.

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use proto::v1::cluster_client::ClusterClient;
use proto::v1::{
    ClusterStatusRequest, ClusterStatusResponse, RemoveNodeRequest, TransferLeaderRequest,
};
use tonic::transport::Channel;

use crate::client::ConnectArgs;

/// `proglog cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// The cluster operations.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Term, leader, commit and applied index, and each peer's match index
    /// and lag (as the leader sees them).
    Status {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Where a node of the cluster is.
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Hand leadership to NODE (name or id), or to the most caught-up voter.
    TransferLeader {
        /// The new leader.
        node: Option<String>,
        /// Where a node of the cluster is.
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Remove NODE (name or id) from the voters and learners: the only way a
    /// voter leaves (a failed or stopped node is never removed by itself).
    Remove {
        /// The node to remove.
        node: String,
        /// Where a node of the cluster is.
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// A client for the seeds of `--addr` that dials on demand.
fn client(args: &ConnectArgs) -> anyhow::Result<proglog_client::Client> {
    let trace = crate::client::TraceParent::random();
    Ok(crate::client::builder(args, &trace)?.connect_lazy()?)
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", proto::code_name(status.code()), status.message())
}

/// The first seed's answer to `Status`, trying each seed in turn.
async fn status_of_any(
    client: &proglog_client::Client,
    args: &ConnectArgs,
) -> anyhow::Result<(String, ClusterStatusResponse)> {
    let mut last = None;
    for seed in args.seeds() {
        let mut cluster = ClusterClient::new(client.channel(&seed)?);
        match cluster.status(ClusterStatusRequest {}).await {
            Ok(status) => return Ok((seed, status.into_inner())),
            Err(status) => {
                let error = proglog_client::Error::from(status);
                let error = match error {
                    proglog_client::Error::Connect { message, .. } => {
                        anyhow::anyhow!("cannot connect to {seed}: {message}")
                    }
                    other => anyhow::Error::new(other),
                };
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address given")))
}

/// A client of `proglog.v1.Cluster` at the leader, found through the
/// seeds' `Status`.
async fn leader(args: &ConnectArgs) -> anyhow::Result<ClusterClient<Channel>> {
    let client = client(args)?;
    let (seed, status) = status_of_any(&client, args).await?;
    anyhow::ensure!(
        status.leader_id != 0,
        "no leader is elected yet; retry shortly"
    );
    if status.leader_id == status.node_id {
        return Ok(ClusterClient::new(client.channel(&seed)?));
    }
    let addr = status
        .peers
        .iter()
        .find(|p| p.node_id == status.leader_id)
        .map(|p| p.rpc_addr.clone())
        .filter(|a| !a.is_empty())
        .with_context(|| {
            format!(
                "the leader's (node {}) address is not known",
                status.leader_id
            )
        })?;
    Ok(ClusterClient::new(client.channel(&addr)?))
}

/// Runs `proglog cluster`.
///
/// # Errors
/// The node cannot be reached, or refuses (the message says why).
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let text = match args.command {
        ClusterCommand::Status { json, connect: to } => {
            let (_, status) = status_of_any(&client(&to)?, &to).await?;
            if json {
                format!("{}\n", status_json(&status))
            } else {
                status_text(&status)
            }
        }
        ClusterCommand::TransferLeader { node, connect: to } => {
            let mut client = leader(&to).await?;
            let response = client
                .transfer_leader(TransferLeaderRequest {
                    node: node.unwrap_or_default(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            format!("leader is now node {}\n", response.leader_id)
        }
        ClusterCommand::Remove { node, connect: to } => {
            let mut client = leader(&to).await?;
            let response = client
                .remove_node(RemoveNodeRequest { node: node.clone() })
                .await
                .map_err(status_error)?
                .into_inner();
            format!("removed {node}; voters now {:?}\n", response.voters)
        }
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

fn status_json(status: &ClusterStatusResponse) -> serde_json::Value {
    let peers: Vec<serde_json::Value> = status
        .peers
        .iter()
        .map(|p| {
            serde_json::json!({
                "nodeId": p.node_id, "name": p.name, "rpcAddr": p.rpc_addr,
                "membership": p.membership, "matchIndex": p.match_index, "lag": p.lag,
            })
        })
        .collect();
    serde_json::json!({
        "nodeId": status.node_id, "nodeName": status.node_name, "term": status.term,
        "leaderId": status.leader_id, "role": status.role,
        "commitIndex": status.commit_index, "appliedIndex": status.applied_index,
        "lastIndex": status.last_index, "peers": peers,
    })
}

fn status_text(status: &ClusterStatusResponse) -> String {
    let mut text = format!(
        "node:     {} ({})\nrole:     {}\nterm:     {}\nleader:   {}\ncommit:   {}\napplied:  {}\nlast:     {}\n",
        status.node_name,
        status.node_id,
        status.role,
        status.term,
        if status.leader_id == 0 {
            "none".to_owned()
        } else {
            status.leader_id.to_string()
        },
        status.commit_index,
        status.applied_index,
        status.last_index,
    );
    text.push_str("peers:\n");
    for peer in &status.peers {
        text.push_str(&format!(
            "  {:<10} {:<20} {:<22} {:<8} match {} lag {}\n",
            peer.name, peer.node_id, peer.rpc_addr, peer.membership, peer.match_index, peer.lag
        ));
    }
    text
}
