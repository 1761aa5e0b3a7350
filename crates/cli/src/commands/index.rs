//! `latent-terms index ...`: inspect and benchmark saved indexes.

use std::path::PathBuf;

use clap::Subcommand;
use latent_terms::sparse_index::Index;

use super::CliResult;

#[derive(Subcommand)]
pub(crate) enum IndexCommand {
    /// Print an index's statistics as JSON: documents, postings, average terms
    /// per document, vocabulary used, bytes, and the Zipf exponent of document frequencies.
    Stats {
        /// An index file written by `bm25 --save-index` or `Index::save`.
        index: PathBuf,
    },
    /// Time exact pruned search (a per-scorer Searcher) against exhaustive search over an
    /// index or its synthetic twin, passes interleaved, rankings asserted identical; the
    /// last stdout line is one JSON object (docs/benchmarks.md, "Token-level search").
    Bench(Box<super::index_bench::BenchArgs>),
}

pub(crate) fn run(command: &IndexCommand) -> CliResult {
    match command {
        IndexCommand::Bench(args) => super::index_bench::bench(args),
        IndexCommand::Stats { index } => {
            let index = Index::open(index)?;
            let stats = index.statistics()?;
            let summary = serde_json::json!({
                "num_docs": stats.num_docs,
                "num_segments": stats.num_segments,
                "num_postings": stats.num_postings,
                "avg_terms_per_doc": stats.avg_terms_per_doc,
                "vocabulary_used": stats.vocabulary_used,
                "index_size_bytes": stats.index_size_bytes,
                "postings_bytes_per_posting": stats.postings_bytes_per_posting,
                "file_bytes_per_posting": stats.file_bytes_per_posting,
                "zipf_exponent": stats.zipf_exponent(),
                "top_doc_freqs": stats.rank_frequency().into_iter().take(10).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
    }
}
