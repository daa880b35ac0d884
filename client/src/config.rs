//! The client's settings and the builder that takes them.

use std::time::Duration;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

use crate::Client;
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::routing::ReadPreference;
use crate::tls::TlsConfig;

/// Whether produce requests carry a producer id and sequence numbers, so
/// that a retried request is never appended twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Idempotence {
    /// Idempotent where the cluster supports it (replicated nodes); a node
    /// that answers it cannot (a single node without replication) gets
    /// plain requests from then on, retried only when they surely were not
    /// appended.
    #[default]
    Auto,
    /// Always idempotent; a node that cannot be fails the request with
    /// [`Error::IdempotenceUnsupported`].
    Required,
    /// Never: requests carry no producer id; a retry after a lost answer
    /// may append a record twice, so such retries happen only when the node
    /// said it appended nothing.
    Off,
}

/// Everything a [`Client`] is configured with; made by [`ClientBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) seeds: Vec<String>,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) read_preference: ReadPreference,
    pub(crate) retry: RetryPolicy,
    pub(crate) idempotence: Idempotence,
    pub(crate) in_flight_max: usize,
    pub(crate) headers: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    pub(crate) message_bytes_max: usize,
}

/// Builds a [`Client`]: seeds, TLS, timeouts, read preference, retries.
///
/// ```no_run
/// # async fn run() -> proglog_client::Result<()> {
/// use std::time::Duration;
/// use proglog_client::{Client, ReadPreference, RetryPolicy};
///
/// let client = Client::builder(["n1:8400", "n2:8400"])
///     .read_preference(ReadPreference::Nearest)
///     .request_timeout(Duration::from_secs(5))
///     .retry(RetryPolicy { attempts_max: 20, ..RetryPolicy::default() })
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    config: ClientConfig,
    error: Option<String>,
}

impl ClientBuilder {
    /// A builder for a client that first asks `seeds` (`HOST:PORT` each, any
    /// nodes of the cluster) who the cluster is.
    pub fn new<I, S>(seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            config: ClientConfig {
                seeds: seeds.into_iter().map(Into::into).collect(),
                tls: None,
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
                refresh_interval: Duration::from_secs(30),
                read_preference: ReadPreference::default(),
                retry: RetryPolicy::default(),
                idempotence: Idempotence::default(),
                in_flight_max: 1024,
                headers: Vec::new(),
                message_bytes_max: 64 << 20,
            },
            error: None,
        }
    }

    /// Speak TLS to every node (default: plaintext).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Longest a TCP + TLS + HTTP/2 connection may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Longest one unary request may wait for its answer before it counts
    /// as failed and is retried (default 10 s). Streams are not bounded by
    /// it; they fail over when their connection breaks.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How often the client asks the cluster who leads even when nothing
    /// failed (default 30 s).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.config.refresh_interval = interval;
        self
    }

    /// Where reads go (default [`ReadPreference::Followers`]).
    pub fn read_preference(mut self, preference: ReadPreference) -> Self {
        self.config.read_preference = preference;
        self
    }

    /// How failed requests are retried (default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Idempotent produce (default [`Idempotence::Auto`]).
    pub fn idempotence(mut self, idempotence: Idempotence) -> Self {
        self.config.idempotence = idempotence;
        self
    }

    /// Records a [`Producer`](crate::Producer) keeps unacknowledged at most
    /// (default 1024): bounds its memory and its resend after a failover.
    pub fn in_flight_max(mut self, records: usize) -> Self {
        self.config.in_flight_max = records;
        self
    }

    /// Largest gRPC message sent or accepted (default 64 MiB, above the
    /// server's own limit so that the server's is the one that applies).
    pub fn message_bytes_max(mut self, bytes: usize) -> Self {
        self.config.message_bytes_max = bytes;
        self
    }

    /// Sends `key: value` metadata with every request (e.g. a W3C
    /// `traceparent`).
    pub fn header(mut self, key: &str, value: &str) -> Self {
        match (
            key.parse::<AsciiMetadataKey>(),
            value.parse::<AsciiMetadataValue>(),
        ) {
            (Ok(key), Ok(value)) => self.config.headers.push((key, value)),
            _ => self.error = Some(format!("invalid request header {key:?}: {value:?}")),
        }
        self
    }

    /// Checks the settings, then learns the cluster from the first seed
    /// that answers `GetServers`.
    ///
    /// # Errors
    /// [`Error::Config`] for unusable settings (no seed, a malformed
    /// address, zero limits); otherwise the last seed's error once the
    /// retry policy gives up (e.g. [`Error::Connect`] when nothing
    /// listens, or a TLS refusal naming its cause).
    pub async fn connect(self) -> Result<Client> {
        let config = self.validated()?;
        Client::start(config).await
    }

    /// Checks the settings and makes the client without asking anything
    /// yet: requests go to the seeds until the first refresh (after a
    /// failure, or periodically) learns the cluster. For callers that need
    /// only [`Client::channel`], or whose identity may not call
    /// `GetServers` (it needs the `consume` action).
    ///
    /// # Errors
    /// [`Error::Config`] for unusable settings.
    pub fn connect_lazy(self) -> Result<Client> {
        let config = self.validated()?;
        Ok(Client::start_lazy(config))
    }

    pub(crate) fn validated(self) -> Result<ClientConfig> {
        let invalid = |message: String| Err(Error::Config { message });
        if let Some(message) = self.error {
            return invalid(message);
        }
        let config = self.config;
        if config.seeds.is_empty() {
            return invalid("no seed address given".to_owned());
        }
        for seed in &config.seeds {
            crate::cluster::endpoint_uri(seed, config.tls.is_some())?;
        }
        if config.in_flight_max == 0 {
            return invalid("in_flight_max must be at least 1".to_owned());
        }
        for (name, value) in [
            ("connect_timeout", config.connect_timeout),
            ("request_timeout", config.request_timeout),
            ("refresh_interval", config.refresh_interval),
        ] {
            if value.is_zero() {
                return invalid(format!("{name} must be above zero"));
            }
        }
        config
            .retry
            .validate()
            .map_err(|message| Error::Config { message })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_settings_are_refused_with_their_name() {
        let message = |builder: ClientBuilder| match builder.validated() {
            Err(Error::Config { message }) => message,
            other => panic!("{other:?}"),
        };
        assert!(message(ClientBuilder::new(Vec::<String>::new())).contains("no seed"));
        assert!(message(ClientBuilder::new(["n1:1"]).in_flight_max(0)).contains("in_flight_max"));
        assert!(
            message(ClientBuilder::new(["n1:1"]).request_timeout(Duration::ZERO))
                .contains("request_timeout")
        );
        assert!(message(ClientBuilder::new(["n1:1"]).header("bad key", "x")).contains("bad key"));
        assert!(message(ClientBuilder::new(["https://n1:1"])).contains("https"));
        assert!(
            ClientBuilder::new(["n1:1", "http://n2:2"])
                .validated()
                .is_ok()
        );
    }
}
