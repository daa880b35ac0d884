//! The oso (Polar) implementation of [`Authorizer`].
//!
//! This is the only module that names oso: the legacy oso library is in
//! maintenance mode, so swapping the engine must mean rewriting this file
//! alone.
//!
//! # The policy's vocabulary
//! proglog asks oso's conventional `allow(actor, action, resource)`:
//! - `actor` is a `Client` — a verified client certificate, whose `name`
//!   attribute is its subject (CN, or SAN URI/DNS name when so configured) —
//!   or an `Anonymous` — no TLS, or TLS without a client certificate.
//!   (A class named `Actor` would clash with a Polar built-in.)
//! - `action` is one of the strings `"produce"`, `"consume"`, `"admin"`,
//!   `"replicate"`.
//! - `resource` is a `Log`, the only resource today; it is there because oso
//!   requires three arguments for `allow`, and leaves room for finer-grained
//!   resources later.
//!
//! Whatever no rule allows is denied. The shipped policies are in
//! `auth/policies/`.

use std::path::{Path, PathBuf};

use oso::{Class, ClassBuilder, Oso, OsoError, PolarClass, Query, ToPolar};

use crate::authorizer::{Action, Authorizer};
use crate::error::{Error, Result};
use crate::subject::Subject;
use crate::tls::read_file;

/// The shipped default policy (`auth/policies/default.polar`): `root` may do
/// everything, `node-*` may replicate, nobody else anything.
pub const DEFAULT_POLICY: &str = include_str!("../policies/default.polar");

/// The shipped development policy (`auth/policies/dev.polar`): everyone,
/// anonymous included, may do everything.
pub const DEV_POLICY: &str = include_str!("../policies/dev.polar");

/// The Polar class of an authenticated caller.
#[derive(Clone)]
struct Client {
    name: String,
}

impl PolarClass for Client {
    fn get_polar_class_builder() -> ClassBuilder<Self> {
        Class::builder()
            .name("Client")
            .add_attribute_getter("name", |client: &Self| client.name.clone())
    }
}

/// The Polar class of a caller without a verified certificate. A class of
/// its own, not a `Client` with an empty name, so no rule about names can
/// match it by accident.
#[derive(Clone)]
struct Anonymous;

impl PolarClass for Anonymous {
    fn get_polar_class_builder() -> ClassBuilder<Self> {
        Class::builder().name("Anonymous")
    }
}

/// The Polar class of the resource every action is on: the log.
#[derive(Clone)]
struct Log;

impl PolarClass for Log {
    fn get_polar_class_builder() -> ClassBuilder<Self> {
        Class::builder().name("Log")
    }
}

/// An [`Authorizer`] deciding by a Polar policy file.
pub struct OsoAuthorizer {
    oso: Oso,
    path: PathBuf,
}

impl std::fmt::Debug for OsoAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsoAuthorizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl OsoAuthorizer {
    /// Loads the policy at `path` (any file name).
    ///
    /// After loading, every action is queried for both kinds of subject, so
    /// a policy that cannot answer (no `allow` rule, a class proglog does not
    /// register) fails here, at startup or reload, rather than on a request.
    ///
    /// # Errors
    /// [`Error::ReadFile`] if the file is missing or unreadable;
    /// [`Error::Policy`] naming the file, with the line for syntax and rule
    /// errors (the engine gives none for what only the probe finds).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // Read here rather than with `Oso::load_files`: its I/O errors do
        // not name the file, and it insists on a `.polar` extension.
        let source = String::from_utf8(read_file(&path)?).map_err(|e| Error::Policy {
            path: path.clone(),
            line: None,
            message: format!("not UTF-8: {e}"),
        })?;
        Self::from_source(path, &source)
    }

    /// Loads a policy from its text, e.g. one of the shipped policies
    /// ([`DEFAULT_POLICY`], [`DEV_POLICY`]); `origin` names it in errors and
    /// in [`path`](Self::path).
    ///
    /// # Errors
    /// As [`from_file`](Self::from_file), without the I/O errors.
    pub fn from_source(origin: impl Into<PathBuf>, source: &str) -> Result<Self> {
        let path = origin.into();
        let mut oso = Oso::new();
        let load_error = |e| policy_error(&path, e);
        oso.register_class(Client::get_polar_class())
            .map_err(load_error)?;
        oso.register_class(Anonymous::get_polar_class())
            .map_err(load_error)?;
        oso.register_class(Log::get_polar_class())
            .map_err(load_error)?;
        oso.load_str(source).map_err(load_error)?;
        let authorizer = Self { oso, path };
        authorizer.probe().map_err(|e| Error::Policy {
            path: authorizer.path.clone(),
            line: None,
            message: e.to_string(),
        })?;
        Ok(authorizer)
    }

    /// The policy file this authorizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn query(&self, subject: &Subject, action: Action) -> Result<Query> {
        let actor = match subject {
            Subject::Anonymous => Anonymous.to_polar(),
            Subject::Authenticated(name) => Client { name: name.clone() }.to_polar(),
        };
        self.oso
            .query_rule("allow", (actor, action.as_str(), Log))
            .map_err(evaluation_error)
    }

    /// Runs every action for both kinds of subject to the last result, so
    /// every rule's head is tried at least once: oso only warns about an
    /// unknown class at load time and fails when a query first meets it.
    fn probe(&self) -> Result<()> {
        for subject in [Subject::Anonymous, Subject::Authenticated(String::new())] {
            for action in Action::ALL {
                for result in self.query(&subject, action)? {
                    result.map_err(evaluation_error)?;
                }
            }
        }
        Ok(())
    }
}

impl Authorizer for OsoAuthorizer {
    fn authorize(&self, subject: &Subject, action: Action) -> Result<bool> {
        // One result is enough to allow; the rest need not be computed.
        match self.query(subject, action)?.next() {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(evaluation_error(e)),
        }
    }
}

fn evaluation_error(error: OsoError) -> Error {
    Error::PolicyEvaluation {
        message: error.to_string(),
    }
}

/// Maps an oso load error to [`Error::Policy`], with the 1-based line when
/// the engine points into the source.
fn policy_error(path: &Path, error: OsoError) -> Error {
    let (line, message) = match &error {
        OsoError::Polar(polar) => {
            let line = polar.get_context().map(|context| {
                // The engine's offsets count characters, not bytes.
                let before = context.source.src.chars().take(context.left);
                before.filter(|&c| c == '\n').count() + 1
            });
            // The kind alone: the full message repeats the source line.
            (line, polar.0.to_string())
        }
        other => (None, other.to_string()),
    };
    Error::Policy {
        path: path.to_path_buf(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    //! The shipped policies decided in full tables, and load errors naming
    //! file and line.

    use super::*;

    fn shipped(name: &str) -> OsoAuthorizer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("policies")
            .join(name);
        OsoAuthorizer::from_file(&path).expect("shipped policy loads")
    }

    fn named(name: &str) -> Subject {
        Subject::Authenticated(name.to_owned())
    }

    /// Asserts every (subject, action) of `table` and that it covers every action.
    fn assert_table(authorizer: &dyn Authorizer, table: &[(Subject, [bool; 4])]) {
        for (subject, expected) in table {
            for (action, expected) in Action::ALL.into_iter().zip(expected) {
                let allowed = authorizer.authorize(subject, action).expect("decision");
                assert_eq!(allowed, *expected, "{subject} {action}");
            }
        }
    }

    #[test]
    fn example_policy_allows_exactly_its_table() {
        // Columns: produce, consume, admin, replicate.
        assert_table(
            &shipped("example.polar"),
            &[
                (named("root"), [true, true, true, true]),
                (named("reader"), [false, true, false, false]),
                (named("nobody"), [false, false, false, false]),
                (named("Root"), [false, false, false, false]),
                (named("stranger"), [false, false, false, false]),
                (Subject::Anonymous, [false, false, false, false]),
            ],
        );
    }

    #[test]
    fn default_policy_allows_root_everything_and_nodes_replication_only() {
        assert_table(
            &shipped("default.polar"),
            &[
                (named("root"), [true, true, true, true]),
                (named("node-1"), [false, false, false, true]),
                (named("node-"), [false, false, false, true]),
                (named("node"), [false, false, false, false]),
                (named("a-node-1"), [false, false, false, false]),
                (named("reader"), [false, false, false, false]),
                (Subject::Anonymous, [false, false, false, false]),
            ],
        );
    }

    #[test]
    fn dev_policy_allows_everyone_everything() {
        assert_table(
            &shipped("dev.polar"),
            &[
                (Subject::Anonymous, [true; 4]),
                (named("anyone"), [true; 4]),
            ],
        );
    }

    fn load(source: &str) -> Result<OsoAuthorizer> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acl.policy");
        std::fs::write(&path, source).expect("write");
        OsoAuthorizer::from_file(&path)
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let error =
            load("# comment\nallow(_: Client, \"produce\", _: Log);\nallow(client: Client, ")
                .expect_err("syntax error");
        assert!(
            matches!(&error, Error::Policy { path, line: Some(3), .. } if path.ends_with("acl.policy")),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("acl.policy:3:"), "{message}");
    }

    #[test]
    fn an_unregistered_class_is_a_load_error() {
        // After a rule allowing everything, so the probe must go past the first result.
        let error = load("allow(_: Client, _action, _: Log);\nallow(_: User, _action, _: Log);\n")
            .expect_err("unknown class");
        assert!(
            matches!(&error, Error::Policy { message, .. } if message.contains("User")),
            "{error:?}"
        );
    }

    #[test]
    fn a_policy_without_allow_rules_fails_at_load() {
        let error = load("# nothing here\nis_root(client: Client) if client.name = \"root\";\n")
            .expect_err("no allow rule");
        assert!(matches!(error, Error::Policy { .. }), "{error:?}");
    }

    #[test]
    fn a_missing_policy_file_is_named() {
        let error = OsoAuthorizer::from_file("/nonexistent/acl.polar").expect_err("missing");
        assert!(matches!(error, Error::ReadFile { .. }), "{error:?}");
        assert!(
            error.to_string().contains("/nonexistent/acl.polar"),
            "{error}"
        );
    }
}
