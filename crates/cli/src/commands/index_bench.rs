//! `latent-terms index bench`: pruned (a [`Searcher`]) against exhaustive search over a
//! saved index or its synthetic twin, in one process, passes interleaved, rankings
//! asserted identical; optionally the approximate mode's speed/recall curve and exact
//! dense search over random unit vectors for scale. The last stdout line is one JSON
//! object (docs/benchmarks.md, "Token-level search").

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use latent_terms::eval::{Evaluator, Measure, Qrels, Run, beir};
use latent_terms::sparse_index::synthetic::{SplitMix64, TwinProfile};
use latent_terms::sparse_index::{
    ApproximateOptions, Bm25, Bm25Params, ClSr, ClSrParams, DotProduct, Hit, Index, Query, Scorer,
    SearchOptions, Searcher, WeightEncoding,
};
use serde_json::{Value, json};

use super::CliResult;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum BenchScorer {
    /// BM25 over the stored weights (--k1, --b).
    Bm25,
    /// CL-SR, paper variant (--clsr-k1, --clsr-b, --clsr-k2).
    Clsr,
    /// Dot product of stored weights.
    Dot,
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Index file (e.g. a report's `token_index`).
    #[arg(long)]
    index: PathBuf,
    /// Weighted queries, JSON lines {"id", "vector": {"l17": 0.42}} (a report's
    /// `token_queries`), as `search` reads them.
    #[arg(long)]
    queries: PathBuf,
    #[arg(long, value_enum, default_value = "bm25")]
    scorer: BenchScorer,
    /// BM25 k1 (default: the token pipeline's, 1.5).
    #[arg(long, default_value_t = 1.5)]
    k1: f32,
    /// BM25 b (default: the token pipeline's, 1.0).
    #[arg(long, default_value_t = 1.0)]
    b: f32,
    /// CL-SR k1, b, k2 (default: the token pipeline's, 1.2, 1.0, 5.0).
    #[arg(long, value_delimiter = ',', default_value = "1.2,1.0,5.0")]
    clsr: Vec<f32>,
    /// Depths timed.
    #[arg(long, value_delimiter = ',', default_value = "10,1000")]
    top: Vec<usize>,
    /// Threads searching the query set (each query runs on one thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Interleaved passes over the queries; q/s are medians over passes.
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Use only the first N queries.
    #[arg(long)]
    max_queries: Option<usize>,
    /// Bench a synthetic twin of this many documents instead, with --index and --queries
    /// as the statistics to reproduce.
    #[arg(long)]
    synthetic_docs: Option<usize>,
    /// Twin queries drawn.
    #[arg(long, default_value_t = 100)]
    synthetic_queries: usize,
    /// Twin weight encoding: `float32` or `quantized:SCALE` (default: the index's).
    #[arg(long)]
    synthetic_encoding: Option<String>,
    /// Documents per twin segment (at most 65,536 keeps the searcher's u16 doc ids).
    #[arg(long, default_value_t = 32_768)]
    segment_docs: usize,
    /// Seed of the twin.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Approximate mode: threshold factors (>= 1, e.g. 1.05,1.1,1.2) to time at top-10,
    /// with recall@10 against the exact top-10.
    #[arg(long, value_delimiter = ',')]
    approx_cut: Vec<f32>,
    /// Qrels (TREC or BEIR .tsv) for nDCG@10 of the exact and approximate runs.
    #[arg(long)]
    qrels: Option<PathBuf>,
    /// Also time exact dense search (brute-force dot product, one thread) over this many
    /// random unit vectors, top-10.
    #[arg(long)]
    dense_docs: Option<usize>,
    /// Dimension of the dense vectors.
    #[arg(long, default_value_t = 384)]
    dense_dim: usize,
    /// Also time the block-max MaxScore path (`Index::search`).
    #[arg(long)]
    maxscore: bool,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Per-query latencies (ms) and per-pass throughputs of one path at one depth.
#[derive(Default)]
struct Timing {
    latencies: Vec<f64>,
    qps: Vec<f64>,
}

impl Timing {
    fn summary(&mut self) -> (f64, f64, f64) {
        self.latencies.sort_by(f64::total_cmp);
        self.qps.sort_by(f64::total_cmp);
        (
            median(&self.qps),
            quantile(&self.latencies, 0.5),
            quantile(&self.latencies, 0.99),
        )
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One query's hits and latency (ms).
type Timed = (Vec<Hit>, f64);

/// Runs `search` over the queries on `threads` threads; returns hits per query, the
/// latency of each query and the wall time.
fn run_queries<F>(
    queries: &[Query],
    threads: usize,
    search: F,
) -> CliResult<(Vec<Vec<Hit>>, Vec<f64>, f64)>
where
    F: Fn(&Query) -> latent_terms::sparse_index::Result<Vec<Hit>> + Sync,
{
    let start = Instant::now();
    let chunk = queries.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<latent_terms::sparse_index::Result<Vec<Timed>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|part| {
                let search = &search;
                scope.spawn(move || {
                    part.iter()
                        .map(|q| {
                            let t = Instant::now();
                            let hits = search(q)?;
                            Ok((hits, t.elapsed().as_secs_f64() * 1e3))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut hits = Vec::with_capacity(queries.len());
    let mut latencies = Vec::with_capacity(queries.len());
    for part in parts {
        for (h, ms) in part? {
            hits.push(h);
            latencies.push(ms);
        }
    }
    Ok((hits, latencies, wall))
}

fn scorer_of(args: &BenchArgs) -> CliResult<Box<dyn Scorer + Sync>> {
    Ok(match args.scorer {
        BenchScorer::Dot => Box::new(DotProduct),
        BenchScorer::Bm25 => Box::new(Bm25::new(Bm25Params {
            k1: args.k1,
            b: args.b,
            ..Bm25Params::default()
        })?),
        BenchScorer::Clsr => {
            let [k1, b, k2] = args.clsr[..] else {
                return Err("--clsr takes three values: k1,b,k2".into());
            };
            Box::new(ClSr::new(ClSrParams {
                k1,
                b,
                k2,
                ..ClSrParams::default()
            })?)
        }
    })
}

fn encoding_of(spec: Option<&str>, index: &Index) -> CliResult<WeightEncoding> {
    match spec {
        None => Ok(index
            .segments()
            .next()
            .map_or(WeightEncoding::Float32, |s| s.weight_encoding())),
        Some("float32") => Ok(WeightEncoding::Float32),
        Some(s) => match s.strip_prefix("quantized:").map(str::parse::<f32>) {
            Some(Ok(scale)) => Ok(WeightEncoding::Quantized { scale }),
            _ => Err(format!("--synthetic-encoding {s}: use float32 or quantized:SCALE").into()),
        },
    }
}

pub(crate) fn bench(args: &BenchArgs) -> CliResult {
    let load_start = load_average();
    let real = Index::open(&args.index)?;
    let mut weighted = super::export::read_queries(Some(&args.queries), &real)?;
    if let Some(n) = args.max_queries {
        weighted.truncate(n);
    }
    if weighted.is_empty() {
        return Err(format!("{}: no queries", args.queries.display()).into());
    }
    let mut report = serde_json::Map::new();
    let (index, ids, queries) = match args.synthetic_docs {
        None => {
            let ids: Vec<String> = weighted.iter().map(|q| q.id.clone()).collect();
            let queries: Vec<Query> = weighted.into_iter().map(|q| q.query).collect();
            (real, ids, queries)
        }
        Some(docs) => {
            let t = Instant::now();
            let raw: Vec<Query> = weighted.into_iter().map(|q| q.query).collect();
            let profile = TwinProfile::measure(&real, &raw)?;
            let encoding = encoding_of(args.synthetic_encoding.as_deref(), &real)?;
            drop(real);
            let twin = profile.build_index(docs, args.seed, args.segment_docs, encoding, 2)?;
            let queries = profile
                .sampler()
                .queries(args.synthetic_queries, args.seed)?;
            eprintln!(
                "twin: {docs} documents in {:.1} s (profile: {} documents, {:.1} latents per document, {:.1} per query)",
                t.elapsed().as_secs_f64(),
                profile.num_docs,
                profile.mean_doc_length(),
                profile.mean_query_length()
            );
            report.insert(
                "twin".into(),
                json!({
                    "source_docs": profile.num_docs,
                    "source_latents_per_doc": profile.mean_doc_length(),
                    "source_latents_per_query": profile.mean_query_length(),
                    "encoding": format!("{encoding:?}"),
                    "segment_docs": args.segment_docs,
                    "build_s": t.elapsed().as_secs_f64(),
                }),
            );
            let ids = (0..queries.len()).map(|i| format!("t{i}")).collect();
            (twin, ids, queries)
        }
    };
    let stats = index.statistics()?;
    let avg_query = queries.iter().map(Query::len).sum::<usize>() as f64 / queries.len() as f64;
    eprintln!(
        "index: {} documents, {} postings ({:.1} per document), {} queries ({avg_query:.1} terms each), load {load_start}",
        stats.num_docs,
        stats.num_postings,
        stats.avg_terms_per_doc,
        queries.len()
    );
    let scorer = scorer_of(args)?;
    let t = Instant::now();
    let searcher = index.searcher(scorer.as_ref())?;
    let build_s = t.elapsed().as_secs_f64();
    eprintln!(
        "searcher: built in {build_s:.2} s, {:.1} MiB of impact data",
        searcher.impact_bytes() as f64 / (1 << 20) as f64
    );
    let options = SearchOptions::default();
    let mut identical = true;
    let mut exact_top10: Option<Vec<Vec<Hit>>> = None;
    for &k in &args.top {
        let mut pruned = Timing::default();
        let mut exhaustive = Timing::default();
        let mut maxscore = Timing::default();
        for pass in 0..args.passes.max(1) {
            // Alternate which path goes first, so neither always runs on a warm cache.
            let order: [usize; 3] = if pass % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
            let mut results: [Option<Vec<Vec<Hit>>>; 3] = [None, None, None];
            for path in order {
                if path == 2 && !args.maxscore {
                    continue;
                }
                let (hits, lat, wall) = match path {
                    0 => run_queries(&queries, args.threads, |q| searcher.search(q, k, &options))?,
                    1 => run_queries(&queries, args.threads, |q| {
                        index.search_exhaustive(q, scorer.as_ref(), k, &options)
                    })?,
                    _ => run_queries(&queries, args.threads, |q| {
                        index.search(q, scorer.as_ref(), k, &options)
                    })?,
                };
                let timing = match path {
                    0 => &mut pruned,
                    1 => &mut exhaustive,
                    _ => &mut maxscore,
                };
                timing.latencies.extend(lat);
                timing.qps.push(queries.len() as f64 / wall);
                results[path] = Some(hits);
            }
            let same = results[0] == results[1] && (!args.maxscore || results[2] == results[1]);
            if !same {
                identical = false;
                eprintln!("MISMATCH: pruned and exhaustive rankings differ at top-{k}");
            }
            if k == 10 && exact_top10.is_none() {
                exact_top10 = results[1].take();
            }
        }
        let (pq, p50, p99) = pruned.summary();
        let (eq, e50, e99) = exhaustive.summary();
        eprintln!(
            "top-{k}: pruned {pq:.1} q/s (p50 {p50:.2} ms, p99 {p99:.2} ms); exhaustive {eq:.1} q/s (p50 {e50:.2} ms, p99 {e99:.2} ms); ratio {:.2}",
            pq / eq
        );
        report.insert(format!("pruned_qps_top{k}"), json!(pq));
        report.insert(format!("pruned_p50_ms_top{k}"), json!(p50));
        report.insert(format!("pruned_p99_ms_top{k}"), json!(p99));
        report.insert(format!("exhaustive_qps_top{k}"), json!(eq));
        report.insert(format!("exhaustive_p50_ms_top{k}"), json!(e50));
        report.insert(format!("exhaustive_p99_ms_top{k}"), json!(e99));
        report.insert(format!("speedup_top{k}"), json!(pq / eq));
        if args.maxscore {
            let (mq, m50, m99) = maxscore.summary();
            eprintln!(
                "top-{k}: maxscore {mq:.1} q/s (p50 {m50:.2} ms, p99 {m99:.2} ms); ratio {:.2}",
                mq / eq
            );
            report.insert(format!("maxscore_qps_top{k}"), json!(mq));
            report.insert(format!("maxscore_speedup_top{k}"), json!(mq / eq));
        }
    }
    let qrels = args.qrels.as_deref().map(read_qrels).transpose()?;
    if !args.approx_cut.is_empty() {
        let exact = match exact_top10 {
            Some(e) => e,
            None => run_queries(&queries, args.threads, |q| searcher.search(q, 10, &options))?.0,
        };
        let curve = approximate_curve(
            args,
            &index,
            &searcher,
            &queries,
            &ids,
            &exact,
            qrels.as_ref(),
        )?;
        report.insert("approximate".into(), Value::Array(curve));
    }
    if let Some(n) = args.dense_docs {
        report.insert(
            "dense".into(),
            dense_bench(n, args.dense_dim, args.passes, queries.len().min(50))?,
        );
    }
    report.insert("identical".into(), json!(identical));
    report.insert(
        "scorer".into(),
        json!(match args.scorer {
            BenchScorer::Bm25 => format!("bm25 k1 {} b {}", args.k1, args.b),
            BenchScorer::Clsr => format!("clsr {:?}", args.clsr),
            BenchScorer::Dot => "dot".into(),
        }),
    );
    report.insert("docs".into(), json!(stats.num_docs));
    report.insert("postings".into(), json!(stats.num_postings));
    report.insert("queries".into(), json!(queries.len()));
    report.insert("query_terms".into(), json!(avg_query));
    report.insert("passes".into(), json!(args.passes));
    report.insert("threads".into(), json!(args.threads));
    report.insert("searcher_build_s".into(), json!(build_s));
    report.insert("impact_bytes".into(), json!(searcher.impact_bytes()));
    report.insert("load_start".into(), json!(load_start));
    report.insert("load_end".into(), json!(load_average()));
    println!("{}", Value::Object(report));
    if !identical {
        return Err("pruned and exhaustive rankings differ".into());
    }
    Ok(())
}

fn read_qrels(path: &std::path::Path) -> CliResult<Qrels> {
    Ok(if path.extension().is_some_and(|e| e == "tsv") {
        beir::qrels_from_tsv_path(path)?
    } else {
        Qrels::from_path(path)?
    })
}

fn ndcg10(index: &Index, qrels: &Qrels, ids: &[String], hits: &[Vec<Hit>]) -> CliResult<f64> {
    let mut run = Run::new("bench");
    for (id, h) in ids.iter().zip(hits) {
        let h: Vec<(&str, f64)> = h
            .iter()
            .filter_map(|x| index.external_id(x.doc).map(|d| (d, f64::from(x.score))))
            .collect();
        run.extend_query(id, h)?;
    }
    let eval = Evaluator::from_names(&["ndcg_cut.10"])?.evaluate(qrels, &run);
    Ok(eval.mean(Measure::NdcgCut(10)).unwrap_or(0.0))
}

/// Speed, recall@10 against the exact top-10, and nDCG@10 (with qrels) of the
/// approximate mode at each threshold factor, with the exact row first.
fn approximate_curve<S: Scorer + Sync>(
    args: &BenchArgs,
    index: &Index,
    searcher: &Searcher<'_, S>,
    queries: &[Query],
    ids: &[String],
    exact: &[Vec<Hit>],
    qrels: Option<&Qrels>,
) -> CliResult<Vec<Value>> {
    let options = SearchOptions::default();
    let mut rows = Vec::new();
    let mut exact_qps = Vec::new();
    for _ in 0..args.passes.max(1) {
        let (_, _, wall) =
            run_queries(queries, args.threads, |q| searcher.search(q, 10, &options))?;
        exact_qps.push(queries.len() as f64 / wall);
    }
    exact_qps.sort_by(f64::total_cmp);
    let exact_ndcg = qrels.map(|q| ndcg10(index, q, ids, exact)).transpose()?;
    eprintln!(
        "approximate top-10: exact {:.1} q/s, nDCG@10 {exact_ndcg:?}",
        median(&exact_qps)
    );
    rows.push(json!({"cut": 1.0, "exact": true, "qps": median(&exact_qps), "recall10": 1.0, "ndcg10": exact_ndcg}));
    for &cut in &args.approx_cut {
        let approx = ApproximateOptions { cut };
        let mut qps = Vec::new();
        let mut hits = Vec::new();
        for _ in 0..args.passes.max(1) {
            let (h, _, wall) = run_queries(queries, args.threads, |q| {
                searcher.search_approximate(q, 10, &options, &approx)
            })?;
            qps.push(queries.len() as f64 / wall);
            hits = h;
        }
        qps.sort_by(f64::total_cmp);
        let mut found = 0usize;
        let mut wanted = 0usize;
        for (a, e) in hits.iter().zip(exact) {
            wanted += e.len();
            found += e
                .iter()
                .filter(|x| a.iter().any(|y| y.doc == x.doc))
                .count();
        }
        let recall = found as f64 / wanted.max(1) as f64;
        let ndcg = qrels.map(|q| ndcg10(index, q, ids, &hits)).transpose()?;
        eprintln!(
            "approximate top-10, cut {cut}: {:.1} q/s, recall@10 {recall:.4}, nDCG@10 {ndcg:?}",
            median(&qps)
        );
        rows.push(json!({"cut": cut, "qps": median(&qps), "recall10": recall, "ndcg10": ndcg}));
    }
    Ok(rows)
}

/// Exact dense top-10 (the encoders crate's brute-force search, one thread, one query
/// per call) over `n` random unit vectors of `dim` dimensions.
fn dense_bench(n: usize, dim: usize, passes: usize, queries: usize) -> CliResult<Value> {
    use latent_terms::encoders::{Embeddings, SearchOptions as DenseOptions, search};
    let mut rng = SplitMix64::new(42);
    let mut unit = |count: usize| -> Vec<f32> {
        let mut data = Vec::with_capacity(count * dim);
        for _ in 0..count {
            let row: Vec<f32> = (0..dim)
                .map(|_| {
                    // Box-Muller: a standard normal, so the direction is uniform.
                    let (u, v) = (rng.uniform().max(1e-300), rng.uniform());
                    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
                })
                .collect();
            let norm = row
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE);
            data.extend(row.iter().map(|x| x / norm));
        }
        data
    };
    let docs = Embeddings::new((0..n).map(|i| format!("d{i}")).collect(), dim, unit(n))?;
    let qdata = unit(queries);
    let opts = DenseOptions::top(10).threads(1);
    let mut qps = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..passes.max(1) {
        let start = Instant::now();
        for q in 0..queries {
            let t = Instant::now();
            let one = Embeddings::new(
                vec![format!("q{q}")],
                dim,
                qdata[q * dim..(q + 1) * dim].to_vec(),
            )?;
            std::hint::black_box(search(&one, &docs, &opts)?);
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
        }
        qps.push(queries as f64 / start.elapsed().as_secs_f64());
    }
    qps.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    let (q, p50, p99) = (
        median(&qps),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
    );
    eprintln!(
        "exact dense {n} x {dim}, top-10, one thread: {q:.2} q/s (p50 {p50:.1} ms, p99 {p99:.1} ms)"
    );
    Ok(
        json!({"docs": n, "dim": dim, "qps_top10": q, "p50_ms": p50, "p99_ms": p99, "queries": queries}),
    )
}
