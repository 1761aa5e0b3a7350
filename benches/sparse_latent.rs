//! Pruned `Index::search` vs `Index::search_exhaustive` on synthetic sparse vectors
//! shaped like SAE latents, single thread, top-10 and top-1000.
//!
//! Data (deterministic, SplitMix64): a vocabulary of `V` latents ranked by a Zipf law
//! with exponent `LT_BENCH_ZIPF` (1.0); each document draws `L` distinct latents
//! without replacement (repeat draws are rejected), each query 32; ranks are mapped
//! to latent ids by a fixed random permutation. Weights are activation-like:
//! `0.05 + Exp(1)` (positive, mean 1.05, long tail). Configurations are every
//! `V × L` of `LT_BENCH_VOCABS` (16384,65536) × `LT_BENCH_ACTIVE` (24,64) over
//! `LT_BENCH_DOCS` documents (1,000,000; the 8.8M of MS MARCO only on request).
//!
//! Scorers: `Bm25::default()` (k1 0.9, b 0.4, raw activations as tf), `ClSr::default()`
//! (paper variant, k1 0.6, b 0.75, k2 1.5) and `DotProduct`. The searched index stores
//! weights as `WeightEncoding::Float32`.
//!
//! Printed once per configuration (outside criterion's timing):
//! * build throughput (docs/s of `IndexBuilder::add` + `build`, data generation
//!   excluded) and memory for `Float32` and `Quantized { scale: LT_BENCH_SCALE }`
//!   (100: weights kept to two decimals, absolute error ≤ 0.005): peak RSS is VmHWM
//!   from /proc/self/status read right after `build`, reset through
//!   /proc/self/clear_refs before each build where the kernel allows it (otherwise it
//!   is the process peak so far); RSS before the build is printed too, because heap
//!   the allocator kept from the previous configuration counts in the peak;
//! * bytes per posting from `Index::statistics` (postings sections, whole file);
//! * per-query latency p50/p99 of both paths over `LT_BENCH_QUERIES` (200) queries,
//!   timed one by one, interleaved, and an assertion that both paths return
//!   identical hits on every one of those queries.
//!
//! criterion then reports the mean time per query (each iteration runs the next query
//! of the same set). Subsets: `LT_BENCH_SCORERS` (bm25,clsr,dot), `LT_BENCH_KS`
//! (10,1000), `LT_BENCH_QUANTIZED=0` skips the Quantized build, `LT_BENCH_CRITERION=0`
//! prints only the tables. The default run takes about 10 minutes on 2 shared vCPUs.
//!
//! ```text
//! cargo bench -p latent-terms-benches --bench sparse_latent
//! LT_BENCH_DOCS=200000 LT_BENCH_VOCABS=16384 LT_BENCH_ACTIVE=24 LT_BENCH_SCORERS=clsr \
//!     cargo bench -p latent-terms-benches --bench sparse_latent
//! ```

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod common;
use common::SplitMix;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use latent_terms::sparse_index::{
    Bm25, ClSr, DotProduct, Index, IndexBuilder, IndexConfig, Query, Scorer, SearchOptions,
    SparseVector, WeightEncoding,
};

const QUERY_TERMS: usize = 32;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_usizes(name: &str, default: &str) -> Vec<usize> {
    env_list(name, default)
        .iter()
        .map(|s| {
            s.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: '{s}' is not a number"))
        })
        .collect()
}

/// Zipf law over `n` ranks sampled in O(1) with Walker's alias method, ranks mapped to
/// latent ids by a fixed permutation.
struct ZipfLatents {
    prob: Vec<f64>,
    alias: Vec<u32>,
    latent_of_rank: Vec<u32>,
    /// Stamp per latent for sampling without replacement.
    seen: Vec<u32>,
    stamp: u32,
}

impl ZipfLatents {
    fn new(n: usize, exponent: f64, rng: &mut SplitMix) -> Self {
        let weights: Vec<f64> = (1..=n).map(|r| (r as f64).powf(-exponent)).collect();
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            prob[l] -= 1.0 - prob[s];
            if prob[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for i in small.into_iter().chain(large) {
            prob[i] = 1.0;
        }
        let mut latent_of_rank: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            latent_of_rank.swap(i, rng.below(i + 1));
        }
        ZipfLatents {
            prob,
            alias,
            latent_of_rank,
            seen: vec![0; n],
            stamp: 0,
        }
    }

    fn rank(&self, rng: &mut SplitMix) -> usize {
        let i = rng.below(self.prob.len());
        if rng.uniform() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }

    /// `m` distinct latents with activation weights.
    fn vector(&mut self, m: usize, rng: &mut SplitMix) -> Vec<(u32, f32)> {
        self.stamp += 1;
        let mut out = Vec::with_capacity(m);
        while out.len() < m.min(self.prob.len()) {
            let latent = self.latent_of_rank[self.rank(rng)];
            if self.seen[latent as usize] != self.stamp {
                self.seen[latent as usize] = self.stamp;
                out.push((latent, rng.activation()));
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
struct Shape {
    docs: usize,
    vocab: usize,
    active: usize,
}

impl Shape {
    fn label(&self) -> String {
        format!("V={} L={} N={}", self.vocab, self.active, self.docs)
    }
}

fn read_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct BuildReport {
    encoding: String,
    docs_per_s: f64,
    build_s: f64,
    generate_s: f64,
    peak_mib: Option<f64>,
    rss_before_mib: Option<f64>,
    rss_mib: Option<f64>,
    peak_was_reset: bool,
    postings: u64,
    avg_terms: f64,
    postings_bpp: f64,
    file_bpp: f64,
    file_mib: f64,
    zipf_fit: Option<f64>,
}

fn build(shape: Shape, seed: u64, encoding: WeightEncoding) -> (Index, BuildReport) {
    let mut rng = SplitMix(seed);
    let mut zipf = ZipfLatents::new(shape.vocab, env_f64("LT_BENCH_ZIPF", 1.0), &mut rng);
    let rss_before = read_status_kib("VmRSS:");
    let peak_was_reset = reset_peak_rss();
    let mut builder = IndexBuilder::new(IndexConfig {
        max_terms_per_doc: None,
        weight_encoding: encoding,
    })
    .expect("valid config");
    let (mut generate, mut add) = (Duration::ZERO, Duration::ZERO);
    for d in 0..shape.docs {
        let t = Instant::now();
        let vector = SparseVector::new(zipf.vector(shape.active, &mut rng)).expect("vector");
        let id = d.to_string();
        let t2 = Instant::now();
        builder.add(id, &vector).expect("add");
        add += t2.elapsed();
        generate += t2 - t;
    }
    let t = Instant::now();
    let index = builder.build().expect("build");
    let build_time = add + t.elapsed();
    let peak = read_status_kib("VmHWM:");
    let rss = read_status_kib("VmRSS:");
    let stats = index.statistics().expect("statistics");
    let report = BuildReport {
        encoding: match encoding {
            WeightEncoding::Quantized { scale } => format!("Quantized (scale {scale})"),
            other => format!("{other:?}"),
        },
        docs_per_s: shape.docs as f64 / build_time.as_secs_f64(),
        build_s: build_time.as_secs_f64(),
        generate_s: generate.as_secs_f64(),
        peak_mib: peak.map(|k| k as f64 / 1024.0),
        rss_before_mib: rss_before.map(|k| k as f64 / 1024.0),
        rss_mib: rss.map(|k| k as f64 / 1024.0),
        peak_was_reset,
        postings: stats.num_postings,
        avg_terms: stats.avg_terms_per_doc,
        postings_bpp: stats.postings_bytes_per_posting,
        file_bpp: stats.file_bytes_per_posting,
        file_mib: stats.index_size_bytes as f64 / (1 << 20) as f64,
        zipf_fit: stats.zipf_exponent(),
    };
    eprintln!(
        "{} {}: generated in {:.1} s, built in {:.1} s ({:.0} docs/s), peak RSS {} MiB",
        shape.label(),
        report.encoding,
        report.generate_s,
        report.build_s,
        report.docs_per_s,
        report
            .peak_mib
            .map_or("?".to_owned(), |v| format!("{v:.0}")),
    );
    (index, report)
}

fn queries(shape: Shape, seed: u64, n: usize) -> Vec<Query> {
    // Same permutation and law as the documents (same seed), then a separate stream.
    let mut rng = SplitMix(seed);
    let mut zipf = ZipfLatents::new(shape.vocab, env_f64("LT_BENCH_ZIPF", 1.0), &mut rng);
    let mut rng = SplitMix(seed ^ 0x5151_5151_5151_5151);
    (0..n)
        .map(|_| Query::new(zipf.vector(QUERY_TERMS, &mut rng)).expect("query"))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct LatencyRow {
    shape: String,
    scorer: &'static str,
    k: usize,
    pruned: [f64; 3],
    exhaustive: [f64; 3],
}

/// Times every query individually on both paths (interleaved) and asserts the hits are
/// identical. Returns `[mean, p50, p99]` in ms for pruned and exhaustive.
fn latency<S: Scorer>(
    index: &Index,
    queries: &[Query],
    scorer: &S,
    k: usize,
) -> ([f64; 3], [f64; 3]) {
    let options = SearchOptions::default();
    // Warm lazily computed statistics outside the timed loop.
    let _ = index
        .search(&queries[0], scorer, k, &options)
        .expect("search");
    let (mut pruned, mut exhaustive) = (Vec::new(), Vec::new());
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let a = index.search(q, scorer, k, &options).expect("search");
        pruned.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let b = index
            .search_exhaustive(q, scorer, k, &options)
            .expect("search");
        exhaustive.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(
            a == b,
            "pruned and exhaustive search disagree on query {i} at top-{k}: {} vs {} hits",
            a.len(),
            b.len()
        );
    }
    let summary = |v: &mut Vec<f64>| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.sort_by(f64::total_cmp);
        [mean, percentile(v, 50.0), percentile(v, 99.0)]
    };
    (summary(&mut pruned), summary(&mut exhaustive))
}

enum AnyScorer {
    Bm25(Bm25),
    ClSr(ClSr),
    Dot(DotProduct),
}

fn scorers() -> Vec<(&'static str, AnyScorer)> {
    let mut out = Vec::new();
    for name in env_list("LT_BENCH_SCORERS", "bm25,clsr,dot") {
        match name.as_str() {
            "bm25" => out.push(("BM25", AnyScorer::Bm25(Bm25::default()))),
            "clsr" => out.push(("CL-SR", AnyScorer::ClSr(ClSr::default()))),
            "dot" => out.push(("dot", AnyScorer::Dot(DotProduct))),
            other => panic!("LT_BENCH_SCORERS: unknown scorer '{other}' (bm25, clsr, dot)"),
        }
    }
    out
}

macro_rules! with_scorer {
    ($any:expr, $s:ident => $body:expr) => {
        match $any {
            AnyScorer::Bm25($s) => $body,
            AnyScorer::ClSr($s) => $body,
            AnyScorer::Dot($s) => $body,
        }
    };
}

fn bench_sparse_latent(c: &mut Criterion) {
    let docs = env_usize("LT_BENCH_DOCS", 1_000_000);
    let vocabs = env_usizes("LT_BENCH_VOCABS", "16384,65536");
    let actives = env_usizes("LT_BENCH_ACTIVE", "24,64");
    let ks = env_usizes("LT_BENCH_KS", "10,1000");
    let num_queries = env_usize("LT_BENCH_QUERIES", 200).max(1);
    let scale = env_f64("LT_BENCH_SCALE", 100.0) as f32;
    let quantized = env_usize("LT_BENCH_QUANTIZED", 1) != 0;
    let use_criterion = env_usize("LT_BENCH_CRITERION", 1) != 0;
    let scorers = scorers();
    let started = Instant::now();

    let mut builds: Vec<(String, BuildReport)> = Vec::new();
    let mut latencies: Vec<LatencyRow> = Vec::new();
    for &vocab in &vocabs {
        for &active in &actives {
            let shape = Shape {
                docs,
                vocab,
                active,
            };
            let seed = 0x1a7e_0000 ^ ((vocab as u64) << 8) ^ active as u64;
            eprintln!("\n== {}: building ...", shape.label());
            if quantized {
                let (index, report) = build(shape, seed, WeightEncoding::Quantized { scale });
                drop(index);
                builds.push((shape.label(), report));
            }
            let (index, report) = build(shape, seed, WeightEncoding::Float32);
            builds.push((shape.label(), report));
            let qs = queries(shape, seed, num_queries);

            for (name, scorer) in &scorers {
                for &k in &ks {
                    let (pruned, exhaustive) =
                        with_scorer!(scorer, s => latency(&index, &qs, s, k));
                    eprintln!(
                        "{} {name} top-{k}: pruned p50 {:.3} ms p99 {:.3} ms; exhaustive p50 {:.3} ms p99 {:.3} ms; identical hits on {} queries",
                        shape.label(),
                        pruned[1],
                        pruned[2],
                        exhaustive[1],
                        exhaustive[2],
                        qs.len()
                    );
                    latencies.push(LatencyRow {
                        shape: shape.label(),
                        scorer: name,
                        k,
                        pruned,
                        exhaustive,
                    });
                }
            }

            if use_criterion {
                let mut group =
                    c.benchmark_group(format!("sparse_latent/V{vocab}_L{active}_N{docs}"));
                group.sample_size(10);
                group.warm_up_time(Duration::from_millis(500));
                group.measurement_time(Duration::from_secs(2));
                let options = SearchOptions::default();
                for (name, scorer) in &scorers {
                    for &k in &ks {
                        for pruned in [true, false] {
                            let path = if pruned { "pruned" } else { "exhaustive" };
                            group.bench_function(format!("{name}/top{k}/{path}"), |b| {
                                let mut next = 0usize;
                                b.iter(|| {
                                    let q = &qs[next % qs.len()];
                                    next += 1;
                                    with_scorer!(scorer, s => {
                                        if pruned {
                                            black_box(index.search(q, s, k, &options).expect("search"))
                                        } else {
                                            black_box(
                                                index
                                                    .search_exhaustive(q, s, k, &options)
                                                    .expect("search"),
                                            )
                                        }
                                    })
                                })
                            });
                        }
                    }
                }
                group.finish();
            }
        }
    }

    eprintln!(
        "\n#### Index build and size ({docs} documents, single thread)\n\n\
         | shape | encoding | build docs/s | build s | RSS before MiB | peak RSS MiB | RSS after MiB | postings | terms/doc | postings B/posting | file B/posting | file MiB | df Zipf fit |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (shape, r) in &builds {
        let mib = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        eprintln!(
            "| {shape} | {} | {:.0} | {:.2} | {} | {}{} | {} | {} | {:.2} | {:.3} | {:.3} | {:.1} | {} |",
            r.encoding,
            r.docs_per_s,
            r.build_s,
            mib(r.rss_before_mib),
            mib(r.peak_mib),
            if r.peak_was_reset {
                ""
            } else {
                " (process peak)"
            },
            mib(r.rss_mib),
            r.postings,
            r.avg_terms,
            r.postings_bpp,
            r.file_bpp,
            r.file_mib,
            r.zipf_fit.map_or("–".to_owned(), |s| format!("{s:.2}")),
        );
    }
    eprintln!(
        "\n#### Per-query latency, {num_queries} queries of {QUERY_TERMS} latents, single thread (ms)\n\n\
         | shape | scorer | k | pruned mean | pruned p50 | pruned p99 | exhaustive mean | exhaustive p50 | exhaustive p99 | speed-up (mean) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &latencies {
        eprintln!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1}× |",
            r.shape,
            r.scorer,
            r.k,
            r.pruned[0],
            r.pruned[1],
            r.pruned[2],
            r.exhaustive[0],
            r.exhaustive[1],
            r.exhaustive[2],
            r.exhaustive[0] / r.pruned[0],
        );
    }
    eprintln!(
        "\nsparse_latent: total {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

criterion_group!(benches, bench_sparse_latent);
criterion_main!(benches);
