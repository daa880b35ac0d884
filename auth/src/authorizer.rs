//! What a caller may do: the actions and the engine-neutral `Authorizer` trait.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::subject::Subject;

/// An operation the policy rules on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Append records.
    Produce,
    /// Read records and log metadata.
    Consume,
    /// Operate the cluster (membership, configuration).
    Admin,
    /// Copy the log between nodes; reserved for node identities.
    Replicate,
}

impl Action {
    /// Every action, in a fixed order (for tables and listings).
    pub const ALL: [Self; 4] = [Self::Produce, Self::Consume, Self::Admin, Self::Replicate];

    /// The name policies use: `produce`, `consume`, `admin`, `replicate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Produce => "produce",
            Self::Consume => "consume",
            Self::Admin => "admin",
            Self::Replicate => "replicate",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
            .ok_or_else(|| Error::UnknownAction {
                name: name.to_owned(),
            })
    }
}

/// Decides whether a subject may perform an action.
///
/// Implementations are shared by every request task, so they must be cheap to
/// call concurrently; a reload swaps the whole authorizer rather than
/// mutating one.
pub trait Authorizer: Send + Sync {
    /// `Ok(true)` if `subject` may perform `action`, `Ok(false)` if the policy
    /// denies it (including by saying nothing about it).
    ///
    /// # Errors
    /// The engine failed to reach a decision. Callers must treat this as a
    /// denial and log it; it is never a reason to allow.
    fn authorize(&self, subject: &Subject, action: Action) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    //! Action names are the policy's vocabulary; they must round-trip.

    use super::*;

    #[test]
    fn actions_round_trip_through_their_names() {
        for action in Action::ALL {
            assert_eq!(action.to_string().parse::<Action>().expect("parse"), action);
        }
        assert_eq!(
            Action::ALL.map(Action::as_str),
            ["produce", "consume", "admin", "replicate"]
        );
    }

    #[test]
    fn unknown_and_differently_cased_names_are_refused() {
        for name in ["", "Produce", "write", "replicate "] {
            let error = name.parse::<Action>().expect_err(name);
            assert!(matches!(error, Error::UnknownAction { .. }), "{error}");
        }
    }
}
