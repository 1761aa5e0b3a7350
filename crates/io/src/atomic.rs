//! Atomic file writes: a reader sees the old file or the complete new one, never a mix.
//!
//! A write goes to a temporary file beside the target, named
//! `.<name>.tmp.<pid>.<n>` and opened with `create_new` (so it never follows a
//! symlink or reuses another writer's file), is synced, renamed over the target,
//! and the directory is synced so that the rename survives a power cut. A writer
//! that dies leaves its temporary file behind; the next writer of the same target
//! removes temporary files whose process is gone.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file being written; it replaces its target only on [`AtomicFile::commit`].
///
/// Dropping it without committing removes the temporary file and leaves the
/// target as it was.
///
/// ```
/// use std::io::Write;
/// use latent_terms_io::AtomicFile;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out.txt");
/// let mut file = AtomicFile::create(&path)?;
/// file.write_all(b"hello")?;
/// assert!(!path.exists(), "nothing is visible before commit");
/// file.commit()?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl AtomicFile {
    /// Starts writing `target`; removes temporary files left by dead writers of it.
    pub fn create(target: &Path) -> io::Result<Self> {
        let (dir, name) = split(target)?;
        remove_stale_temps(dir, &name);
        let pid = std::process::id();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!("{}{pid}.{n}", temp_prefix(&name)));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        target: target.to_path_buf(),
                        tmp,
                        writer: Some(BufWriter::with_capacity(1 << 20, file)),
                    });
                }
                // A name left by an earlier process with our pid: take the next one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The path the file will have once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The underlying file, for seeking back to patch a header (buffered bytes are flushed first).
    pub fn file_mut(&mut self) -> io::Result<&mut File> {
        let writer = self.writer_mut()?;
        writer.flush()?;
        Ok(writer.get_mut())
    }

    fn writer_mut(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| io::Error::other("the atomic file was already committed"))
    }

    /// Syncs the data, renames it over the target and syncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("the atomic file was already committed"))?;
        let result = (|| {
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&self.tmp, &self.target)?;
            sync_dir(&self.target);
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer_mut()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer_mut()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer_mut()?.flush()
    }
}

impl io::Seek for AtomicFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.writer_mut()?.seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `target` atomically through `fill`.
///
/// ```
/// use std::io::Write;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("run.txt");
/// latent_terms_io::write_file(&path, |w| w.write_all(b"q1 Q0 d1 1 1.0 r\n"))?;
/// // A failing writer leaves the old content in place.
/// let err = latent_terms_io::write_file(&path, |w| {
///     w.write_all(b"partial")?;
///     Err(std::io::Error::other("disk full"))
/// });
/// assert!(err.is_err());
/// assert_eq!(std::fs::read(&path)?, b"q1 Q0 d1 1 1.0 r\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_file(
    target: &Path,
    fill: impl FnOnce(&mut AtomicFile) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = AtomicFile::create(target)?;
    fill(&mut file)?;
    file.commit()
}

/// Writes `bytes` to `target` atomically.
pub fn write_bytes(target: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(target, |w| w.write_all(bytes))
}

fn split(target: &Path) -> io::Result<(&Path, String)> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::other("the path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp.")
}

/// Makes a rename durable; not every platform can open a directory, so failures are ignored.
fn sync_dir(target: &Path) {
    if let Ok((dir, _)) = split(target)
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Removes `.<name>.tmp.<pid>.<n>` files whose writer process no longer runs.
///
/// Best effort: a directory that cannot be listed, or a file that cannot be
/// removed, is left alone (it never blocks a write).
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !process_alive(pid, &entry.path()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether the writer `pid` may still be writing `tmp`.
fn process_alive(pid: u32, tmp: &Path) -> bool {
    if pid == std::process::id() {
        // Ours: another thread may be writing it right now.
        return true;
    }
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    // Without /proc, a temporary file untouched for a day is taken as abandoned.
    let day = std::time::Duration::from_secs(24 * 3600);
    fs::metadata(tmp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temps(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect()
    }

    #[test]
    fn dropped_writer_leaves_old_content_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        write_bytes(&path, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&path).unwrap();
            f.write_all(b"new, never committed").unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(temps(dir.path()).is_empty());
    }

    #[test]
    fn stale_temps_of_dead_writers_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.idx");
        // pid 0 never names a user process; u32::MAX - 1 is beyond any pid_max.
        let dead = dir
            .path()
            .join(format!(".index.idx.tmp.{}.0", u32::MAX - 1));
        let ours = dir
            .path()
            .join(format!(".index.idx.tmp.{}.999999", std::process::id()));
        let other_target = dir.path().join(format!(".other.tmp.{}.0", u32::MAX - 1));
        for p in [&dead, &ours, &other_target] {
            fs::write(p, b"x").unwrap();
        }
        write_bytes(&path, b"fresh").unwrap();
        let mut left = temps(dir.path());
        left.sort();
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists(), "a dead writer's temp file is removed");
        }
        assert!(ours.exists(), "a live writer's temp file is kept");
        assert!(
            other_target.exists(),
            "another target's temp files are not touched"
        );
        assert_eq!(fs::read(&path).unwrap(), b"fresh");
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_at_a_temp_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        let path = dir.path().join("out");
        // Plant symlinks at the next names this process would use.
        let next = COUNTER.load(Ordering::Relaxed);
        for n in next..next + 64 {
            let link = dir
                .path()
                .join(format!(".out.tmp.{}.{n}", std::process::id()));
            std::os::unix::fs::symlink(&victim, link).unwrap();
        }
        write_bytes(&path, b"data").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn seek_and_patch_a_header() {
        use std::io::{Seek, SeekFrom};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"0000body").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"HEAD").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"HEADbody");
    }
}
