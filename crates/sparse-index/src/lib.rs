//! Inverted index over sparse vectors for "latent terms" retrieval, with lexical BM25,
//! BM25 over sparse-autoencoder latents, CL-SR and dot-product scoring.
//!
//! * Documents are [`SparseVector`]s (term id → non-negative weight) with external string
//!   ids. Lexical text goes through an [`Analyzer`] and a [`Vocabulary`] first.
//! * An [`IndexBuilder`] makes an immutable [`Segment`]; an [`Index`] holds segments,
//!   deletes (roaring bitmaps) and merges them. Collection statistics are global over live
//!   documents.
//! * [`Index::search`] is exact top-k with block-max MaxScore pruning;
//!   [`Index::search_exhaustive`] is the reference it is tested against;
//!   [`Index::searcher`] prepares a [`Searcher`] for many queries with one scorer (exact
//!   two-phase search over per-posting impact bounds, fast on long queries over dense
//!   lists such as token-level latents, plus an approximate mode). All apply deletes and
//!   [`SearchOptions`] allow/deny filters and return bit-identical scores.
//! * [`Index::explain`] breaks a score down by term.
//! * [`Index::save`] writes a versioned, checksummed file atomically (index files are
//!   write-once: replaced by rename, never in place); [`Index::open`] reads it into memory
//!   ([`LoadOptions::mmap`] maps it instead, see [`Backing::Mmap`]); [`Index::from_bytes`]
//!   loads from memory. `docs/index-format.md` documents the format.
//! * [`Index::statistics`] and [`Index::flops`] give the numbers the papers report.
//! * [`synthetic`] makes twins of an index and its queries at any size (benchmarks).
//! * [`export`] serves the terms from other engines: Anserini/Lucene impact indexes,
//!   Elasticsearch/OpenSearch `rank_features`, and CIFF (export and import).
//!
//! ```
//! use latent_terms_sparse_index::{Analyzer, Bm25, IndexBuilder, IndexConfig, SearchOptions, Vocabulary};
//!
//! let analyzer = Analyzer::english();
//! let mut vocab = Vocabulary::new();
//! let mut builder = IndexBuilder::new(IndexConfig::lexical())?;
//! for (id, text) in [("d1", "Sparse autoencoders find latent terms"), ("d2", "BM25 ranks documents by terms")] {
//!     builder.add(id, &vocab.add_document(&analyzer, text)?)?;
//! }
//! let mut index = builder.build()?;
//! index.set_vocabulary(vocab)?;
//! let query = index.vocabulary().expect("attached").query(&analyzer, "latent autoencoder");
//! let hits = index.search(&query, &Bm25::default(), 10, &SearchOptions::default())?;
//! assert_eq!(index.external_id(hits[0].doc), Some("d1"));
//! # Ok::<(), latent_terms_sparse_index::IndexError>(())
//! ```

mod analyzer;
mod builder;
mod bytes;
mod codec;
mod error;
mod explain;
pub mod export;
mod format;
mod index;
mod postings;
mod pruning;
mod rng;
mod scorer;
mod search;
mod searcher;
mod segment;
mod stats;
pub mod synthetic;
mod vector;
mod vocabulary;

pub use analyzer::{Analyzer, ENGLISH_STOP_WORDS};
pub use builder::{IndexBuilder, IndexConfig, WeightEncoding};
pub use error::{IndexError, Result};
pub use explain::{Explanation, TermContribution};
pub use format::{Backing, FORMAT_VERSION, LoadOptions};
pub use index::{DocId, Index};
pub use pruning::{StaticPruning, TermStatistics};
pub use rng::SplitMix64;
pub use scorer::{
    Bm25, Bm25Params, ClSr, ClSrParams, ClSrVariant, CollectionStats, DocLength, DotProduct,
    Scorer, TermFrequency, TermStats,
};
pub use search::{Hit, SearchOptions};
pub use searcher::{ApproximateOptions, Searcher};
pub use segment::Segment;
pub use stats::IndexStats;
pub use vector::{Query, SparseVector};
pub use vocabulary::Vocabulary;

/// `roaring`'s bitmap, used for allow/deny filters and deletes.
pub use roaring::RoaringBitmap;
