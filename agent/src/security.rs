//! TLS and authorization for the node: the `auth` crate's configurations
//! adapted to the server's [`log_server::Handshake`] and
//! [`log_server::AccessPolicy`], and reloaded together on SIGHUP.
//!
//! What is in force:
//! - no TLS, no policy file: plaintext, every caller anonymous and allowed
//!   (what `auth/policies/dev.polar` says, without asking the engine);
//! - TLS: the configured policy file, else the shipped default policy
//!   ([`auth::DEFAULT_POLICY`]), which allows only what it names;
//! - a policy file without TLS: that policy, over anonymous callers.
//!
//! A reload reads every file again and swaps in the new TLS configuration
//! and policy only if all of them load; otherwise the old ones stay and the
//! error is returned (and logged by the caller). New handshakes use the new
//! certificates at once; open connections keep theirs. The policy applies to
//! every request, so a new policy governs open connections too.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use auth::{Authorizer, OsoAuthorizer, ServerTlsConfig, Subject, SubjectSource};
use log_server::transport::{Handshaken, Io};
use log_server::{Access, AccessPolicy, AllowAll, Caller, Handshake, Plaintext};
use tokio::net::TcpStream;

use crate::config::AgentConfig;

/// Subjects whose decisions are remembered per policy; on overflow the
/// memory starts afresh.
/// Policies depend only on the subject and the action (there is one
/// resource), so a decision never goes stale until the policy is replaced.
const DECISIONS_MAX: usize = 4096;

/// Where the security material lives, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Server certificate, key and optional client CA; `None`: plaintext.
    pub tls: Option<ServerTlsConfig>,
    /// Which certificate field names the caller.
    pub subject_source: SubjectSource,
    /// The policy file; `None`: the shipped default (TLS) or allow-all.
    pub policy_file: Option<PathBuf>,
}

impl SecurityConfig {
    /// The security part of the agent's configuration (already validated).
    pub fn from_agent(config: &AgentConfig) -> Self {
        let tls = match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(ServerTlsConfig {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                client_ca_file: config.tls_client_ca_file.clone(),
            }),
            _ => None,
        };
        Self {
            tls,
            subject_source: config.tls_subject.parse().unwrap_or_default(),
            policy_file: config.acl_policy_file.clone(),
        }
    }

    fn load_policy(&self) -> auth::Result<Arc<dyn Authorizer>> {
        Ok(match (&self.policy_file, &self.tls) {
            (Some(file), _) => Arc::new(OsoAuthorizer::from_file(file)?),
            (None, Some(_)) => Arc::new(OsoAuthorizer::from_source(
                "<shipped default policy>",
                auth::DEFAULT_POLICY,
            )?),
            (None, None) => Arc::new(AllowEverything),
        })
    }
}

/// The no-TLS, no-policy case as an [`Authorizer`].
struct AllowEverything;

impl Authorizer for AllowEverything {
    fn authorize(&self, _subject: &Subject, _action: auth::Action) -> auth::Result<bool> {
        Ok(true)
    }
}

/// The node's live security state: what the server consults on every
/// handshake and request, and what [`reload`](Self::reload) replaces.
pub struct Security {
    config: SecurityConfig,
    tls: Option<Arc<TlsHandshake>>,
    policy: Arc<PolicyAccess>,
}

impl Security {
    /// Loads every file once.
    ///
    /// # Errors
    /// A file is missing, unreadable or invalid, a key does not match its
    /// certificate, or the policy does not parse; the message names the file
    /// (and the line, for a policy).
    pub fn load(config: SecurityConfig) -> auth::Result<Self> {
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(TlsHandshake {
                config: RwLock::new(tls.load()?),
                subject_source: config.subject_source,
            })),
            None => None,
        };
        let policy = Arc::new(PolicyAccess::new(config.load_policy()?));
        Ok(Self {
            config,
            tls,
            policy,
        })
    }

    /// A one-line description for the startup log.
    pub fn describe(&self) -> String {
        let transport = match &self.config.tls {
            None => "plaintext".to_owned(),
            Some(tls) if tls.client_ca_file.is_some() => {
                format!("mutual TLS (subject from {})", self.config.subject_source)
            }
            Some(_) => "TLS without client certificates".to_owned(),
        };
        let policy = match (&self.config.policy_file, &self.config.tls) {
            (Some(file), _) => format!("policy {}", file.display()),
            (None, Some(_)) => "the shipped default policy".to_owned(),
            (None, None) => "no policy (everything allowed)".to_owned(),
        };
        format!("{transport}, {policy}")
    }

    /// What the server needs: the handshake and the policy.
    pub fn access(&self) -> Access {
        Access {
            handshake: match &self.tls {
                Some(tls) => Arc::clone(tls) as Arc<dyn Handshake>,
                None => Arc::new(Plaintext),
            },
            policy: if self.config.tls.is_none() && self.config.policy_file.is_none() {
                Arc::new(AllowAll)
            } else {
                Arc::clone(&self.policy) as Arc<dyn AccessPolicy>
            },
        }
    }

    /// Reads the certificates, CA and policy again and puts them in force
    /// if all load; otherwise nothing changes.
    ///
    /// # Errors
    /// As [`load`](Self::load); the old configuration stays in force.
    pub fn reload(&self) -> auth::Result<()> {
        let server_config = match &self.config.tls {
            Some(tls) => Some(tls.load()?),
            None => None,
        };
        let authorizer = self.config.load_policy()?;
        if let (Some(handshake), Some(server_config)) = (&self.tls, server_config) {
            *handshake
                .config
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = server_config;
        }
        self.policy.replace(authorizer);
        Ok(())
    }
}

/// The TLS handshake with the current server configuration; the caller's
/// subject comes from its verified client certificate.
struct TlsHandshake {
    config: RwLock<Arc<rustls::ServerConfig>>,
    subject_source: SubjectSource,
}

impl Handshake for TlsHandshake {
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Pin<Box<dyn Future<Output = io::Result<Handshaken>> + Send>> {
        let config = Arc::clone(
            &self
                .config
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let source = self.subject_source;
        Box::pin(async move {
            let stream = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
            let certificates = stream.get_ref().1.peer_certificates();
            // A verified certificate without the configured field cannot be
            // named in a policy: refuse the connection rather than treat
            // it as anonymous.
            let subject = Subject::from_peer_certificates(certificates, source)
                .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
            let name = subject.name().map(str::to_owned);
            Ok((Box::new(stream) as Box<dyn Io>, name))
        })
    }
}

/// An [`Authorizer`] as the server's [`AccessPolicy`], with its decisions
/// remembered until the policy is replaced.
struct PolicyAccess {
    current: RwLock<Arc<Decisions>>,
}

struct Decisions {
    authorizer: Arc<dyn Authorizer>,
    known: Mutex<Known>,
}

impl PolicyAccess {
    fn new(authorizer: Arc<dyn Authorizer>) -> Self {
        Self {
            current: RwLock::new(Arc::new(Decisions::new(authorizer))),
        }
    }

    fn replace(&self, authorizer: Arc<dyn Authorizer>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::new(Decisions::new(authorizer));
    }
}

impl Decisions {
    fn new(authorizer: Arc<dyn Authorizer>) -> Self {
        Self {
            authorizer,
            known: Mutex::new(Known::default()),
        }
    }

    fn allows(&self, subject: Option<&str>, action: auth::Action) -> bool {
        if let Some(decision) = self.lock().get(subject, action) {
            return decision;
        }
        let as_subject = match subject {
            Some(name) => Subject::Authenticated(name.to_owned()),
            None => Subject::Anonymous,
        };
        match self.authorizer.authorize(&as_subject, action) {
            Ok(decision) => {
                self.lock().insert(subject, action, decision);
                decision
            }
            // Never a reason to allow, and not remembered: the next
            // request asks again.
            Err(e) => {
                tracing::error!(subject = %as_subject, %action, error = %e, "policy evaluation failed; denied");
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decisions by subject, one slot per action (`Action as usize`), looked
/// up without allocating: a request only borrows its subject.
#[derive(Default)]
struct Known {
    anonymous: [Option<bool>; 4],
    named: HashMap<String, [Option<bool>; 4]>,
}

impl Known {
    fn get(&self, subject: Option<&str>, action: auth::Action) -> Option<bool> {
        match subject {
            None => self.anonymous[action as usize],
            Some(name) => self.named.get(name)?[action as usize],
        }
    }

    fn insert(&mut self, subject: Option<&str>, action: auth::Action, decision: bool) {
        let slots = match subject {
            None => &mut self.anonymous,
            Some(name) => {
                if self.named.len() >= DECISIONS_MAX && !self.named.contains_key(name) {
                    self.named.clear();
                }
                self.named.entry(name.to_owned()).or_default()
            }
        };
        slots[action as usize] = Some(decision);
    }
}

impl AccessPolicy for PolicyAccess {
    fn allows(&self, caller: &Caller, action: log_server::Action) -> bool {
        let decisions = Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        decisions.allows(caller.subject.as_deref(), policy_action(action))
    }
}

/// The server's actions in the policy's vocabulary.
fn policy_action(action: log_server::Action) -> auth::Action {
    match action {
        log_server::Action::Produce => auth::Action::Produce,
        log_server::Action::Consume => auth::Action::Consume,
        log_server::Action::Admin => auth::Action::Admin,
        log_server::Action::Replicate => auth::Action::Replicate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting {
        calls: Mutex<u32>,
        allow: bool,
    }

    impl Authorizer for Counting {
        fn authorize(&self, _subject: &Subject, _action: auth::Action) -> auth::Result<bool> {
            *self.calls.lock().expect("lock") += 1;
            Ok(self.allow)
        }
    }

    fn caller(name: &str) -> Caller {
        Caller {
            subject: Some(name.to_owned()),
            peer: None,
        }
    }

    #[test]
    fn decisions_are_remembered_per_subject_and_action_until_the_policy_is_replaced() {
        let first = Arc::new(Counting {
            calls: Mutex::new(0),
            allow: true,
        });
        let access = PolicyAccess::new(Arc::clone(&first) as Arc<dyn Authorizer>);
        for _ in 0..3 {
            assert!(access.allows(&caller("root"), log_server::Action::Produce));
        }
        assert!(access.allows(&caller("root"), log_server::Action::Consume));
        assert!(access.allows(&Caller::default(), log_server::Action::Consume));
        assert_eq!(*first.calls.lock().expect("lock"), 3);

        let second = Arc::new(Counting {
            calls: Mutex::new(0),
            allow: false,
        });
        access.replace(Arc::clone(&second) as Arc<dyn Authorizer>);
        assert!(!access.allows(&caller("root"), log_server::Action::Produce));
        assert_eq!(*second.calls.lock().expect("lock"), 1);
    }

    #[test]
    fn every_server_action_maps_to_the_policy_action_of_the_same_name() {
        for action in [
            log_server::Action::Produce,
            log_server::Action::Consume,
            log_server::Action::Admin,
            log_server::Action::Replicate,
        ] {
            assert_eq!(policy_action(action).as_str(), action.as_str());
        }
    }

    #[test]
    fn with_tls_and_no_policy_file_the_shipped_default_applies() {
        let config = SecurityConfig {
            tls: Some(ServerTlsConfig {
                cert_file: "unused".into(),
                key_file: "unused".into(),
                client_ca_file: None,
            }),
            subject_source: SubjectSource::CommonName,
            policy_file: None,
        };
        let policy = config.load_policy().expect("default policy");
        let root = Subject::Authenticated("root".into());
        let node = Subject::Authenticated("node-1".into());
        assert!(policy.authorize(&root, auth::Action::Produce).expect("ask"));
        assert!(
            policy
                .authorize(&node, auth::Action::Replicate)
                .expect("ask")
        );
        assert!(!policy.authorize(&node, auth::Action::Consume).expect("ask"));
        assert!(
            !policy
                .authorize(&Subject::Anonymous, auth::Action::Consume)
                .expect("ask")
        );
    }
}
