//! The report of a pipeline run: `results.json` and `results.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::mismatch::MismatchSet;
use crate::pipeline::zipf::ZipfReport;

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
    pub nmse: f64,
    /// The trainer's final training NMSE.
    pub training_nmse: f64,
    /// NMSE on the trainer's held-out rows, when some were held out.
    pub validation_nmse: Option<f64>,
    /// Latents that never fired at the end of training, as a fraction.
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
            "{} {} latents, trained k {}, {} epochs on {} rows: {}.\n",
            self.config.sae.kind,
            self.d_sae,
            self.config.sae.k,
            self.config.sae.epochs,
            self.sae_training_rows,
            self.sae_training_corpus
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
        let _ = writeln!(s, "\n## Efficiency\n");
        let _ = writeln!(
            s,
            "| index | terms/doc | terms/query | vocabulary used | FLOPs | index bytes |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| latent terms | {:.1} | {:.1} | {} / {} | {:.2} | {} |",
            self.avg_latents_per_doc,
            self.avg_latents_per_query,
            self.latents_used,
            self.d_sae,
            self.flops,
            self.index_bytes
        );
        let _ = writeln!(
            s,
            "| lexical | – | – | {} | {:.2} | {} |",
            self.zipf.lexical.terms_used, self.lexical_flops, self.lexical_index_bytes
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

    /// Writes `results.json` and `results.md` into `dir` (created if needed), atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&dir.join("results.json"), json.as_bytes())?;
        write_atomic(&dir.join("results.md"), self.markdown().as_bytes())
    }

    /// Reads a `results.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e| Error::io(path, e);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
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
        let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
        assert!(md.contains("| bm25 | 0.5000 | – | 0.2500 |"), "{md}");
        assert!(md.contains("| encode (cached) | 1.0 |"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
