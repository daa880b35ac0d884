//! `proglog cert`: a certificate authority and the certificates a TLS
//! cluster needs, with no external tool (the job the book gave to CFSSL).
//!
//! Files are PEM; keys are written with mode 0600; nothing is overwritten
//! without `--force`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use auth::{CertificateAuthority, Validity};
use clap::{Args, Subcommand};

/// `proglog cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// What to create.
    #[command(subcommand)]
    pub command: CertCommand,
}

/// The certificates `proglog cert` makes.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a certificate authority: `ca.pem` and `ca-key.pem` in --out-dir.
    Ca {
        /// The CA's common name.
        #[arg(long, default_value = "proglog CA")]
        cn: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = auth::cert::CA_VALIDITY_DAYS)]
        days: u32,
        /// Where the files go.
        #[command(flatten)]
        output: Output,
    },
    /// Issue a server/node certificate (server and client auth, so nodes can
    /// also use it as peers): `<name>.pem` and `<name>-key.pem`.
    Node {
        /// The node's name; its certificate's CN is `node-<name>`, which the
        /// default policy lets replicate.
        #[arg(long)]
        name: String,
        /// DNS names the node is reached by (repeat or comma-separate).
        #[arg(long = "dns", value_delimiter = ',')]
        dns_names: Vec<String>,
        /// IP addresses the node is reached by (repeat or comma-separate).
        #[arg(long = "ip", value_delimiter = ',')]
        ip_addresses: Vec<IpAddr>,
        /// The signing CA.
        #[command(flatten)]
        issuer: Issuer,
        /// Where the files go.
        #[command(flatten)]
        output: Output,
    },
    /// Issue a client certificate for a subject (its CN): `<cn>.pem` and
    /// `<cn>-key.pem`.
    Client {
        /// The subject policies see.
        #[arg(long)]
        cn: String,
        /// The signing CA.
        #[command(flatten)]
        issuer: Issuer,
        /// Where the files go.
        #[command(flatten)]
        output: Output,
    },
    /// Write a new random gossip key (base64, 32 bytes) to FILE, mode 0600,
    /// for `--gossip-key-file`. Give every node the same file.
    GossipKey {
        /// The key file to write.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// The CA that signs.
#[derive(Debug, Args)]
pub struct Issuer {
    /// Directory holding `ca.pem` and `ca-key.pem`.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = auth::cert::LEAF_VALIDITY_DAYS)]
    pub days: u32,
}

/// Where files go.
#[derive(Debug, Args)]
pub struct Output {
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

fn paths(output: &Output, stem: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(&output.out_dir)
        .with_context(|| format!("creating {}", output.out_dir.display()))?;
    Ok((
        output.out_dir.join(format!("{stem}.pem")),
        output.out_dir.join(format!("{stem}-key.pem")),
    ))
}

fn load_ca(issuer: &Issuer) -> anyhow::Result<CertificateAuthority> {
    let dir: &Path = &issuer.ca_dir;
    CertificateAuthority::load(&dir.join("ca.pem"), &dir.join("ca-key.pem"))
        .with_context(|| format!("loading the CA from {}", dir.display()))
}

/// Runs `proglog cert`, printing the files written.
///
/// # Errors
/// Files exist without `--force`, the CA cannot be loaded, or a name is
/// invalid.
pub fn run(args: CertArgs) -> anyhow::Result<()> {
    let (files, cert_path, key_path) = match args.command {
        CertCommand::GossipKey { file, force } => return write_gossip_key(&file, force),
        CertCommand::Ca { cn, days, output } => {
            let ca = CertificateAuthority::generate(&cn, Validity::days_from_now(days))?;
            let (cert, key) = paths(&output, "ca")?;
            ca.files().write(&cert, &key, output.force)?;
            (None, cert, key)
        }
        CertCommand::Node {
            name,
            dns_names,
            ip_addresses,
            issuer,
            output,
        } => {
            let ca = load_ca(&issuer)?;
            let files = ca.issue_node(
                &format!("{NODE_CN_PREFIX}{name}"),
                &dns_names,
                &ip_addresses,
                Validity::days_from_now(issuer.days),
            )?;
            let (cert, key) = paths(&output, &name)?;
            (Some((files, output.force)), cert, key)
        }
        CertCommand::Client { cn, issuer, output } => {
            check_client_cn(&cn)?;
            let ca = load_ca(&issuer)?;
            let files = ca.issue_client(&cn, Validity::days_from_now(issuer.days))?;
            let (cert, key) = paths(&output, &cn)?;
            (Some((files, output.force)), cert, key)
        }
    };
    if let Some((files, force)) = files {
        files.write(&cert_path, &key_path, force)?;
    }
    println!("{}", cert_path.display());
    println!("{}", key_path.display());
    Ok(())
}

/// Node certificates are named `node-<name>` and the default policy lets
/// `node-*` replicate; a client certificate with such a name would be a
/// node's identity issued by mistake.
fn check_client_cn(cn: &str) -> anyhow::Result<()> {
    if cn.starts_with(NODE_CN_PREFIX) {
        anyhow::bail!(
            "a client certificate must not be named {NODE_CN_PREFIX}* ({cn:?}): that name is a \
             node's, which the default policy lets replicate; issue node certificates with \
             `proglog cert node --name <name>`"
        );
    }
    Ok(())
}

/// The CN prefix of node certificates.
const NODE_CN_PREFIX: &str = "node-";

/// Writes a fresh gossip key file readable by its owner only.
fn write_gossip_key(path: &Path, force: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "creating {} (use --force to replace an existing key)",
            path.display()
        )
    })?;
    let line = discovery::Keyring::generate_key_line();
    file.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_are_never_named_like_nodes() {
        let error = check_client_cn("node-evil").expect_err("a node's name");
        assert!(error.to_string().contains("node-*"), "{error}");
        check_client_cn("reader").expect("a client name");
        check_client_cn("nodes-team").expect("only the node- prefix is a node's");
    }
}
