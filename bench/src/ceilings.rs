//! The machine's own limits, measured in the same run as the systems: what
//! the page cache, fdatasync and loopback TCP can do at best with 1 MiB
//! writes, so each system's figure can be read as a share of the hardware.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Bytes per write in every ceiling.
const CHUNK_BYTES: usize = 1 << 20;

/// Bytes of one page-cache pass: a new file this large, then removed.
/// Small enough that passes reuse memory the previous pass freed (in a VM
/// the first touch of never-used guest memory is several times slower than
/// the page cache itself), large enough to be well above any CPU cache.
const PAGE_CACHE_PASS_BYTES: u64 = 256 << 20;

/// Bytes the fdatasync ceiling writes at most (a fast disk ends early).
const FDATASYNC_BYTES_MAX: u64 = 2 << 30;

/// Bytes per write of the small-sync figure: one page, as a single small
/// durable append costs.
const SMALL_SYNC_BYTES: usize = 4096;

/// The measured limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceilings {
    /// Sequential 1 MiB writes into the page cache, no sync, MB/s.
    pub page_cache_write_mb_per_s: f64,
    /// 1 MiB write then fdatasync, repeated, MB/s.
    pub fdatasync_write_mb_per_s: f64,
    /// 4 KiB write then fdatasync, repeated: durable small appends per second.
    pub small_fdatasyncs_per_s: f64,
    /// One TCP stream over 127.0.0.1 with 1 MiB writes, MB/s.
    pub loopback_tcp_mb_per_s: f64,
}

impl Ceilings {
    /// Measures each limit for about `seconds`, with files in `work_dir`.
    ///
    /// # Errors
    /// The files or the socket cannot be used.
    pub async fn measure(work_dir: &Path, seconds: f64) -> anyhow::Result<Self> {
        let budget = Duration::from_secs_f64(seconds);
        let dir = tempfile::Builder::new()
            .prefix("compare-ceilings-")
            .tempdir_in(work_dir)?;
        let path = dir.path().to_owned();
        let (page_cache, fdatasync, small) = tokio::task::spawn_blocking(move || {
            let file = path.join("ceiling");
            anyhow::Ok((
                page_cache_mb_per_s(&file, budget)?,
                file_write_mb_per_s(&file, budget, FDATASYNC_BYTES_MAX, true)?,
                small_fdatasyncs_per_s(&file, budget)?,
            ))
        })
        .await??;
        Ok(Self {
            page_cache_write_mb_per_s: page_cache,
            fdatasync_write_mb_per_s: fdatasync,
            small_fdatasyncs_per_s: small,
            loopback_tcp_mb_per_s: loopback_tcp_mb_per_s(budget).await?,
        })
    }
}

/// The best of repeated passes, for `budget`, each writing a new
/// 256 MiB file in 1 MiB writes with no sync: the page cache's own speed.
fn page_cache_mb_per_s(path: &Path, budget: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut best: f64 = 0.0;
    let mut passes = 0;
    while passes == 0 || started.elapsed() < budget {
        let pass = file_write_mb_per_s(path, Duration::MAX, PAGE_CACHE_PASS_BYTES, false)?;
        best = best.max(pass);
        passes += 1;
    }
    Ok(best)
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// 1 MiB writes to a new file until `budget` or `bytes_max`, each followed
/// by fdatasync when `sync`; the file is removed afterwards.
fn file_write_mb_per_s(
    path: &Path,
    budget: Duration,
    bytes_max: u64,
    sync: bool,
) -> anyhow::Result<f64> {
    let chunk = vec![0x5a_u8; CHUNK_BYTES];
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let started = Instant::now();
    let mut written = 0u64;
    while written < bytes_max && started.elapsed() < budget {
        file.write_all(&chunk)?;
        if sync {
            file.sync_data()?;
        }
        written += CHUNK_BYTES as u64;
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(mb_per_s(written, elapsed))
}

/// 4 KiB appends, each followed by fdatasync, for `budget`.
fn small_fdatasyncs_per_s(path: &Path, budget: Duration) -> anyhow::Result<f64> {
    let chunk = vec![0x5a_u8; SMALL_SYNC_BYTES];
    let mut file = std::fs::File::create(path)?;
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < budget {
        file.write_all(&chunk)?;
        file.sync_data()?;
        syncs += 1;
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(syncs as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE))
}

/// One tokio TCP stream over 127.0.0.1: a writer task sends 1 MiB writes
/// for `budget`, the reader counts what arrives.
async fn loopback_tcp_mb_per_s(budget: Duration) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let writer = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let chunk = vec![0x5a_u8; CHUNK_BYTES];
        let started = Instant::now();
        while started.elapsed() < budget {
            stream.write_all(&chunk).await?;
        }
        stream.shutdown().await?;
        anyhow::Ok(())
    });
    let (mut stream, _) = listener.accept().await?;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut received = 0u64;
    let started = Instant::now();
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        received += read as u64;
    }
    let elapsed = started.elapsed();
    writer.await??;
    Ok(mb_per_s(received, elapsed))
}
