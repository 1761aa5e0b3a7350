//! Lexical BM25 on SciFact (5,183 documents, the 300 test queries judged in
//! `qrels/test.tsv`): latent-terms side by side with tantivy, single thread,
//! top-10 and top-1000, query analysis included in every timed search.
//!
//! Systems (each indexes `title + " " + text` as one field):
//!
//! * `ours searcher` / `ours pruned` / `ours exhaustive`: `Searcher::search` (the
//!   per-scorer impact searcher, built once; a short query is one exact pass over its
//!   precomputed document factors), `Index::search` (block-max MaxScore) and
//!   `Index::search_exhaustive`, `Analyzer::english()` (Unicode words, possessives,
//!   Lucene's 33 stopwords, Snowball English), BM25 k1 0.9 b 0.4 (Lucene/Anserini);
//!   `ours pruned k1=1.2,b=0.75` uses tantivy's fixed parameters.
//! * `tantivy BMW`: `TopDocs::with_limit(k).order_by_score()`, tantivy's default
//!   block-max WAND; `tantivy exhaustive`: the collector `(Count, TopDocs)`, whose
//!   tuple implementation has no pruning path, so every matching document is scored and
//!   offered to the top-k heap. Tokenizer `en_stem` (tantivy's default tokenizer plus
//!   Snowball English; no stopwords), BM25 k1 1.2 b 0.75 (fixed in tantivy), one
//!   segment, postings with frequencies and no positions, a `BooleanQuery` of
//!   `TermQuery` `Should` clauses built from the tokenized query text (what
//!   `QueryParser` makes for plain words, minus the query-syntax parsing).
//!   `tantivy+stop BMW` adds a stop filter with the same 33 stopwords as ours.
//!
//! Besides criterion's numbers (one iteration = all queries, so the reported
//! throughput is queries/s), the bench prints once, outside the timed part:
//! build times, nDCG@10 of every system (latent_terms::eval, `ndcg_cut.10`,
//! averaged over all judged queries), a check that pruned and exhaustive paths
//! agree, and a side-by-side table from `LT_BENCH_ROUNDS` (default 15) interleaved
//! passes over the queries: median queries/s, per-query p50/p99 latency and ratios.
//!
//! ```text
//! cargo bench -p latent-terms-benches --bench bm25_scifact
//! LT_BENCH_ROUNDS=5 cargo bench -p latent-terms-benches --bench bm25_scifact -- top10
//! LT_BENCH_SYSTEMS="ours searcher" cargo bench -p latent-terms-benches --bench bm25_scifact
//! ```
//!
//! The dataset is read from `../shared/data/scifact` relative to the repository root
//! (override with `LT_BENCH_SCIFACT=DIR`); when it is absent the bench prints
//! "skipping" and measures nothing.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latent_terms::eval::beir::{BeirDataset, Document, Query as BeirQuery};
use latent_terms::eval::{Evaluator, Measure, Qrels, Run};
use latent_terms::sparse_index::{
    Analyzer, Bm25, Bm25Params, ENGLISH_STOP_WORDS, Index, IndexBuilder, IndexConfig,
    SearchOptions, Searcher as ImpactSearcher, Vocabulary,
};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::BooleanQuery;
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{IndexWriter, Searcher, Term, doc};

const KS: [usize; 2] = [10, 1000];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dataset_dir() -> PathBuf {
    match std::env::var_os("LT_BENCH_SCIFACT") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/scifact"),
    }
}

/// A system under test: `hits` is the timed call (analysis + search), `ranking`
/// the same search turned into external ids for evaluation (not timed).
trait System {
    fn name(&self) -> String;
    fn hits(&self, text: &str, k: usize) -> usize;
    fn ranking(&self, text: &str, k: usize) -> Vec<(String, f64)>;
}

// ---------------------------------------------------------------- latent-terms

struct Ours {
    index: Index,
    analyzer: Analyzer,
}

impl Ours {
    fn build(docs: &[Document]) -> Self {
        let analyzer = Analyzer::english();
        let mut vocabulary = Vocabulary::new();
        let mut builder = IndexBuilder::new(IndexConfig::lexical()).expect("valid config");
        for d in docs {
            let vector = vocabulary
                .add_document(&analyzer, &d.full_text())
                .expect("analyse");
            builder.add(d.id.clone(), &vector).expect("add");
        }
        let mut index = builder.build().expect("build");
        index.set_vocabulary(vocabulary).expect("vocabulary");
        Ours { index, analyzer }
    }

    fn search(
        &self,
        text: &str,
        scorer: &Bm25,
        k: usize,
        pruned: bool,
    ) -> Vec<latent_terms::sparse_index::Hit> {
        let vocabulary = self.index.vocabulary().expect("vocabulary attached");
        let query = vocabulary.query(&self.analyzer, text);
        let options = SearchOptions::default();
        if pruned {
            self.index.search(&query, scorer, k, &options)
        } else {
            self.index.search_exhaustive(&query, scorer, k, &options)
        }
        .expect("search")
    }
}

struct OursSystem<'a> {
    ours: &'a Ours,
    scorer: Bm25,
    pruned: bool,
    label: &'static str,
}

impl System for OursSystem<'_> {
    fn name(&self) -> String {
        self.label.to_owned()
    }
    fn hits(&self, text: &str, k: usize) -> usize {
        self.ours.search(text, &self.scorer, k, self.pruned).len()
    }
    fn ranking(&self, text: &str, k: usize) -> Vec<(String, f64)> {
        self.ours
            .search(text, &self.scorer, k, self.pruned)
            .into_iter()
            .map(|h| {
                let id = self.ours.index.external_id(h.doc).expect("live doc");
                (id.to_owned(), f64::from(h.score))
            })
            .collect()
    }
}

/// `Searcher::search` with one scorer, built once (outside the timing, like an index).
struct OursSearcherSystem<'a> {
    ours: &'a Ours,
    searcher: ImpactSearcher<'a, Bm25>,
}

impl OursSearcherSystem<'_> {
    fn search(&self, text: &str, k: usize) -> Vec<latent_terms::sparse_index::Hit> {
        let vocabulary = self.ours.index.vocabulary().expect("vocabulary attached");
        let query = vocabulary.query(&self.ours.analyzer, text);
        self.searcher
            .search(&query, k, &SearchOptions::default())
            .expect("search")
    }
}

impl System for OursSearcherSystem<'_> {
    fn name(&self) -> String {
        "ours searcher".to_owned()
    }
    fn hits(&self, text: &str, k: usize) -> usize {
        self.search(text, k).len()
    }
    fn ranking(&self, text: &str, k: usize) -> Vec<(String, f64)> {
        self.search(text, k)
            .into_iter()
            .map(|h| {
                let id = self.ours.index.external_id(h.doc).expect("live doc");
                (id.to_owned(), f64::from(h.score))
            })
            .collect()
    }
}

// --------------------------------------------------------------------- tantivy

struct Tantivy {
    searcher: Searcher,
    body: Field,
    tokenizer: RefCell<TextAnalyzer>,
    /// External id of each tantivy doc id (one segment).
    ids: Vec<String>,
}

impl Tantivy {
    fn build(docs: &[Document], stopwords: bool) -> Self {
        let tokenizer_name = if stopwords { "en_stem_stop" } else { "en_stem" };
        let mut schema = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(tokenizer_name)
            .set_index_option(IndexRecordOption::WithFreqs);
        let body = schema.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(indexing),
        );
        let ord = schema.add_u64_field("ord", FAST);
        let index = tantivy::Index::create_in_ram(schema.build());
        if stopwords {
            index.tokenizers().register(
                tokenizer_name,
                TextAnalyzer::builder(SimpleTokenizer::default())
                    .filter(RemoveLongFilter::limit(40))
                    .filter(LowerCaser)
                    .filter(StopWordFilter::remove(
                        ENGLISH_STOP_WORDS.iter().map(|w| (*w).to_owned()),
                    ))
                    .filter(Stemmer::new(Language::English))
                    .build(),
            );
        }
        let mut writer: IndexWriter = index
            .writer_with_num_threads(1, 512 << 20)
            .expect("tantivy writer");
        for (i, d) in docs.iter().enumerate() {
            writer
                .add_document(doc!(body => d.full_text(), ord => i as u64))
                .expect("tantivy add");
        }
        writer.commit().expect("tantivy commit");
        writer.wait_merging_threads().expect("tantivy merge");
        let searcher = index.reader().expect("tantivy reader").searcher();
        assert_eq!(
            searcher.segment_readers().len(),
            1,
            "expected a single tantivy segment"
        );
        let column = searcher
            .segment_reader(0)
            .fast_fields()
            .u64("ord")
            .expect("ord column");
        let ids = (0..searcher.segment_reader(0).max_doc())
            .map(|doc| {
                docs[column.first(doc).expect("ord value") as usize]
                    .id
                    .clone()
            })
            .collect();
        let tokenizer = index.tokenizer_for_field(body).expect("tokenizer");
        Tantivy {
            searcher,
            body,
            tokenizer: RefCell::new(tokenizer),
            ids,
        }
    }

    fn query(&self, text: &str) -> BooleanQuery {
        let mut terms = Vec::new();
        let mut tokenizer = self.tokenizer.borrow_mut();
        let mut stream = tokenizer.token_stream(text);
        stream.process(&mut |token| terms.push(Term::from_field_text(self.body, &token.text)));
        BooleanQuery::new_multiterms_query(terms)
    }

    fn search(&self, text: &str, k: usize, pruned: bool) -> Vec<(f32, tantivy::DocAddress)> {
        let query = self.query(text);
        let top = TopDocs::with_limit(k).order_by_score();
        if pruned {
            self.searcher.search(&query, &top).expect("tantivy search")
        } else {
            self.searcher
                .search(&query, &(Count, top))
                .expect("tantivy search")
                .1
        }
    }
}

struct TantivySystem<'a> {
    tantivy: &'a Tantivy,
    pruned: bool,
    label: &'static str,
}

impl System for TantivySystem<'_> {
    fn name(&self) -> String {
        self.label.to_owned()
    }
    fn hits(&self, text: &str, k: usize) -> usize {
        self.tantivy.search(text, k, self.pruned).len()
    }
    fn ranking(&self, text: &str, k: usize) -> Vec<(String, f64)> {
        self.tantivy
            .search(text, k, self.pruned)
            .into_iter()
            .map(|(score, addr)| {
                (
                    self.tantivy.ids[addr.doc_id as usize].clone(),
                    f64::from(score),
                )
            })
            .collect()
    }
}

// ------------------------------------------------------------------- reporting

fn ndcg10(system: &dyn System, queries: &[BeirQuery], qrels: &Qrels, k: usize) -> f64 {
    let mut run = Run::new("bench");
    for q in queries {
        let ranking = system.ranking(&q.text, k);
        run.extend_query(&q.id, ranking.iter().map(|(d, s)| (d.as_str(), *s)))
            .expect("valid run");
    }
    Evaluator::from_names(&["ndcg_cut.10"])
        .expect("measure")
        .average_complete(true)
        .evaluate(qrels, &run)
        .mean(Measure::NdcgCut(10))
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Interleaved passes over all queries; per system: median pass time and per-query
/// latencies.
fn side_by_side(systems: &[Box<dyn System + '_>], queries: &[BeirQuery], k: usize, rounds: usize) {
    let n = systems.len();
    let mut pass: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut per_query: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..rounds.max(1) {
        for j in 0..n {
            // Rotate the order so no system always runs right after the same one.
            let s = (j + round) % n;
            let start = Instant::now();
            for q in queries {
                let t = Instant::now();
                black_box(systems[s].hits(black_box(&q.text), k));
                per_query[s].push(t.elapsed().as_secs_f64());
            }
            pass[s].push(start.elapsed().as_secs_f64());
        }
    }
    let median_pass: Vec<f64> = pass
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            percentile(v, 50.0)
        })
        .collect();
    let reference = |label: &str| {
        systems
            .iter()
            .position(|s| s.name() == label)
            .map(|i| median_pass[i])
    };
    let tantivy_bmw = reference("tantivy BMW");
    let ours_pruned = reference("ours pruned");
    eprintln!(
        "\n#### top-{k}: {} queries, median of {rounds} interleaved passes, single thread\n",
        queries.len()
    );
    eprintln!(
        "| system | queries/s | ms/query (mean) | p50 ms | p99 ms | time ÷ tantivy BMW | time ÷ ours pruned |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, s) in systems.iter().enumerate() {
        let lat = &mut per_query[i];
        lat.sort_by(f64::total_cmp);
        let t = median_pass[i];
        let ratio = |r: Option<f64>| r.map_or("–".to_owned(), |r| format!("{:.2}", t / r));
        eprintln!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} |",
            s.name(),
            queries.len() as f64 / t,
            t * 1e3 / queries.len() as f64,
            percentile(lat, 50.0) * 1e3,
            percentile(lat, 99.0) * 1e3,
            ratio(tantivy_bmw),
            ratio(ours_pruned),
        );
    }
}

// ----------------------------------------------------------------------- bench

fn bench_scifact(c: &mut Criterion) {
    let dir = dataset_dir();
    let dataset = match BeirDataset::open(&dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "skipping bm25_scifact: SciFact not found at {} ({e}); set LT_BENCH_SCIFACT=DIR",
                dir.display()
            );
            return;
        }
    };
    let qrels = dataset.qrels("test").expect("qrels/test.tsv");
    let queries = dataset.queries_judged_in(&qrels).expect("queries");
    let docs: Vec<Document> = dataset
        .corpus()
        .expect("corpus")
        .collect::<Result<_, _>>()
        .expect("corpus documents");
    let rounds = env_usize("LT_BENCH_ROUNDS", 15);

    let start = Instant::now();
    let ours = Ours::build(&docs);
    let ours_build = start.elapsed();
    let start = Instant::now();
    let tantivy = Tantivy::build(&docs, false);
    let tantivy_build = start.elapsed();
    let tantivy_stop = Tantivy::build(&docs, true);
    let stats = ours.index.statistics().expect("statistics");
    let space = tantivy.searcher.space_usage().expect("space usage");
    eprintln!(
        "\nSciFact: {} documents, {} judged test queries (from {})",
        docs.len(),
        queries.len(),
        dir.display()
    );
    let rate = |d: Duration| docs.len() as f64 / d.as_secs_f64();
    eprintln!(
        "build (analysis included, 1 thread): ours {:.2} s ({:.0} docs/s, {} postings, {:.1} KiB saved); \
         tantivy {:.2} s ({:.0} docs/s, {:.1} KiB in RAM)",
        ours_build.as_secs_f64(),
        rate(ours_build),
        stats.num_postings,
        stats.index_size_bytes as f64 / 1024.0,
        tantivy_build.as_secs_f64(),
        rate(tantivy_build),
        space.total().get_bytes() as f64 / 1024.0,
    );

    let lucene = Bm25::default();
    let tantivy_params = Bm25::new(Bm25Params {
        k1: 1.2,
        b: 0.75,
        ..Bm25Params::default()
    })
    .expect("valid parameters");
    let start = Instant::now();
    let searcher = OursSearcherSystem {
        ours: &ours,
        searcher: ours.index.searcher(lucene).expect("searcher"),
    };
    eprintln!(
        "ours searcher: built in {:.3} s, {:.1} KiB of impact data",
        start.elapsed().as_secs_f64(),
        searcher.searcher.impact_bytes() as f64 / 1024.0
    );
    for k in KS {
        let mismatches = queries
            .iter()
            .filter(|q| searcher.search(&q.text, k) != ours.search(&q.text, &lucene, k, false))
            .count();
        assert_eq!(
            mismatches, 0,
            "searcher and exhaustive search disagree on {mismatches} queries at top-{k}"
        );
    }
    let systems: Vec<Box<dyn System + '_>> = vec![
        Box::new(searcher),
        Box::new(OursSystem {
            ours: &ours,
            scorer: lucene,
            pruned: true,
            label: "ours pruned",
        }),
        Box::new(OursSystem {
            ours: &ours,
            scorer: lucene,
            pruned: false,
            label: "ours exhaustive",
        }),
        Box::new(OursSystem {
            ours: &ours,
            scorer: tantivy_params,
            pruned: true,
            label: "ours pruned k1=1.2,b=0.75",
        }),
        Box::new(TantivySystem {
            tantivy: &tantivy,
            pruned: true,
            label: "tantivy BMW",
        }),
        Box::new(TantivySystem {
            tantivy: &tantivy,
            pruned: false,
            label: "tantivy exhaustive",
        }),
        Box::new(TantivySystem {
            tantivy: &tantivy_stop,
            pruned: true,
            label: "tantivy+stop BMW",
        }),
    ];

    // `LT_BENCH_SYSTEMS=ours` (comma-separated name fragments) keeps only the systems
    // named, for profiling one of them.
    let systems: Vec<Box<dyn System + '_>> = match std::env::var("LT_BENCH_SYSTEMS") {
        Ok(keep) => systems
            .into_iter()
            .filter(|s| keep.split(',').any(|k| s.name().contains(k.trim())))
            .collect(),
        Err(_) => systems,
    };

    // Correctness and quality, once, outside the timed part.
    for k in KS {
        for scorer in [lucene, tantivy_params] {
            let mismatches = queries
                .iter()
                .filter(|q| {
                    ours.search(&q.text, &scorer, k, true)
                        != ours.search(&q.text, &scorer, k, false)
                })
                .count();
            assert_eq!(
                mismatches, 0,
                "pruned and exhaustive search disagree on {mismatches} queries at top-{k}"
            );
        }
        // tantivy's two paths add the same term scores in different orders, so scores
        // differ in the last bits; compare the ranked doc ids and the largest score gap.
        let (mut differing, mut max_gap) = (0, 0f32);
        for q in &queries {
            let (a, b) = (
                tantivy.search(&q.text, k, true),
                tantivy.search(&q.text, k, false),
            );
            if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| x.1 != y.1) {
                differing += 1;
            }
            for (x, y) in a.iter().zip(&b) {
                max_gap = max_gap.max((x.0 - y.0).abs() / y.0.abs().max(1e-6));
            }
        }
        eprintln!(
            "top-{k}: ours pruned == exhaustive (bit-identical) on all {} queries; \
             tantivy BMW vs exhaustive: ranked ids differ on {differing} queries, max relative score gap {max_gap:.1e}",
            queries.len()
        );
    }
    eprintln!("\n| system | nDCG@10 (top-10 run) | nDCG@10 (top-1000 run) |");
    eprintln!("|---|---:|---:|");
    for s in &systems {
        eprintln!(
            "| {} | {:.4} | {:.4} |",
            s.name(),
            ndcg10(s.as_ref(), &queries, &qrels, 10),
            ndcg10(s.as_ref(), &queries, &qrels, 1000),
        );
    }
    // `LT_BENCH_K=10` times one depth only.
    let ks: Vec<usize> = match std::env::var("LT_BENCH_K")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(k) => vec![k],
        None => KS.to_vec(),
    };
    for &k in &ks {
        side_by_side(&systems, &queries, k, rounds);
    }
    eprintln!();

    for k in KS {
        let mut group = c.benchmark_group(format!("bm25_scifact/top{k}"));
        group.throughput(Throughput::Elements(queries.len() as u64));
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(4));
        for s in &systems {
            group.bench_function(s.name(), |b| {
                b.iter(|| {
                    for q in &queries {
                        black_box(s.hits(black_box(&q.text), k));
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_scifact);
criterion_main!(benches);
