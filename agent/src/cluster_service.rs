//! `proglog.v1.Cluster`: status, leadership transfer and voter removal for
//! `proglog cluster`, served next to the public API (the `admin` action).

use std::time::Duration;

use proto::v1::cluster_server::{Cluster as ClusterApi, ClusterServer};
use proto::v1::{
    ClusterStatusRequest, ClusterStatusResponse, PeerStatus, RemoveNodeRequest, RemoveNodeResponse,
    TransferLeaderRequest, TransferLeaderResponse,
};
use replicator::{MembershipChange, Replica, Role};
use tonic::{Request, Response, Status};

use crate::cluster::Cluster;

/// Longest a transfer or a removal may take to show.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The service over one node's replica.
pub struct ClusterService {
    replica: Replica,
    cluster: Cluster,
}

impl ClusterService {
    /// The service as routes to serve next to the public API.
    pub fn router(replica: Replica, cluster: Cluster) -> axum::Router {
        axum::Router::new().route_service(
            "/proglog.v1.Cluster/{*method}",
            ClusterServer::new(Self { replica, cluster }),
        )
    }

    /// The node a request names: a numeric id or a name gossip knows.
    fn resolve(&self, node: &str) -> Result<u64, Status> {
        if let Ok(id) = node.parse::<u64>() {
            return Ok(id);
        }
        self.cluster
            .member_id(node)
            .ok_or_else(|| Status::not_found(format!("no member named {node:?} is known")))
    }

    fn require_leader(&self) -> Result<(), Status> {
        let status = *self.replica.status().borrow();
        if status.role == Role::Leader {
            return Ok(());
        }
        Err(Status::failed_precondition(match status.leader {
            Some(leader) => format!(
                "this node is not the leader; the leader is node {leader} at {}",
                (self.cluster.rpc_addrs())(leader).unwrap_or_else(|| "an unknown address".into())
            ),
            None => "no leader is elected yet; retry shortly".into(),
        }))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}

#[tonic::async_trait]
impl ClusterApi for ClusterService {
    async fn status(
        &self,
        _request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let status = *self.replica.status().borrow();
        let conf = self.replica.conf_state();
        let progress = self.replica.progress().await;
        let addrs = self.cluster.rpc_addrs();
        let peer = |id: u64, membership: &str| {
            let matched = progress
                .iter()
                .find(|p| p.id == id)
                .map_or(0, |p| p.matched);
            PeerStatus {
                node_id: id,
                name: self.cluster.member_name(id).unwrap_or_default(),
                rpc_addr: addrs(id).unwrap_or_default(),
                membership: membership.to_owned(),
                match_index: matched,
                lag: if progress.is_empty() {
                    0
                } else {
                    status.last_index.saturating_sub(matched)
                },
            }
        };
        let mut peers: Vec<PeerStatus> = conf
            .get_voters()
            .iter()
            .map(|&id| peer(id, "voter"))
            .collect();
        peers.extend(conf.get_learners().iter().map(|&id| peer(id, "learner")));
        Ok(Response::new(ClusterStatusResponse {
            node_id: status.id,
            node_name: self.cluster.member_name(status.id).unwrap_or_default(),
            term: status.term,
            leader_id: status.leader.unwrap_or(0),
            role: role_name(status.role).to_owned(),
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            last_index: status.last_index,
            peers,
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        self.require_leader()?;
        let node = request.into_inner().node;
        let target = if node.is_empty() {
            None
        } else {
            Some(self.resolve(&node)?)
        };
        if let Some(target) = target
            && !self.replica.conf_state().get_voters().contains(&target)
        {
            return Err(Status::invalid_argument(format!(
                "node {target} is not a voter"
            )));
        }
        match self
            .replica
            .transfer_leadership_to(target, CHANGE_TIMEOUT)
            .await
        {
            Some(leader) => Ok(Response::new(TransferLeaderResponse { leader_id: leader })),
            None => Err(Status::unavailable(
                "the transfer did not complete in time (the target may be behind or unreachable); retry",
            )),
        }
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.require_leader()?;
        let node = self.resolve(&request.into_inner().node)?;
        let conf = self.replica.conf_state();
        let known = conf.get_voters().contains(&node) || conf.get_learners().contains(&node);
        if !known {
            return Err(Status::not_found(format!(
                "node {node} is neither a voter nor a learner"
            )));
        }
        if node == self.replica.status().borrow().id {
            return Err(Status::failed_precondition(
                "this node leads: transfer leadership first (proglog cluster transfer-leader)",
            ));
        }
        if conf.get_voters() == [node] {
            return Err(Status::failed_precondition(
                "refusing to remove the last voter",
            ));
        }
        self.replica
            .change_membership(MembershipChange::Remove(node))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + CHANGE_TIMEOUT;
        loop {
            let conf = self.replica.conf_state();
            if !conf.get_voters().contains(&node) && !conf.get_learners().contains(&node) {
                return Ok(Response::new(RemoveNodeResponse {
                    voters: conf.get_voters().to_vec(),
                }));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Status::unavailable(
                    "the removal was not applied in time; check status",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
