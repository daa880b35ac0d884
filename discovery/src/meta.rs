//! Member metadata that changes while a node runs (e.g. "leaving"),
//! spread as foca custom broadcasts. Each update carries its node id (foca
//! does not say who sent a broadcast) and a version, and a newer version
//! replaces an older one everywhere.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::identity::Member;

/// What a member says about itself beyond its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// The node announced a graceful leave (a shutdown), as opposed to
    /// failing.
    pub leaving: bool,
    /// Free-form labels for the layers above (e.g. `raft=member`).
    pub tags: BTreeMap<String, String>,
}

/// The version of an update: the member's incarnation, then a counter
/// within it, so a restarted node's first update beats its old last one.
pub(crate) type MetaVersion = (u64, u64);

/// One broadcast item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaUpdate {
    pub(crate) node_id: u64,
    pub(crate) version: MetaVersion,
    pub(crate) meta: MemberMeta,
}

/// Which update a broadcast is, for foca's dissemination backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaKey {
    node_id: u64,
    version: MetaVersion,
}

impl foca::Invalidates for MetaKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node_id == other.node_id && self.version >= other.version
    }
}

/// A broadcast that did not decode.
#[derive(Debug, thiserror::Error)]
#[error("member metadata broadcast does not decode: {0}")]
pub(crate) struct MetaDecodeError(#[from] postcard::Error);

/// Keeps the newest metadata of every member.
#[derive(Debug, Default)]
pub(crate) struct MetaHandler {
    known: HashMap<u64, MetaUpdate>,
}

impl MetaHandler {
    /// The newest metadata known for `node_id`.
    pub(crate) fn get(&self, node_id: u64) -> Option<&MemberMeta> {
        self.known.get(&node_id).map(|update| &update.meta)
    }

    /// Encodes an update for [`foca::Foca::add_broadcast`].
    pub(crate) fn encode(update: &MetaUpdate) -> Vec<u8> {
        postcard::to_allocvec(update).unwrap_or_default()
    }
}

impl foca::BroadcastHandler<Member> for MetaHandler {
    type Key = MetaKey;
    type Error = MetaDecodeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&Member>,
    ) -> Result<Option<MetaKey>, MetaDecodeError> {
        let update: MetaUpdate = postcard::from_bytes(data)?;
        if let Some(known) = self.known.get(&update.node_id)
            && known.version >= update.version
        {
            return Ok(None);
        }
        let key = MetaKey {
            node_id: update.node_id,
            version: update.version,
        };
        self.known.insert(update.node_id, update);
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use foca::BroadcastHandler as _;

    use super::*;

    fn update(version: MetaVersion, leaving: bool) -> Vec<u8> {
        MetaHandler::encode(&MetaUpdate {
            node_id: 3,
            version,
            meta: MemberMeta {
                leaving,
                tags: BTreeMap::new(),
            },
        })
    }

    #[test]
    fn newer_updates_win_and_stale_ones_are_not_spread() {
        let mut handler = MetaHandler::default();
        assert!(
            handler
                .receive_item(&update((5, 1), false), None)
                .expect("decodes")
                .is_some()
        );
        assert!(
            handler
                .receive_item(&update((5, 2), true), None)
                .expect("decodes")
                .is_some()
        );
        assert!(
            handler
                .receive_item(&update((5, 1), false), None)
                .expect("decodes")
                .is_none()
        );
        assert!(handler.get(3).expect("known").leaving);
        assert!(
            handler
                .receive_item(&update((6, 0), false), None)
                .expect("decodes")
                .is_some()
        );
        assert!(!handler.get(3).expect("known").leaving);
        assert!(handler.receive_item(&[0xff, 0xff, 0xff], None).is_err());
    }
}
