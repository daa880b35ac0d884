//! The identity each member gossips about itself.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A member as foca sees it: who it is, where to reach it, and which life of
/// the process this is.
///
/// foca keys members by [`foca::Identity::addr`], here the gossip address
/// (an announce to a seed known only by its address must match it), so a
/// node restarted at the same address (higher `incarnation`) replaces its
/// old identity inside foca. One restarted at a new address (a pod that
/// came back with another IP) is a second foca member until the old one is
/// declared down; the published member list keeps one entry per node id,
/// the newest incarnation, so the old one never shows.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Member {
    /// Stable node id; never 0 for a real member (0 marks a seed address
    /// whose owner is not known yet).
    pub id: u64,
    /// The node's name.
    pub name: String,
    /// Where peers send gossip.
    pub gossip_addr: SocketAddr,
    /// Where clients and peers call the node's RPC port.
    pub rpc_addr: String,
    /// Newer after every restart (and after every foca renewal).
    pub incarnation: u64,
}

impl Member {
    /// A placeholder for a seed known only by its address: used as the
    /// destination of an announce, never stored as a member (foca learns
    /// the real identity from the reply).
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        Self {
            id: 0,
            name: String::new(),
            gossip_addr: addr,
            rpc_addr: String::new(),
            incarnation: 0,
        }
    }
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            incarnation: self.incarnation.wrapping_add(1).max(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity as _;

    use super::*;

    fn member(incarnation: u64) -> Member {
        Member {
            id: 7,
            name: "n1".into(),
            gossip_addr: "127.0.0.1:1".parse().expect("addr"),
            rpc_addr: "127.0.0.1:2".into(),
            incarnation,
        }
    }

    #[test]
    fn a_newer_incarnation_wins_and_renewal_is_newer() {
        let old = member(5);
        let new = old.renew().expect("renews");
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(new.addr(), old.addr());
    }
}
