//! Authorization of every request, gRPC and HTTP, in one place.
//!
//! The transport says who is calling ([`Caller`], from the connection); the
//! route says what the call needs ([`Action`]); an [`AccessPolicy`] (the
//! agent adapts the `auth` crate's policy engine to it) decides. Health
//! checks are public. Refusals are `UNAUTHENTICATED`/401 for a caller with no
//! identity and `PERMISSION_DENIED`/403 otherwise; nothing is read or written.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::Error;
use crate::transport::{Caller, Handshake, Plaintext};

/// What a request needs permission for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Append records.
    Produce,
    /// Read records, offsets, servers; list services by reflection.
    Consume,
    /// Operate the node (metrics on the service port, unknown routes).
    Admin,
    /// Node-to-node replication (reserved for the cluster).
    Replicate,
}

impl Action {
    /// The action's name as policies spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Produce => "produce",
            Self::Consume => "consume",
            Self::Admin => "admin",
            Self::Replicate => "replicate",
        }
    }
}

/// Decides whether a caller may perform an action.
pub trait AccessPolicy: Send + Sync + 'static {
    /// Whether `caller` may do `action`.
    fn allows(&self, caller: &Caller, action: Action) -> bool;
}

/// Allows everything: local development without TLS.
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn allows(&self, _caller: &Caller, _action: Action) -> bool {
        true
    }
}

/// How a server authenticates and authorizes callers.
#[derive(Clone)]
pub struct Access {
    /// The connection handshake (TLS or none).
    pub handshake: Arc<dyn Handshake>,
    /// The authorization policy.
    pub policy: Arc<dyn AccessPolicy>,
}

impl Access {
    /// Plaintext and everything allowed (the embedded local default).
    pub fn open() -> Self {
        Self {
            handshake: Arc::new(Plaintext),
            policy: Arc::new(AllowAll),
        }
    }
}

/// The action a request needs, or `None` for public routes (health).
pub fn required_action(method: &axum::http::Method, path: &str) -> Option<Action> {
    if path.starts_with("/grpc.health.v1.Health/") || path == "/healthz" || path == "/readyz" {
        return None;
    }
    if let Some(rpc) = path.strip_prefix("/proglog.v1.Log/") {
        return Some(match rpc {
            "Produce" | "ProduceBatch" | "ProduceStream" => Action::Produce,
            "Consume" | "ConsumeBatch" | "ConsumeStream" | "GetLogInfo" | "GetServers" => {
                Action::Consume
            }
            _ => Action::Admin,
        });
    }
    // Raft messages between nodes.
    if path.starts_with("/proglog.v1.Raft/") {
        return Some(Action::Replicate);
    }
    // Reflection reveals the API's shape, so it needs `consume`.
    if path.starts_with("/grpc.reflection.") {
        return Some(Action::Consume);
    }
    if path == "/v1/records" || path == "/v1/records/batch" {
        return Some(if method == axum::http::Method::POST {
            Action::Produce
        } else {
            Action::Consume
        });
    }
    if path.starts_with("/v1/records/") || path == "/v1/info" || path == "/v1/servers" {
        return Some(Action::Consume);
    }
    Some(Action::Admin)
}

/// Axum middleware: attaches the [`Caller`] to the request, records its
/// subject on the request span, and refuses what the policy does not allow.
pub(crate) async fn authorize(
    State(policy): State<Arc<dyn AccessPolicy>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = request
        .extensions()
        .get::<ConnectInfo<Caller>>()
        .map(|info| info.0.clone())
        .unwrap_or_default();
    if let Some(subject) = &caller.subject {
        tracing::Span::current().record("subject", subject.as_str());
    }
    if let Some(action) = required_action(request.method(), request.uri().path())
        && !policy.allows(&caller, action)
    {
        return refuse(&request, &caller, action);
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn refuse(request: &Request, caller: &Caller, action: Action) -> Response {
    let (error, kind) = match &caller.subject {
        None => (Error::Unauthenticated(action.as_str()), "unauthenticated"),
        Some(subject) => (
            Error::PermissionDenied {
                subject: subject.clone(),
                action: action.as_str(),
            },
            "permission_denied",
        ),
    };
    metrics::counter!("proglog_errors_total", "kind" => kind).increment(1);
    error.into_response_for(crate::edge::is_grpc(request.headers()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn every_route_needs_the_right_action() {
        let cases = [
            (
                Method::POST,
                "/proglog.v1.Log/Produce",
                Some(Action::Produce),
            ),
            (
                Method::POST,
                "/proglog.v1.Log/ProduceStream",
                Some(Action::Produce),
            ),
            (
                Method::POST,
                "/proglog.v1.Log/ConsumeStream",
                Some(Action::Consume),
            ),
            (
                Method::POST,
                "/proglog.v1.Log/GetServers",
                Some(Action::Consume),
            ),
            (Method::POST, "/proglog.v1.Log/Unknown", Some(Action::Admin)),
            (Method::POST, "/grpc.health.v1.Health/Check", None),
            (
                Method::POST,
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Some(Action::Consume),
            ),
            (Method::POST, "/v1/records", Some(Action::Produce)),
            (Method::GET, "/v1/records", Some(Action::Consume)),
            (Method::POST, "/v1/records/batch", Some(Action::Produce)),
            (Method::GET, "/v1/records/7", Some(Action::Consume)),
            (Method::GET, "/v1/records/stream", Some(Action::Consume)),
            (Method::GET, "/healthz", None),
            (Method::GET, "/readyz", None),
            (Method::GET, "/metrics", Some(Action::Admin)),
            (Method::GET, "/anything", Some(Action::Admin)),
        ];
        for (method, path, action) in cases {
            assert_eq!(required_action(&method, path), action, "{method} {path}");
        }
    }
}
