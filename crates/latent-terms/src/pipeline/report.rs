//! The report of a pipeline run: `results.json` and `results.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use latent_terms_sparse_index::{Index, Query, Scorer};
use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::mismatch::MismatchSet;
use crate::pipeline::zipf::ZipfReport;
use crate::pipeline::{check_report_file, write_report_file};

/// Measures of one method, keyed as trec_eval prints them (`ndcg_cut_10`,
/// `recall_100`, …) plus `recip_rank@10` (MRR@10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodRow {
    /// Method name (`bm25`, `dense`, `clsr`, …).
    pub method: String,
    /// Measure → mean over the judged test queries.
    #[serde(flatten)]
    pub measures: BTreeMap<String, f64>,
}

impl MethodRow {
    /// A measure's value.
    pub fn get(&self, measure: &str) -> Option<f64> {
        self.measures.get(measure).copied()
    }
}

/// The parameters every method ran with, and where they came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChosenParams {
    /// Latents kept per document.
    pub doc_k: usize,
    /// Latents kept per query.
    pub query_k: usize,
    /// CL-SR `(k1, b, k2)`.
    pub clsr: (f32, f32, f32),
    /// BM25-over-latents `(k1, b)`.
    pub lt_bm25: (f32, f32),
    /// Latent method fused in the hybrid rows.
    pub hybrid_latent: String,
    /// Latent weight of `hybrid-linear`.
    pub linear_weight: f64,
    /// "tuned on qrels/train.tsv (N queries)" or "defaults (no tuning split)".
    pub source: String,
}

/// Mean exact query latency of one scorer over an index, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Top-10.
    pub top10_ms: f64,
    /// Top-1000.
    pub top1000_ms: f64,
}

impl Latency {
    /// Times every query once at top-10 and once at top-1000 (single thread) through a
    /// [`latent_terms_sparse_index::Searcher`], the path lexical and latent runs take
    /// (`LexicalIndex::run`, `LatentIndex::run`); preparing it (once per scorer, like
    /// loading the index) is not timed.
    pub(crate) fn measure_searcher(
        index: &Index,
        queries: &[(String, Query)],
        scorer: &dyn Scorer,
    ) -> Result<Self> {
        let opts = latent_terms_sparse_index::SearchOptions::default();
        let searcher = index.searcher(scorer)?;
        Self::time(queries, |q, k| searcher.search(q, k, &opts).map(drop))
    }

    fn time(
        queries: &[(String, Query)],
        mut search: impl FnMut(&Query, usize) -> latent_terms_sparse_index::Result<()>,
    ) -> Result<Self> {
        let mut time = |k: usize| -> Result<f64> {
            let start = Instant::now();
            for (_, q) in queries {
                search(q, k)?;
            }
            Ok(start.elapsed().as_secs_f64() * 1e3 / queries.len().max(1) as f64)
        };
        Ok(Latency {
            top10_ms: time(10)?,
            top1000_ms: time(1000)?,
        })
    }
}

/// The token-level representation's part of a report (`tokens` in `results.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenReport {
    /// SAE latents.
    pub d_sae: usize,
    /// Latents kept per token.
    pub k: usize,
    /// The constant the SAE scales its inputs by.
    pub input_scale: f64,
    /// The trainer's final training NMSE.
    #[serde(deserialize_with = "f64_or_nan")]
    pub training_nmse: f64,
    /// NMSE on the trainer's held-out token rows.
    pub validation_nmse: Option<f64>,
    /// Latents that never fired at the end of training, as a fraction.
    #[serde(deserialize_with = "f64_or_nan")]
    pub dead_fraction: f64,
    /// Token rows the SAE was trained on.
    pub training_rows: usize,
    /// What they were sampled from.
    pub training_corpus: String,
    /// Content tokens of the corpus.
    pub corpus_tokens: usize,
    /// The corpus's mean non-zero token activation (activation tf is divided by it).
    pub mean_activation: f64,
    /// Latents left out as stop latents (`tokens.stop_df`).
    #[serde(default)]
    pub stop_latents: usize,
    /// Unique latents per document.
    pub avg_latents_per_doc: f64,
    /// Unique latents per evaluated query.
    pub avg_latents_per_query: f64,
    /// Postings of the token index.
    pub postings: u64,
    /// Size of the token index file.
    pub index_bytes: u64,
    /// Latents with a document frequency > 0.
    pub latents_used: u64,
    /// FLOPs (expected multiplications per query–document pair).
    pub flops: f64,
    /// Exact BM25 query latency.
    pub latency: Latency,
    /// Scorer parameters and where they came from.
    pub params: crate::pipeline::tokens::TokenParams,
    /// The token SAE draws compared on the tuning split (`tokens.sae_draws`; empty
    /// when one SAE was used).
    #[serde(default)]
    pub draws: Vec<SaeDraw>,
}

/// One token SAE draw of a run with `tokens.sae_draws` > 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeDraw {
    /// Its training seed.
    pub seed: u64,
    /// NMSE on its held-out token rows.
    pub validation_nmse: Option<f64>,
    /// Tuning-split nDCG@10 of its tuned BM25 and CL-SR.
    pub tuned_ndcg10: Option<(f64, f64)>,
    /// Whether the run kept it (the highest mean of the two).
    pub chosen: bool,
}

impl ChosenParams {
    /// The parameters of a report whose pooled representation did not run.
    pub fn not_run() -> Self {
        ChosenParams {
            doc_k: 0,
            query_k: 0,
            clsr: (0.0, 0.0, 0.0),
            lt_bm25: (0.0, 0.0),
            hybrid_latent: String::new(),
            linear_weight: 0.0,
            source: "the pooled representation did not run".into(),
        }
    }
}

impl TokenReport {
    fn markdown(&self, s: &mut String) {
        let p = &self.params;
        let _ = writeln!(s, "\n## Token-level latent terms\n");
        let _ = writeln!(
            s,
            "TopK SAE over content-token hidden states: {} latents, k {} per token, inputs scaled by {:.4}; \
             trained on {} token rows: {}. The corpus holds {} tokens; tf = summed activation / {:.4} \
             (the corpus's mean non-zero activation).\n",
            self.d_sae,
            self.k,
            self.input_scale,
            self.training_rows,
            self.training_corpus,
            self.corpus_tokens,
            self.mean_activation
        );
        let _ = writeln!(s, "| training NMSE | validation NMSE | dead latents |");
        let _ = writeln!(s, "|---|---|---|");
        let _ = writeln!(
            s,
            "| {:.4} | {} | {:.1}% |",
            self.training_nmse,
            fmt(self.validation_nmse),
            100.0 * self.dead_fraction
        );
        let _ = writeln!(
            s,
            "\nParameters ({}): lt-tokens-bm25 k1 {}, b {}; lt-tokens-clsr k1 {}, b {}, k2 {}; \
             hybrid-tokens-rrf and hybrid-tokens-linear fuse lexical BM25 with lt-tokens-bm25 (linear \
             weight {}); hybrid-tokens-dense-rrf is RRF(lexical BM25, dense, lt-tokens-bm25).",
            p.source, p.bm25.0, p.bm25.1, p.clsr.0, p.clsr.1, p.clsr.2, p.linear_weight
        );
        if !self.draws.is_empty() {
            let _ = writeln!(
                s,
                "\nToken SAE draws compared on the tuning split (mean nDCG@10 of the tuned \
                 BM25 and CL-SR; the highest is kept):\n"
            );
            let _ = writeln!(
                s,
                "| seed | validation NMSE | tuning nDCG@10 BM25 | tuning nDCG@10 CL-SR | kept |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|");
            for d in &self.draws {
                let (bm25, clsr) = d.tuned_ndcg10.unzip();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    d.seed,
                    fmt(d.validation_nmse),
                    fmt(bm25),
                    fmt(clsr),
                    if d.chosen { "yes" } else { "" }
                );
            }
        }
    }
}

/// Everything a run measured. Serialised as `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Dataset name (its directory name).
    pub dataset: String,
    /// Documents in the corpus.
    pub docs: usize,
    /// Judged test queries evaluated (BEIR convention: only those are searched).
    pub queries: usize,
    /// One row per method.
    pub rows: Vec<MethodRow>,
    /// Reconstruction NMSE of the SAE (training k) on the corpus embeddings:
    /// Σ‖x − x̂‖² / Σ‖x − mean‖².
    #[serde(deserialize_with = "f64_or_nan")]
    pub nmse: f64,
    /// The trainer's final training NMSE.
    #[serde(deserialize_with = "f64_or_nan")]
    pub training_nmse: f64,
    /// NMSE on the trainer's held-out rows, when some were held out.
    pub validation_nmse: Option<f64>,
    /// Latents that never fired at the end of training, as a fraction.
    #[serde(deserialize_with = "f64_or_nan")]
    pub dead_fraction: f64,
    /// Mean per-query Spearman correlation between the dense and dense-reconstructed
    /// rankings (top 100 of each, shared documents).
    pub spearman_dense_vs_reconstructed: Option<f64>,
    /// Latents per document in the latent-term index.
    pub avg_latents_per_doc: f64,
    /// Latents per evaluated query.
    pub avg_latents_per_query: f64,
    /// FLOPs (expected multiplications per query–document pair) of the latent index.
    pub flops: f64,
    /// The same for the lexical index.
    pub lexical_flops: f64,
    /// Size of the latent-term index file.
    pub index_bytes: u64,
    /// Size of the lexical index file.
    pub lexical_index_bytes: u64,
    /// Latents with a document frequency > 0, out of `d_sae`.
    pub latents_used: u64,
    /// SAE latents.
    pub d_sae: usize,
    /// The SAE's kind as its checkpoint states it (a given SAE's, not the config's).
    #[serde(default)]
    pub sae_kind: String,
    /// The SAE's training k as its checkpoint states it.
    #[serde(default)]
    pub sae_k: usize,
    /// Wall-clock seconds per stage (0 when the stage came from the cache).
    pub stage_seconds: BTreeMap<String, f64>,
    /// Stages whose artefacts came from the cache.
    pub cached_stages: Vec<String>,
    /// What the SAE was trained on.
    pub sae_training_corpus: String,
    /// Rows the SAE was trained on.
    pub sae_training_rows: usize,
    /// The parameters used and where they came from.
    pub params: ChosenParams,
    /// Zipf analysis.
    pub zipf: ZipfReport,
    /// Mismatch sets at BM25 depths 1000, 100, 10.
    pub mismatch: Vec<MismatchSet>,
    /// The config of the run.
    pub config: PipelineConfig,
    /// Cache keys of the stages.
    pub cache_keys: BTreeMap<String, String>,
    /// Where the run's inputs and artefacts are, so later tools (the latent explorer,
    /// `latent-terms explain`) can reopen them without re-running anything.
    #[serde(default)]
    pub artifacts: Artifacts,
    /// The token-level representation, when it ran.
    #[serde(default)]
    pub tokens: Option<TokenReport>,
    /// Exact lexical BM25 query latency.
    #[serde(default)]
    pub lexical_latency: Latency,
    /// Exact BM25 query latency over the pooled latent index, when it ran.
    #[serde(default)]
    pub pooled_latency: Option<Latency>,
}

/// Paths of a run's inputs and cached artefacts (absolute where the run could make them so).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifacts {
    /// The BEIR dataset directory.
    pub dataset: String,
    /// Corpus embeddings store.
    pub corpus_embeddings: String,
    /// Query embeddings store.
    pub query_embeddings: String,
    /// SAE weights (`.safetensors`, with its `.cfg.json`).
    pub sae: String,
    /// Latent-term index (documents encoded at the chosen `doc_k`).
    pub latent_index: String,
    /// Lexical BM25 index.
    pub lexical_index: String,
    /// Directory of the evaluated runs (`<method>.run`).
    pub runs: String,
    /// The pooled representation's test queries as weighted latent queries (JSON lines
    /// that `search`, `export` and `index bench` read).
    #[serde(default)]
    pub latent_queries: String,
    /// The token-level SAE.
    #[serde(default)]
    pub token_sae: String,
    /// The token-level latent-term index.
    #[serde(default)]
    pub token_index: String,
    /// The token-level test queries as weighted latent queries.
    #[serde(default)]
    pub token_queries: String,
    /// Token store of the corpus.
    #[serde(default)]
    pub corpus_tokens: String,
    /// Token store of the queries.
    #[serde(default)]
    pub query_tokens: String,
}

const COLUMNS: [(&str, &str); 8] = [
    ("ndcg_cut_10", "nDCG@10"),
    ("map", "MAP"),
    ("recip_rank@10", "MRR@10"),
    ("recall_2", "R@2"),
    ("recall_10", "R@10"),
    ("recall_20", "R@20"),
    ("recall_100", "R@100"),
    ("recall_1000", "R@1000"),
];

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.4}"))
}

impl Report {
    /// The row of `method`.
    pub fn row(&self, method: &str) -> Option<&MethodRow> {
        self.rows.iter().find(|r| r.method == method)
    }

    /// The main table as markdown: one row per method.
    pub fn table(&self) -> String {
        let mut s = String::from("| method |");
        for (_, label) in COLUMNS {
            let _ = write!(s, " {label} |");
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(COLUMNS.len()));
        s.push('\n');
        for row in &self.rows {
            let _ = write!(s, "| {} |", row.method);
            for (key, _) in COLUMNS {
                let _ = write!(s, " {} |", fmt(row.get(key)));
            }
            s.push('\n');
        }
        s
    }

    /// The whole report as markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Latent Terms on {}\n", self.dataset);
        let _ = writeln!(
            s,
            "{} documents, {} judged `{}` queries (only judged queries are searched; a query without hits counts 0).\n",
            self.docs, self.queries, self.config.test_split
        );
        s.push_str(&self.table());
        if self.d_sae > 0 {
            self.pooled_markdown(&mut s);
        }
        if let Some(t) = &self.tokens {
            t.markdown(&mut s);
        }
        let _ = writeln!(s, "\n## Efficiency\n");
        let _ = writeln!(
            s,
            "| index | terms/doc | terms/query | vocabulary used | postings / FLOPs | index bytes | top-10 ms | top-1000 ms |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        if self.d_sae > 0 {
            let l = self.pooled_latency.unwrap_or_default();
            let _ = writeln!(
                s,
                "| pooled latent terms | {:.1} | {:.1} | {} / {} | FLOPs {:.2} | {} | {:.3} | {:.3} |",
                self.avg_latents_per_doc,
                self.avg_latents_per_query,
                self.latents_used,
                self.d_sae,
                self.flops,
                self.index_bytes,
                l.top10_ms,
                l.top1000_ms
            );
        }
        if let Some(t) = &self.tokens {
            let _ = writeln!(
                s,
                "| token-level latent terms | {:.1} | {:.1} | {} / {} | {} postings, FLOPs {:.2} | {} | {:.3} | {:.3} |",
                t.avg_latents_per_doc,
                t.avg_latents_per_query,
                t.latents_used,
                t.d_sae,
                t.postings,
                t.flops,
                t.index_bytes,
                t.latency.top10_ms,
                t.latency.top1000_ms
            );
        }
        let _ = writeln!(
            s,
            "| lexical | – | – | {} | FLOPs {:.2} | {} | {:.3} | {:.3} |",
            self.zipf.lexical.terms_used,
            self.lexical_flops,
            self.lexical_index_bytes,
            self.lexical_latency.top10_ms,
            self.lexical_latency.top1000_ms
        );
        let _ = writeln!(s, "\n## Zipf analysis\n");
        let _ = writeln!(s, "![document frequency by rank](zipf.png)\n");
        let _ = writeln!(
            s,
            "| vocabulary | terms used | exponent (all ranks) | exponent (top 1000) | max df / N |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for (name, c) in [
            ("lexical", &self.zipf.lexical),
            ("latent", &self.zipf.latent),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {:.3} |",
                c.terms_used,
                fmt(c.exponent),
                fmt(c.exponent_head),
                c.max_df_fraction
            );
        }
        let _ = writeln!(s, "\n## Mismatch set (MRR@10)\n");
        let _ = writeln!(
            s,
            "Judged queries none of whose relevant documents lexical BM25 ranks in its top N.\n"
        );
        let _ = write!(s, "| BM25 misses in top | queries |");
        let methods: Vec<&str> = self.rows.iter().map(|r| r.method.as_str()).collect();
        for m in &methods {
            let _ = write!(s, " {m} |");
        }
        let _ = writeln!(s, "\n|---|---|{}", "---|".repeat(methods.len()));
        for set in &self.mismatch {
            let _ = write!(s, "| {} | {} |", set.depth, set.queries);
            for (_, v) in &set.mrr_at_10 {
                let _ = write!(s, " {} |", fmt(*v));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\n## Stage times (s)\n");
        let _ = writeln!(s, "| stage | seconds |\n|---|---|");
        for (stage, secs) in &self.stage_seconds {
            let cached = if self.cached_stages.contains(stage) {
                " (cached)"
            } else {
                ""
            };
            let _ = writeln!(s, "| {stage}{cached} | {secs:.1} |");
        }
        s
    }

    /// The pooled representation's parameters and SAE.
    fn pooled_markdown(&self, s: &mut String) {
        let p = &self.params;
        let _ = writeln!(
            s,
            "\nParameters ({}): documents top-{} latents, queries top-{}; CL-SR k1 {}, b {}, k2 {}; \
             lt-bm25 k1 {}, b {}; hybrids fuse lexical BM25 with `{}` (RRF k {}, linear weight {}).",
            p.source,
            p.doc_k,
            p.query_k,
            p.clsr.0,
            p.clsr.1,
            p.clsr.2,
            p.lt_bm25.0,
            p.lt_bm25.1,
            p.hybrid_latent,
            self.config.scoring.rrf_k,
            p.linear_weight
        );
        let _ = writeln!(s, "\n## SAE\n");
        let _ = writeln!(
            s,
            "{} {} latents, trained k {}, on {} rows: {}.\n",
            self.sae_kind, self.d_sae, self.sae_k, self.sae_training_rows, self.sae_training_corpus
        );
        let _ = writeln!(
            s,
            "| NMSE (corpus) | training NMSE | validation NMSE | dead latents | Spearman dense vs reconstructed |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| {:.4} | {:.4} | {} | {:.1}% | {} |",
            self.nmse,
            self.training_nmse,
            fmt(self.validation_nmse),
            100.0 * self.dead_fraction,
            fmt(self.spearman_dense_vs_reconstructed)
        );
    }

    /// Writes `results.json` and `results.md` into `dir` (created if needed), atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        write_report_file(&dir.join("results.json"), json.as_bytes())?;
        write_atomic(&dir.join("results.md"), self.markdown().as_bytes())
    }

    /// Reads a `results.json` and checks it against the seal [`Report::write`] left.
    pub fn load(path: &Path) -> Result<Self> {
        check_report_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }
}

/// Writes queries as weighted latent queries, one JSON object per line
/// (`{"id": ..., "vector": {"l17": 0.4}}`), the input of `search`, `export` and
/// `index bench`.
pub(crate) fn write_weighted_queries(path: &Path, queries: &[(String, Query)]) -> Result<()> {
    let mut out = String::new();
    for (id, q) in queries {
        let vector: serde_json::Map<String, serde_json::Value> = q
            .iter()
            .map(|(t, w)| {
                (
                    latent_terms_sparse_index::export::latent_term_name(t),
                    serde_json::json!(w),
                )
            })
            .collect();
        out.push_str(&serde_json::json!({"id": id, "vector": vector}).to_string());
        out.push('\n');
    }
    write_report_file(path, out.as_bytes())
}

/// JSON writes NaN ("not measured") as `null`; read it back as NaN.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Writes `bytes` to `path` atomically (`latent_terms_io`), with this crate's error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    latent_terms_io::write_bytes(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pipeline::zipf::ZipfCurve;

    pub(crate) fn sample() -> Report {
        let curve = ZipfCurve {
            terms_used: 3,
            exponent: Some(1.0),
            exponent_head: None,
            max_df_fraction: 0.5,
            df_at: vec![(1, 2)],
        };
        let row = |m: &str, v: f64| MethodRow {
            method: m.into(),
            measures: [
                ("ndcg_cut_10".to_owned(), v),
                ("recip_rank@10".to_owned(), v / 2.0),
            ]
            .into_iter()
            .collect(),
        };
        Report {
            dataset: "toy".into(),
            docs: 2,
            queries: 1,
            rows: vec![row("bm25", 0.5), row("clsr", 0.25)],
            nmse: 0.1,
            training_nmse: 0.09,
            validation_nmse: None,
            dead_fraction: 0.0,
            spearman_dense_vs_reconstructed: Some(0.8),
            avg_latents_per_doc: 64.0,
            avg_latents_per_query: 32.0,
            flops: 1.5,
            lexical_flops: 0.5,
            index_bytes: 100,
            lexical_index_bytes: 50,
            latents_used: 3,
            d_sae: 8,
            sae_kind: "topk".into(),
            sae_k: 4,
            stage_seconds: [("encode".to_owned(), 1.0)].into_iter().collect(),
            cached_stages: vec!["encode".into()],
            sae_training_corpus: "toy".into(),
            sae_training_rows: 3,
            params: ChosenParams {
                doc_k: 64,
                query_k: 32,
                clsr: (0.6, 0.75, 1.5),
                lt_bm25: (0.9, 0.4),
                hybrid_latent: "clsr".into(),
                linear_weight: 0.5,
                source: "defaults".into(),
            },
            zipf: ZipfReport {
                lexical: curve.clone(),
                latent: curve,
            },
            mismatch: vec![MismatchSet {
                depth: 10,
                queries: 1,
                mrr_at_10: vec![("bm25".into(), Some(0.0)), ("clsr".into(), None)],
            }],
            config: PipelineConfig::default(),
            cache_keys: BTreeMap::new(),
            artifacts: Artifacts::default(),
            tokens: None,
            lexical_latency: Latency::default(),
            pooled_latency: None,
        }
    }

    #[test]
    fn writes_json_with_the_documented_keys_and_markdown() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample();
        report.write(dir.path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["dataset"], "toy");
        assert_eq!(json["rows"][0]["method"], "bm25");
        assert_eq!(json["rows"][0]["ndcg_cut_10"], 0.5);
        assert_eq!(json["rows"][1]["recip_rank@10"], 0.125);
        for key in [
            "nmse",
            "spearman_dense_vs_reconstructed",
            "avg_latents_per_doc",
            "flops",
            "index_bytes",
            "latents_used",
            "stage_seconds",
            "sae_training_corpus",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(
            Report::load(&dir.path().join("results.json")).unwrap(),
            report
        );
        // A run without the pooled representation writes its NaNs as null; they load back.
        let mut tokens_only = report.clone();
        tokens_only.nmse = f64::NAN;
        tokens_only.training_nmse = f64::NAN;
        tokens_only.dead_fraction = f64::NAN;
        tokens_only.write(dir.path()).unwrap();
        let back = Report::load(&dir.path().join("results.json")).unwrap();
        assert!(back.nmse.is_nan() && back.training_nmse.is_nan() && back.dead_fraction.is_nan());
        let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
        assert!(md.contains("| bm25 | 0.5000 | – | 0.2500 |"), "{md}");
        assert!(md.contains("| encode (cached) | 1.0 |"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn an_edited_or_unsealed_results_json_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        sample().write(dir.path()).unwrap();
        let path = dir.path().join("results.json");
        let text = std::fs::read_to_string(&path).unwrap();
        // Same length, another number: only the seal can tell.
        std::fs::write(&path, text.replacen("0.125", "0.925", 1)).unwrap();
        let err = Report::load(&path).unwrap_err().to_string();
        assert!(err.contains("changed"), "{err}");
        std::fs::remove_file(dir.path().join("results.json.entry.json")).unwrap();
        let err = Report::load(&path).unwrap_err().to_string();
        assert!(err.contains("no readable seal"), "{err}");
    }
}
