//! `proglog cluster`: status, leadership transfer and voter removal of a
//! replicated cluster, over `proglog.v1.Cluster` (the `admin` action).
//! Transfer and removal go to the leader, found through the node given.

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

async fn connect(addr: &str, args: &ConnectArgs) -> anyhow::Result<ClusterClient<Channel>> {
    let tls = match &args.ca_file {
        Some(ca_file) => Some(
            auth::ClientTlsConfig {
                ca_file: ca_file.clone(),
                cert_file: args.cert_file.clone(),
                key_file: args.key_file.clone(),
                server_name: args.tls_server_name.clone(),
            }
            .load()?,
        ),
        None => None,
    };
    let channel = crate::raft_transport::PeerTls::from_client(tls.map(std::sync::Arc::new))
        .connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    Ok(ClusterClient::new(channel))
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", proto::code_name(status.code()), status.message())
}

async fn status_of(client: &mut ClusterClient<Channel>) -> anyhow::Result<ClusterStatusResponse> {
    Ok(client
        .status(ClusterStatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner())
}

/// A client to the leader, found through the node at `args.connect.addr`.
async fn leader(args: &ConnectArgs) -> anyhow::Result<ClusterClient<Channel>> {
    let mut client = connect(&args.addr, args).await?;
    let status = status_of(&mut client).await?;
    anyhow::ensure!(
        status.leader_id != 0,
        "no leader is elected yet; retry shortly"
    );
    if status.leader_id == status.node_id {
        return Ok(client);
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
    connect(&addr, args).await
}

/// Runs `proglog cluster`.
///
/// # Errors
/// The node cannot be reached, or refuses (the message says why).
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let text = match args.command {
        ClusterCommand::Status { json, connect: to } => {
            let mut client = connect(&to.addr, &to).await?;
            let status = status_of(&mut client).await?;
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
