//! One rule for tests that need installed assets (a model, ONNX Runtime, Anserini,
//! Chromium): on a developer's machine a missing asset skips the test with a message; where
//! the environment variable `CI` is set (`.ci/run` sets it), it fails the test, so a CI
//! machine that lost an install step cannot stay green.

/// Reports a missing asset: panics with `message` when `CI` is set, prints it otherwise
/// (the caller then returns early).
///
/// ```
/// // Outside CI this only prints; the test then skips.
/// if std::env::var_os("CI").is_none() {
///     latent_terms_io::missing_asset("skipping demo: no model in assets/ (run scripts/setup-assets)");
/// }
/// ```
pub fn missing_asset(message: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "{message}\n(CI is set: a missing asset fails the test; .ci/run installs every asset)"
        );
    }
    eprintln!("{message}");
}
