//! One module per subcommand.

pub(crate) mod bm25;
pub(crate) mod encode;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod index;
pub(crate) mod index_bench;
pub(crate) mod interpret;
pub(crate) mod progress;
pub(crate) mod run;
pub(crate) mod sae;

/// Errors surfaced to the user; each subcommand maps its failures into this.
pub(crate) type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
