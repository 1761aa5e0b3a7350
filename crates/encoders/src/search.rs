//! Exact dense retrieval: brute-force top-k by dot product or cosine.
//!
//! Scores every (query, document) pair with a blocked matrix product: documents
//! are split into one contiguous range per thread (`std::thread::scope`, no extra
//! dependency: the work is one coarse parallel loop, which does not need a
//! work-stealing pool), and each thread walks its range in tiles of
//! [`DOC_TILE`] rows so a tile stays in cache while every query is scored
//! against it. Each thread keeps a bounded heap per query; the heaps are merged at
//! the end. Ties are broken by document position, so results do not depend on the
//! number of threads.
//!
//! Over a store, documents are read block by block ([`SearchOptions::block_rows`]),
//! so a corpus larger than memory can be searched.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::embeddings::{Embeddings, dot};
use crate::error::{Error, Result};
use crate::store::EmbeddingsStore;

/// Documents scored against all queries before moving on (cache tile).
pub const DOC_TILE: usize = 64;

/// Similarity between a query and a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Metric {
    /// Inner product (equals cosine for L2-normalised embeddings).
    #[default]
    Dot,
    /// Cosine similarity; a zero vector scores 0 against everything. Rows are
    /// normalised with f64 norms, so any finite rows (scaled by 1e30 or 1e-30)
    /// score as their unscaled versions.
    Cosine,
}

/// Options of [`search`] and [`search_store`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// Hits per query (default 1000).
    pub k: usize,
    /// Similarity (default [`Metric::Dot`]).
    pub metric: Metric,
    /// Worker threads; 0 = the available parallelism (default 0).
    pub threads: usize,
    /// Rows read from a store at a time by [`search_store`] (default 65,536).
    pub block_rows: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 1000,
            metric: Metric::Dot,
            threads: 0,
            block_rows: 65_536,
        }
    }
}

impl SearchOptions {
    /// Options with `k` hits per query and the defaults otherwise.
    pub fn top(k: usize) -> Self {
        SearchOptions {
            k,
            ..SearchOptions::default()
        }
    }

    /// Sets the metric.
    #[must_use]
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Sets the number of threads (0 = available parallelism).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Sets the store block size in rows.
    #[must_use]
    pub fn block_rows(mut self, rows: usize) -> Self {
        self.block_rows = rows;
        self
    }
}

/// Ranked hits of one query: `(document id, score)`, best first.
pub type Hits = Vec<(String, f32)>;

/// A candidate: ordered so that "greater" means "better" (higher score, then
/// earlier document).
#[derive(Clone, Copy, Debug)]
struct Cand {
    score: f32,
    doc: usize,
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.doc.cmp(&self.doc))
    }
}

/// Bounded top-k: a min-heap of the best `k` candidates seen.
#[derive(Clone, Debug)]
struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Cand>>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    #[inline]
    fn push(&mut self, c: Cand) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse(c));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && c > worst.0
        {
            *worst = Reverse(c);
        }
    }

    fn merge(&mut self, other: TopK) {
        for Reverse(c) in other.heap {
            self.push(c);
        }
    }

    fn into_sorted(self) -> Vec<Cand> {
        let mut v: Vec<Cand> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

/// Writes `row / |row|` to `out`, with the norm and the division in f64, so no
/// finite row overflows or underflows (rows scaled by 1e30 or 1e-30 give the
/// same unit vector as unscaled ones); a zero row stays zero.
fn unit_into(row: &[f32], out: &mut [f32]) {
    let norm = row
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 && norm.is_finite() {
        for (o, &x) in out.iter_mut().zip(row) {
            *o = (f64::from(x) / norm) as f32;
        }
    } else {
        out.fill(0.0);
    }
}

/// The query rows to score with: unit rows for cosine, the rows themselves for dot.
fn query_rows(queries: &Embeddings, metric: Metric) -> std::borrow::Cow<'_, [f32]> {
    match metric {
        Metric::Dot => std::borrow::Cow::Borrowed(queries.data()),
        Metric::Cosine => {
            let dim = queries.dim();
            let mut out = vec![0.0f32; queries.data().len()];
            for (o, r) in out
                .chunks_exact_mut(dim)
                .zip(queries.data().chunks_exact(dim))
            {
                unit_into(r, o);
            }
            std::borrow::Cow::Owned(out)
        }
    }
}

fn thread_count(requested: usize) -> usize {
    if requested == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        requested
    }
}

/// Scores `docs` (global row offset `offset`) against all queries (`q_rows`,
/// already unit rows for cosine) and pushes the candidates into `tops` (one per
/// query). For cosine, each tile of documents is normalised into a small
/// per-thread buffer before scoring, so scores are dot products of unit vectors.
fn score_block(
    q_rows: &[f32],
    docs: &Embeddings,
    offset: usize,
    metric: Metric,
    threads: usize,
    tops: &mut [TopK],
) {
    let dim = docs.dim();
    let n_docs = docs.rows();
    if n_docs == 0 || q_rows.is_empty() {
        return;
    }
    // At least ~1024 documents per thread, so small blocks do not pay for threads.
    let threads = threads.min(n_docs.div_ceil(1024)).max(1);
    let per = n_docs.div_ceil(threads);
    let k = tops.first().map_or(0, |t| t.k);
    let n_queries = q_rows.len() / dim;
    let work = |start: usize| -> Vec<TopK> {
        let end = (start + per).min(n_docs);
        let mut local: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k)).collect();
        let mut unit = match metric {
            Metric::Cosine => vec![0.0f32; DOC_TILE * dim],
            Metric::Dot => Vec::new(),
        };
        let mut tile = start;
        while tile < end {
            let tile_end = (tile + DOC_TILE).min(end);
            let mut d_rows = &docs.data()[tile * dim..tile_end * dim];
            if metric == Metric::Cosine {
                let unit = &mut unit[..d_rows.len()];
                for (o, r) in unit.chunks_exact_mut(dim).zip(d_rows.chunks_exact(dim)) {
                    unit_into(r, o);
                }
                d_rows = unit;
            }
            for (q, top) in q_rows.chunks_exact(dim).zip(local.iter_mut()) {
                for (j, d) in d_rows.chunks_exact(dim).enumerate() {
                    top.push(Cand {
                        score: dot(q, d),
                        doc: offset + tile + j,
                    });
                }
            }
            tile = tile_end;
        }
        local
    };
    let results: Vec<Vec<TopK>> = if threads == 1 {
        vec![work(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| t * per)
                .filter(|&start| start < n_docs)
                .map(|start| scope.spawn(move || work(start)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    for local in results {
        for (top, l) in tops.iter_mut().zip(local) {
            top.merge(l);
        }
    }
}

fn check_dims(queries: &Embeddings, dim: usize) -> Result<()> {
    if !queries.is_empty() && queries.dim() != dim {
        return Err(Error::Dimension {
            expected: dim,
            found: queries.dim(),
        });
    }
    Ok(())
}

fn finish(tops: Vec<TopK>, doc_ids: &[String]) -> Vec<Hits> {
    tops.into_iter()
        .map(|t| {
            t.into_sorted()
                .into_iter()
                .filter_map(|c| doc_ids.get(c.doc).map(|id| (id.clone(), c.score)))
                .collect()
        })
        .collect()
}

/// Exact top-k of every query over in-memory documents. Result `i` belongs to
/// `queries.ids()[i]`.
///
/// ```
/// use latent_terms_encoders::{search, Embeddings, SearchOptions};
///
/// let docs = Embeddings::new(vec!["d1".into(), "d2".into()], 2, vec![1.0, 0.0, 0.0, 1.0])?;
/// let queries = Embeddings::new(vec!["q1".into()], 2, vec![0.2, 0.9])?;
/// let hits = search(&queries, &docs, &SearchOptions::top(1))?;
/// assert_eq!(hits[0], vec![("d2".to_string(), 0.9)]);
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
///
/// # Errors
/// [`Error::Dimension`] when queries and documents differ in dimension.
pub fn search(queries: &Embeddings, docs: &Embeddings, opts: &SearchOptions) -> Result<Vec<Hits>> {
    check_dims(queries, docs.dim())?;
    let q_rows = query_rows(queries, opts.metric);
    let mut tops: Vec<TopK> = (0..queries.rows()).map(|_| TopK::new(opts.k)).collect();
    if opts.k > 0 {
        score_block(
            &q_rows,
            docs,
            0,
            opts.metric,
            thread_count(opts.threads),
            &mut tops,
        );
    }
    Ok(finish(tops, docs.ids()))
}

/// Exact top-k of every query over a store, reading it in blocks of
/// [`SearchOptions::block_rows`] rows. Result `i` belongs to `queries.ids()[i]`.
///
/// ```no_run
/// use latent_terms_encoders::{search_store, Encoder, EmbeddingsStore, SearchOptions};
///
/// let encoder = Encoder::builder("assets/models/all-MiniLM-L6-v2").build()?;
/// let store = EmbeddingsStore::open_expecting("corpus.safetensors", &encoder.store_metadata())?;
/// let queries = encoder.encode_queries(&["what causes scurvy?"])?;
/// for (doc, score) in &search_store(&queries, &store, &SearchOptions::top(10))?[0] {
///     println!("{doc}\t{score}");
/// }
/// # Ok::<(), latent_terms_encoders::Error>(())
/// ```
///
/// # Errors
/// [`Error::QueryDimension`] (naming the store) when the queries and the store
/// differ in dimension, and the store's read errors.
pub fn search_store(
    queries: &Embeddings,
    store: &EmbeddingsStore,
    opts: &SearchOptions,
) -> Result<Vec<Hits>> {
    if !queries.is_empty() && queries.dim() != store.dim() {
        return Err(Error::QueryDimension {
            path: store.path().to_path_buf(),
            store: store.dim(),
            queries: queries.dim(),
        });
    }
    let q_rows = query_rows(queries, opts.metric);
    let mut tops: Vec<TopK> = (0..queries.rows()).map(|_| TopK::new(opts.k)).collect();
    if opts.k > 0 && !queries.is_empty() {
        let threads = thread_count(opts.threads);
        let mut blocks = store.blocks(opts.block_rows)?;
        loop {
            let offset = blocks.next_row();
            let Some(block) = blocks.next() else { break };
            let block = block?;
            score_block(&q_rows, &block, offset, opts.metric, threads, &mut tops);
        }
    }
    Ok(finish(tops, store.ids()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pooling;
    use crate::store::{StoreDtype, StoreMetadata, StoreWriter};

    /// Deterministic pseudo-random matrix.
    fn matrix(prefix: &str, rows: usize, dim: usize, seed: u64) -> Embeddings {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut data = Vec::with_capacity(rows * dim);
        for _ in 0..rows * dim {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.push(((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5);
        }
        let ids = (0..rows).map(|i| format!("{prefix}{i}")).collect();
        Embeddings::new(ids, dim, data).unwrap()
    }

    /// The obvious implementation: score everything, sort.
    fn naive(q: &Embeddings, d: &Embeddings, k: usize, metric: Metric) -> Vec<Vec<(String, f32)>> {
        q.iter()
            .map(|(_, qr)| {
                let mut all: Vec<(usize, f32)> = d
                    .iter()
                    .enumerate()
                    .map(|(i, (_, dr))| {
                        let s: f64 = qr
                            .iter()
                            .zip(dr)
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum();
                        let s = match metric {
                            Metric::Dot => s,
                            Metric::Cosine => {
                                let nq: f64 =
                                    qr.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
                                let nd: f64 =
                                    dr.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
                                s / (nq * nd)
                            }
                        };
                        (i, s as f32)
                    })
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(k);
                all.into_iter()
                    .map(|(i, s)| (d.ids()[i].clone(), s))
                    .collect()
            })
            .collect()
    }

    fn assert_close(got: &[Hits], want: &[Hits]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.len(), w.len());
            for ((gi, gs), (wi, ws)) in g.iter().zip(w) {
                assert!((gs - ws).abs() < 1e-4, "{gi} {gs} vs {wi} {ws}");
            }
            // Same documents (random data has no near-ties at this precision).
            let gi: Vec<&String> = g.iter().map(|h| &h.0).collect();
            let wi: Vec<&String> = w.iter().map(|h| &h.0).collect();
            assert_eq!(gi, wi);
        }
    }

    #[test]
    fn matches_naive_search_for_any_thread_count() {
        let docs = matrix("d", 5000, 24, 1);
        let queries = matrix("q", 13, 24, 2);
        for metric in [Metric::Dot, Metric::Cosine] {
            let want = naive(&queries, &docs, 10, metric);
            for threads in [1, 2, 3, 8] {
                let opts = SearchOptions::top(10).metric(metric).threads(threads);
                let got = search(&queries, &docs, &opts).unwrap();
                assert_close(&got, &want);
            }
        }
    }

    #[test]
    fn store_search_equals_in_memory_search() {
        let docs = matrix("d", 3001, 16, 3);
        let queries = matrix("q", 5, 16, 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.safetensors");
        let meta = StoreMetadata {
            model: "m".into(),
            pooling: Pooling::Cls,
            normalized: false,
            dim: 16,
            prefix: String::new(),
        };
        let mut w = StoreWriter::create(&path, meta, StoreDtype::F32).unwrap();
        w.append(&docs).unwrap();
        w.finish().unwrap();
        let store = EmbeddingsStore::open(&path).unwrap();
        let opts = SearchOptions::top(25).threads(2);
        let want = search(&queries, &docs, &opts).unwrap();
        for block in [1, 7, 1000, 5000] {
            let got = search_store(&queries, &store, &opts.clone().block_rows(block)).unwrap();
            assert_eq!(got, want, "block {block}");
        }
    }

    #[test]
    fn ties_are_broken_by_document_order_and_k_is_bounded() {
        let docs =
            Embeddings::new((0..6).map(|i| format!("d{i}")).collect(), 1, vec![1.0; 6]).unwrap();
        let q = Embeddings::new(vec!["q".into()], 1, vec![2.0]).unwrap();
        for threads in [1, 4] {
            let hits = search(&q, &docs, &SearchOptions::top(3).threads(threads)).unwrap();
            let ids: Vec<&str> = hits[0].iter().map(|h| h.0.as_str()).collect();
            assert_eq!(ids, ["d0", "d1", "d2"]);
        }
        let all = search(&q, &docs, &SearchOptions::top(100)).unwrap();
        assert_eq!(all[0].len(), 6);
        let none = search(&q, &docs, &SearchOptions::top(0)).unwrap();
        assert!(none[0].is_empty());
    }

    #[test]
    fn cosine_with_zero_vectors_and_dimension_errors() {
        let docs =
            Embeddings::new(vec!["z".into(), "a".into()], 2, vec![0.0, 0.0, 3.0, 4.0]).unwrap();
        let q = Embeddings::new(vec!["q".into()], 2, vec![3.0, 4.0]).unwrap();
        let hits = search(&q, &docs, &SearchOptions::top(2).metric(Metric::Cosine)).unwrap();
        assert_eq!(hits[0][0].0, "a");
        assert!((hits[0][0].1 - 1.0).abs() < 1e-6);
        assert_eq!(hits[0][1], ("z".to_string(), 0.0));
        let bad = Embeddings::new(vec!["q".into()], 3, vec![1.0; 3]).unwrap();
        assert!(matches!(
            search(&bad, &docs, &SearchOptions::top(1)),
            Err(Error::Dimension { .. })
        ));
        let empty_docs = Embeddings::empty(2);
        assert!(search(&q, &empty_docs, &SearchOptions::top(5)).unwrap()[0].is_empty());
    }

    fn scaled(e: &Embeddings, by: f32) -> Embeddings {
        let data = e.data().iter().map(|x| x * by).collect();
        Embeddings::new(e.ids().to_vec(), e.dim(), data).unwrap()
    }

    /// Cosine of rows scaled by 1e30 (squares overflow f32) or 1e-30 (squares
    /// underflow) ranks and scores as the unscaled rows, in memory and from a store.
    #[test]
    fn cosine_does_not_overflow_or_underflow() {
        let docs = matrix("d", 300, 384, 5);
        let queries = matrix("q", 4, 384, 6);
        let opts = SearchOptions::top(20).metric(Metric::Cosine).threads(2);
        let want = search(&queries, &docs, &opts).unwrap();
        assert_close(&want, &naive(&queries, &docs, 20, Metric::Cosine));
        let dir = tempfile::tempdir().unwrap();
        for (qs, ds) in [
            (1.0, 1e30),
            (1e30, 1e30),
            (1e-30, 1e-30),
            (1e30, 1e-30),
            (1.0, 1e-30),
        ] {
            let (q, d) = (scaled(&queries, qs), scaled(&docs, ds));
            let got = search(&q, &d, &opts).unwrap();
            assert_close(&got, &want);
            assert!(got[0][0].1 > 0.1, "scores are not all 0: {:?}", got[0][0]);
            let path = dir.path().join("s.safetensors");
            let meta = StoreMetadata {
                model: "m".into(),
                pooling: Pooling::Mean,
                normalized: false,
                dim: 384,
                prefix: String::new(),
            };
            let mut w = StoreWriter::create(&path, meta, StoreDtype::F32).unwrap();
            w.append(&d).unwrap();
            w.finish().unwrap();
            let store = EmbeddingsStore::open(&path).unwrap();
            let got = search_store(&q, &store, &opts.clone().block_rows(64)).unwrap();
            assert_close(&got, &want);
        }
    }

    #[test]
    fn a_query_dimension_mismatch_names_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.safetensors");
        let meta = StoreMetadata {
            model: "m".into(),
            pooling: Pooling::Mean,
            normalized: false,
            dim: 4,
            prefix: String::new(),
        };
        let mut w = StoreWriter::create(&path, meta, StoreDtype::F32).unwrap();
        w.append(&matrix("d", 3, 4, 7)).unwrap();
        w.finish().unwrap();
        let store = EmbeddingsStore::open(&path).unwrap();
        let err = search_store(&matrix("q", 2, 6, 8), &store, &SearchOptions::top(3)).unwrap_err();
        assert!(
            matches!(&err, Error::QueryDimension { path: p, store: 4, queries: 6 } if *p == path),
            "{err}"
        );
        assert!(err.to_string().contains("corpus.safetensors"), "{err}");
    }
}
