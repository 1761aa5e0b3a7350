//! Helpers shared by the CLI's end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// LIMIT-small as shipped in examples/data.
pub(crate) fn dataset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/limit-small")
}

/// Runs `latent-terms ARGS`, asserts success and returns its stdout.
pub(crate) fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_latent-terms"))
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "latent-terms {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A path as a command-line argument.
pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
