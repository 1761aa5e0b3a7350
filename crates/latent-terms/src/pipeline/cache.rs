//! The pipeline's cache: keys that name a stage's inputs, and entries that seal the
//! artefacts a stage leaves, so a second run with the same inputs reuses them and a run
//! with changed inputs, or over a damaged cache, never does.
//!
//! - A [`CacheKey`] is an XXH3-128 hash of the cache version (crate version and
//!   [`CACHE_FORMAT`]), the stage's name and settings, and the **full content** of every
//!   input file, directories included recursively.
//! - A [`CacheEntry`] is a stage's output files, each with a sidecar
//!   `<file>.entry.json` holding the stage key, the cache version, the file's length and
//!   its content hash. On lookup every file is hashed again; a missing, stale or damaged
//!   entry is removed and recomputed, with a warning, and never used.

use std::fs;
use std::path::{Path, PathBuf};

use latent_terms_io::ContentHasher;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bumped when an artefact's layout or a stage's meaning changes, with the crate version.
pub const CACHE_FORMAT: &str = "cache-2";

fn cache_version() -> String {
    format!("{}/{CACHE_FORMAT}", env!("CARGO_PKG_VERSION"))
}

thread_local! {
    /// Time this thread spent hashing files for keys and seals (the cost of a cache
    /// that cannot be stale), reported as the `cache_hashing` stage.
    static HASHING: std::cell::Cell<std::time::Duration> =
        const { std::cell::Cell::new(std::time::Duration::ZERO) };
}

/// Returns the hashing time accumulated on this thread and resets it.
pub(crate) fn take_hashing_time() -> std::time::Duration {
    HASHING.with(|h| h.replace(std::time::Duration::ZERO))
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = f();
    HASHING.with(|h| h.set(h.get() + start.elapsed()));
    out
}

/// Directories nested deeper than this are not followed (a symlink loop ends here).
const MAX_DEPTH: usize = 16;

/// A hash of a sequence of tagged fields: strings, numbers, files and directories.
///
/// ```
/// use latent_terms::pipeline::CacheKey;
///
/// let a = CacheKey::new("sae").str("topk").num(4096).finish();
/// let b = CacheKey::new("sae").str("topk").num(4096).finish();
/// let c = CacheKey::new("sae").str("topk").num(2048).finish();
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// assert_eq!(a.len(), 32);
/// ```
#[derive(Clone, Debug)]
pub struct CacheKey {
    hasher: ContentHasher,
}

impl CacheKey {
    /// A key for the stage `stage` under this version of the cache.
    pub fn new(stage: &str) -> Self {
        CacheKey {
            hasher: ContentHasher::new(),
        }
        .str(&cache_version())
        .str(stage)
    }

    fn bytes(mut self, bytes: &[u8]) -> Self {
        self.hasher.update(bytes);
        self
    }

    /// Adds a string field (length-prefixed, so fields cannot run into each other).
    pub fn str(self, s: &str) -> Self {
        self.num(s.len() as u64).bytes(s.as_bytes())
    }

    /// Adds a number field.
    pub fn num(self, n: u64) -> Self {
        self.bytes(&n.to_le_bytes())
    }

    /// Adds another key (a stage this one depends on).
    pub fn key(self, key: &str) -> Self {
        self.str(key)
    }

    /// Adds a file: its name, length and every byte of its content.
    pub fn file(self, path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.str(&name).content(path)
    }

    fn content(mut self, path: &Path) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let file = fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        self = self.num(len);
        let read = timed(|| self.hasher.update_reader(file)).map_err(io)?;
        // A file that grows or shrinks while it is hashed would give a key for no content.
        if read != len {
            return Err(Error::io(
                path,
                std::io::Error::other("the file changed while it was read"),
            ));
        }
        Ok(self)
    }

    /// Adds every regular file under a directory, recursively, by relative path in order.
    pub fn dir(self, dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        walk(dir, Path::new(""), 0, &mut files)?;
        files.sort();
        let mut key = self.num(files.len() as u64);
        for rel in &files {
            key = key.str(&rel.to_string_lossy()).content(&dir.join(rel))?;
        }
        Ok(key)
    }

    /// The key as 32 hex digits.
    pub fn finish(&self) -> String {
        format!("{:032x}", self.hasher.finish())
    }
}

fn walk(root: &Path, rel: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    if depth > MAX_DEPTH {
        return Err(Error::io(
            &dir,
            std::io::Error::other(format!(
                "directories nest deeper than {MAX_DEPTH} levels (a symlink loop?)"
            )),
        ));
    }
    for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let path = entry.path();
        // Follows symlinks: a model directory of links is hashed by what it points to.
        let meta = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        let rel = rel.join(entry.file_name());
        if meta.is_dir() {
            walk(root, &rel, depth + 1, out)?;
        } else if meta.is_file() {
            out.push(rel);
        }
    }
    Ok(())
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup {
    /// Every file is there and matches its seal.
    Hit,
    /// Nothing is there.
    Miss,
    /// Something was there but cannot be trusted (the reason); it was removed.
    Stale(String),
}

/// The sidecar that seals one cached file.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Seal {
    key: String,
    version: String,
    len: u64,
    xxh3: String,
}

/// A stage's output files in the cache, sealed against its key.
#[derive(Clone, Debug)]
pub(crate) struct CacheEntry {
    key: String,
    files: Vec<PathBuf>,
}

impl CacheEntry {
    /// The entry of `files`, made by the stage whose key is `key`.
    pub(crate) fn new(key: &str, files: impl IntoIterator<Item = PathBuf>) -> Self {
        CacheEntry {
            key: key.to_owned(),
            files: files.into_iter().collect(),
        }
    }

    /// Checks every file against its seal. A partial, stale or damaged entry is removed.
    pub(crate) fn lookup(&self) -> Lookup {
        let present = self
            .files
            .iter()
            .filter(|f| f.exists() || sidecar(f).exists())
            .count();
        if present == 0 {
            return Lookup::Miss;
        }
        match self.verify() {
            Ok(()) => Lookup::Hit,
            Err(reason) => {
                self.remove();
                Lookup::Stale(reason)
            }
        }
    }

    fn verify(&self) -> std::result::Result<(), String> {
        self.files
            .iter()
            .try_for_each(|f| verify_seal(f, &self.key))
    }

    /// Seals every file (after the stage wrote them all).
    pub(crate) fn seal(&self) -> Result<()> {
        self.files.iter().try_for_each(|f| seal_file(f, &self.key))
    }

    /// Removes the files and their seals (best effort: a leftover is caught by its seal).
    pub(crate) fn remove(&self) {
        for file in &self.files {
            let _ = fs::remove_file(sidecar(file));
            let _ = fs::remove_file(file);
        }
    }
}

/// Writes the seal of `file` (its key, the cache version, length and content hash).
pub(crate) fn seal_file(file: &Path, key: &str) -> Result<()> {
    let seal = seal_of(file, key).map_err(|e| Error::io(file, e))?;
    let json = serde_json::to_vec_pretty(&seal).unwrap_or_default();
    latent_terms_io::write_bytes(&sidecar(file), &json).map_err(|e| Error::io(sidecar(file), e))
}

/// Checks `file` against its seal for `key`; the reason it cannot be trusted otherwise.
pub(crate) fn verify_seal(file: &Path, key: &str) -> std::result::Result<(), String> {
    let shown = file.display();
    let text = fs::read_to_string(sidecar(file))
        .map_err(|_| format!("{shown}: no readable seal (an interrupted write?)"))?;
    let seal: Seal =
        serde_json::from_str(&text).map_err(|e| format!("{shown}: its seal is damaged ({e})"))?;
    let version = cache_version();
    if seal.version != version {
        return Err(format!(
            "{shown}: written by cache version {}, this is {version}",
            seal.version
        ));
    }
    if seal.key != key {
        return Err(format!("{shown}: sealed for other inputs"));
    }
    let now = seal_of(file, key).map_err(|e| format!("{shown}: {e}"))?;
    if now != seal {
        return Err(format!(
            "{shown}: its content changed after it was written (edited or corrupt)"
        ));
    }
    Ok(())
}

/// The key report files are sealed with.
const REPORT_KEY: &str = "report";

/// Writes a report file atomically and seals it, so commands that read it back can tell
/// it is the file `run` wrote.
pub(crate) fn write_report_file(path: &Path, bytes: &[u8]) -> Result<()> {
    latent_terms_io::write_bytes(path, bytes).map_err(|e| Error::io(path, e))?;
    seal_file(path, REPORT_KEY)
}

/// Checks a report file against its seal; a file without one is refused.
pub(crate) fn check_report_file(path: &Path) -> Result<()> {
    verify_seal(path, REPORT_KEY).map_err(|reason| {
        Error::Invalid(format!(
            "{reason}; run `latent-terms run` again to write a fresh report"
        ))
    })
}

/// Checks `path` against its seal when it has one (a report's `*-queries.jsonl`); files
/// without a seal (written by hand or by other tools) pass.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("queries.jsonl");
/// std::fs::write(&path, "{\"id\": \"q1\", \"vector\": {\"l3\": 1.0}}\n")?;
/// latent_terms::pipeline::check_seal_if_present(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_seal_if_present(path: &Path) -> Result<()> {
    if sidecar(path).exists() {
        check_report_file(path)?;
    }
    Ok(())
}

fn sidecar(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".entry.json");
    PathBuf::from(name)
}

fn seal_of(file: &Path, key: &str) -> std::io::Result<Seal> {
    let mut hasher = ContentHasher::new();
    let len = timed(|| hasher.update_reader(fs::File::open(file)?))?;
    Ok(Seal {
        key: key.to_owned(),
        version: cache_version(),
        len,
        xxh3: format!("{:032x}", hasher.finish()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "one").unwrap();
        let k1 = CacheKey::new("x").file(&p).unwrap().finish();
        let k1b = CacheKey::new("x").dir(dir.path()).unwrap().finish();
        std::fs::write(&p, "two").unwrap();
        let k2 = CacheKey::new("x").file(&p).unwrap().finish();
        let k2b = CacheKey::new("x").dir(dir.path()).unwrap().finish();
        assert_ne!(k1, k2);
        assert_ne!(k1b, k2b);
        assert!(
            CacheKey::new("x")
                .file(&dir.path().join("missing"))
                .is_err()
        );
    }

    #[test]
    fn fields_do_not_run_together() {
        let a = CacheKey::new("s").str("ab").str("c").finish();
        let b = CacheKey::new("s").str("a").str("bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn directories_are_hashed_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("onnx")).unwrap();
        let model = dir.path().join("onnx").join("model.onnx");
        std::fs::write(&model, "weights").unwrap();
        let k1 = CacheKey::new("x").dir(dir.path()).unwrap().finish();
        std::fs::write(&model, "weightz").unwrap();
        assert_ne!(k1, CacheKey::new("x").dir(dir.path()).unwrap().finish());
    }

    #[test]
    fn a_large_file_edited_in_the_middle_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store.safetensors");
        let mut bytes = vec![7u8; 9 << 20];
        std::fs::write(&p, &bytes).unwrap();
        let k1 = CacheKey::new("x").file(&p).unwrap().finish();
        bytes[(9 << 20) / 2] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_ne!(k1, CacheKey::new("x").file(&p).unwrap().finish());
    }

    #[test]
    fn entries_hit_only_when_sealed_for_the_key_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("bm25.run");
        let entry = CacheEntry::new("k1", [a.clone()]);
        assert_eq!(entry.lookup(), Lookup::Miss);
        std::fs::write(&a, "q1 Q0 d1 1 2.0 r\n").unwrap();
        // Written but never sealed: an interrupted stage.
        assert!(matches!(entry.lookup(), Lookup::Stale(_)));
        assert!(!a.exists(), "a stale entry is removed");
        std::fs::write(&a, "q1 Q0 d1 1 2.0 r\n").unwrap();
        entry.seal().unwrap();
        assert_eq!(entry.lookup(), Lookup::Hit);
        assert!(matches!(
            CacheEntry::new("k2", [a.clone()]).lookup(),
            Lookup::Stale(r) if r.contains("other inputs")
        ));
        std::fs::write(&a, "q1 Q0 d1 1 2.0 r\n").unwrap();
        entry.seal().unwrap();
        // Same length, one byte edited by hand.
        std::fs::write(&a, "q1 Q0 d2 1 2.0 r\n").unwrap();
        assert!(matches!(entry.lookup(), Lookup::Stale(r) if r.contains("changed")));
    }
}
