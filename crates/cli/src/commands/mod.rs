//! One module per subcommand.

pub(crate) mod eval;

/// Errors surfaced to the user; each subcommand maps its failures into this.
pub(crate) type CliResult = Result<(), Box<dyn std::error::Error>>;
