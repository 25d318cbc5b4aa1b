//! The compile cache on disk: precompiled components kept between processes, authenticated
//! before they are loaded.
//!
//! An artifact is native code the host will run, so a file in the cache directory is trusted
//! only if it carries an HMAC-SHA256 tag over the component's digest, the engine's
//! compatibility hash and the artifact, made with the cache's key (`EngineConfig::cache_key`,
//! or a key of this user's kept in `<cache>.key`, mode 0600). A swapped, changed or truncated
//! file is refused and the component compiled again; artifacts are read into memory, not
//! mapped, so a file changed under a running process cannot crash it. Files are written
//! atomically (a temporary file renamed into place), and processes started at once on a fresh
//! cache agree on one key (a temporary file hard-linked into place; the loser reads the
//! winner's).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::component::Component;

/// The header of a cache file: magic, then the artifact's tag, then the artifact.
const ARTIFACT_MAGIC: &[u8; 8] = b"HBCACHE1";

/// Why a cache file was not used.
pub(crate) enum ArtifactError {
    /// It does not authenticate: never run it.
    Rejected,
    /// It could not be read.
    Io,
}

/// The tag that authenticates an artifact: HMAC-SHA256 with the cache's key over the
/// component's digest, the engine's compatibility hash and the artifact. An artifact of another
/// component (same engine, other code), a changed or truncated one, or one written with
/// another key does not match.
fn artifact_tag(key: &[u8; 32], digest: &[u8; 32], compat: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key size");
    mac.update(b"heatbill compile cache, artifact v1\0");
    mac.update(digest);
    mac.update(compat.as_bytes());
    mac
}

pub(crate) fn seal_artifact(
    key: &[u8; 32],
    digest: &[u8; 32],
    compat: &str,
    artifact: &[u8],
) -> Vec<u8> {
    let mut mac = artifact_tag(key, digest, compat);
    mac.update(artifact);
    let tag = mac.finalize().into_bytes();
    let mut out = Vec::with_capacity(ARTIFACT_MAGIC.len() + tag.len() + artifact.len());
    out.extend_from_slice(ARTIFACT_MAGIC);
    out.extend_from_slice(&tag);
    out.extend_from_slice(artifact);
    out
}

/// Reads a cache file whole into memory (a file changed or truncated later cannot affect a
/// running process, as a mapping could) and returns its artifact if it authenticates.
pub(crate) fn read_artifact(
    path: &Path,
    key: &[u8; 32],
    digest: &[u8; 32],
    compat: &str,
) -> Result<Vec<u8>, ArtifactError> {
    let mut bytes = fs::read(path).map_err(|_| ArtifactError::Io)?;
    let head = ARTIFACT_MAGIC.len() + 32;
    if bytes.len() < head || &bytes[..ARTIFACT_MAGIC.len()] != ARTIFACT_MAGIC {
        return Err(ArtifactError::Rejected);
    }
    let mut mac = artifact_tag(key, digest, compat);
    mac.update(&bytes[head..]);
    mac.verify_slice(&bytes[ARTIFACT_MAGIC.len()..head])
        .map_err(|_| ArtifactError::Rejected)?;
    Ok(bytes.split_off(head))
}

/// Turns an authenticated artifact back into a component.
#[allow(unsafe_code)]
pub(crate) fn deserialize_artifact(
    engine: &wasmtime::Engine,
    artifact: &[u8],
) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize` runs the artifact's native code, so the bytes must be an artifact
    // produced by `Component::serialize` of a compatible wasmtime. They are: `read_artifact`
    // accepts only bytes whose HMAC, keyed with this cache's secret key, binds them to this
    // component's digest and this engine's compatibility hash, and only this engine's
    // `component` writes such tags, right after compiling. The bytes are in memory (copied from
    // the file), so nothing can change them under the code. Wasmtime further checks the header,
    // version and settings and refuses a mismatch with an error.
    unsafe { Component::deserialize(engine, artifact) }
}

/// Turns the artifact the compiler child sent back into a component.
#[allow(unsafe_code)]
pub(crate) fn deserialize_child_artifact(
    engine: &wasmtime::Engine,
    artifact: &[u8],
) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize` runs the artifact's native code, so the bytes must be an artifact
    // produced by wasmtime's own compiler. They are: they come from the pipe of a child this
    // engine started a moment ago, running the configured compiler program (the host's own
    // executable), which writes only `precompile_component`'s output there; the component was
    // never run in it. The bytes are in this process's memory. Wasmtime further checks the
    // header, version and settings and refuses a mismatch with an error.
    unsafe { Component::deserialize(engine, artifact) }
}

/// Checks the cache directory and returns the key that authenticates its artifacts: the
/// configured one, or this user's own from `<dir>.key` (created if missing).
pub(crate) fn open_cache(dir: &Path, configured: Option<&str>) -> Result<[u8; 32], String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the cache directory {}: {e}", dir.display()))?;
    let meta = fs::metadata(dir)
        .map_err(|e| format!("cannot read the cache directory {}: {e}", dir.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "the cache directory {} can be written by other users (mode {mode:o}); a cached \
             artifact is native code this process runs: make it writable by this user alone \
             (chmod 700 {})",
            dir.display(),
            dir.display()
        ));
    }
    if let Some(uid) = effective_uid()
        && meta.uid() != uid
    {
        return Err(format!(
            "the cache directory {} belongs to user {}, not to this process's user {uid}: use \
             a directory of this user's own",
            dir.display(),
            meta.uid()
        ));
    }
    if let Some(hex_key) = configured {
        let bytes = hex::decode(hex_key.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or(
                "cache_key must be 64 hex digits (32 random bytes, e.g. openssl rand -hex 32)",
            )?;
        return Ok(bytes.try_into().expect("32 bytes"));
    }
    let file = {
        let mut name = dir.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    };
    let key_error = |e: std::io::Error| format!("the cache key file {}: {e}", file.display());
    // Several processes (a run's workers, a server and its worker) may start on one fresh cache
    // at once. The key is written whole to a private temporary file and hard-linked into place,
    // which fails if another process got there first: then its key is read and shared, and no
    // process ever reads a half-written key.
    loop {
        match fs::metadata(&file) {
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(format!(
                        "the cache key file {} can be read or written by other users (mode \
                         {mode:o}): chmod 600 it, or delete it (a new key is made and the cache \
                         is compiled again)",
                        file.display()
                    ));
                }
                let bytes = fs::read(&file).map_err(key_error)?;
                return bytes.try_into().map_err(|_| {
                    format!(
                        "the cache key file {} is not 32 bytes: delete it (a new key is made)",
                        file.display()
                    )
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                fs::File::open("/dev/urandom")
                    .and_then(|mut r| std::io::Read::read_exact(&mut r, &mut key))
                    .map_err(key_error)?;
                static ATTEMPT: AtomicU64 = AtomicU64::new(0);
                let mut tmp = file.as_os_str().to_owned();
                tmp.push(format!(
                    ".tmp-{}-{}",
                    std::process::id(),
                    ATTEMPT.fetch_add(1, Ordering::Relaxed)
                ));
                let tmp = PathBuf::from(tmp);
                let _ = fs::remove_file(&tmp);
                let written = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()))
                    .and_then(|()| fs::hard_link(&tmp, &file));
                let _ = fs::remove_file(&tmp);
                match written {
                    Ok(()) => return Ok(key),
                    // Another process made the key first: read theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(key_error(e)),
                }
            }
            Err(e) => return Err(key_error(e)),
        }
    }
}

/// This process's effective user id (from `/proc`; `None` where it cannot be read).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("artifact");
    let tmp: PathBuf = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The compiled components an engine keeps in memory, by digest: at most `max_entries` of
/// them and `max_bytes` of compiled code (each component's image, about the size of its
/// precompiled artifact), the least recently used evicted first. A component larger than
/// `max_bytes` alone is not kept at all.
///
/// Only components that loaded are kept (the engine inserts after every check passed), so an
/// upload that is refused after compiling leaves nothing here. Evicting a component does not
/// unload a plugin that uses it (a [`LoadedPlugin`](crate::LoadedPlugin) holds its own
/// reference); it means the next load of those bytes comes from the disk cache or compiles.
pub(crate) struct MemoryCache {
    entries: std::collections::HashMap<[u8; 32], Cached>,
    bytes: u64,
    /// A counter that orders uses: each get or insert takes the next value.
    clock: u64,
    pub(crate) evictions: u64,
}

struct Cached {
    component: Component,
    bytes: u64,
    used: u64,
}

impl MemoryCache {
    pub(crate) fn new() -> MemoryCache {
        MemoryCache {
            entries: std::collections::HashMap::new(),
            bytes: 0,
            clock: 0,
            evictions: 0,
        }
    }

    /// The component for `digest`, if kept, marked as used now.
    pub(crate) fn get(&mut self, digest: &[u8; 32]) -> Option<Component> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(digest).map(|c| {
            c.used = clock;
            c.component.clone()
        })
    }

    /// Keeps `component` under `digest`, then evicts the least recently used entries until
    /// at most `max_entries` and `max_bytes` are kept.
    pub(crate) fn insert(
        &mut self,
        digest: [u8; 32],
        component: Component,
        max_entries: usize,
        max_bytes: u64,
    ) {
        let bytes = image_bytes(&component);
        if bytes > max_bytes || max_entries == 0 {
            return;
        }
        self.clock += 1;
        let cached = Cached {
            component,
            bytes,
            used: self.clock,
        };
        if let Some(old) = self.entries.insert(digest, cached) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        while self.entries.len() > max_entries || self.bytes > max_bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(d, _)| *d)
            else {
                break;
            };
            if let Some(gone) = self.entries.remove(&oldest) {
                self.bytes -= gone.bytes;
                self.evictions += 1;
            }
        }
    }

    /// How many components are kept, and their bytes.
    pub(crate) fn usage(&self) -> (usize, u64) {
        (self.entries.len(), self.bytes)
    }
}

/// The size of a component's compiled image in memory, in bytes.
fn image_bytes(component: &Component) -> u64 {
    let range = component.image_range();
    (range.end as usize).saturating_sub(range.start as usize) as u64
}

/// Whether `name` is the name of an artifact file of the cache (a temporary file being written
/// starts with a dot, the key file lives beside the directory).
fn is_artifact(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.ends_with(".cwasm") && !n.starts_with('.'))
}

/// Marks an artifact as used now (its modification time), so that eviction, which removes the
/// least recently used first, keeps it. Best effort: a file gone or read-only is left alone.
pub(crate) fn touch(path: &Path) {
    if let Ok(f) = fs::OpenOptions::new().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// The artifacts in the cache directory and their total size in bytes.
pub(crate) fn disk_usage(dir: &Path) -> (usize, u64) {
    let files = artifacts(dir);
    (files.len(), files.iter().map(|f| f.1).sum())
}

/// Every artifact of the directory: path, size, last use.
fn artifacts(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| is_artifact(&e.file_name()))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| {
                (
                    e.path(),
                    m.len(),
                    m.modified().unwrap_or(std::time::UNIX_EPOCH),
                )
            })
        })
        .collect()
}

/// Removes the least recently used artifacts of the directory (by modification time, which a
/// disk hit renews) until at most `max_entries` files and `max_bytes` bytes are left, sparing
/// `keep` (the artifact just written). Returns how many were removed. Several processes may
/// share the directory: a file another one removed first is simply gone, and a process whose
/// artifact was evicted compiles it again.
pub(crate) fn evict_disk(dir: &Path, keep: &Path, max_entries: usize, max_bytes: u64) -> u64 {
    let mut files = artifacts(dir);
    let mut count = files.len();
    let mut bytes: u64 = files.iter().map(|f| f.1).sum();
    if count <= max_entries && bytes <= max_bytes {
        return 0;
    }
    files.sort_by_key(|f| f.2);
    let mut removed = 0;
    for (path, size, _) in files {
        if count <= max_entries && bytes <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        if fs::remove_file(&path).is_ok() {
            removed += 1;
        }
        count -= 1;
        bytes = bytes.saturating_sub(size);
    }
    removed
}
