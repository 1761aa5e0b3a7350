//! `latent-terms export`, `import-ciff` and `search`: serving an index from other engines
//! and scoring indexes that come from them (docs/scale-out.md).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use latent_terms::eval::{Evaluator, Measure, Qrels, Run, beir};
use latent_terms::sparse_index::export::{
    self, OpenSearchOptions, Quantizer, TermNames, WeightedQuery,
};
use latent_terms::sparse_index::{
    Analyzer, Bm25, Bm25Params, ClSr, DotProduct, Index, Scorer, SearchOptions,
};

use super::CliResult;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// Anserini JsonVectorCollection (corpus/docs.jsonl) + pretokenized topics (topics.tsv).
    Anserini,
    /// Elasticsearch/OpenSearch: mapping.json, bulk.ndjson, queries.msearch.ndjson.
    Opensearch,
    /// One CIFF file.
    Ciff,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ScorerName {
    /// Dot product of stored weights: impacts are the weights themselves.
    Dot,
    /// BM25 (Lucene variant, --k1, --b).
    Bm25,
    /// CL-SR with its default parameters (paper variant).
    Clsr,
}

/// Scorer options shared by export and search.
#[derive(Args)]
pub(crate) struct ScorerArgs {
    /// Scoring function whose factorisation is exported (impact = idf · doc factor,
    /// query weight = query factor).
    #[arg(long, value_enum, default_value = "dot")]
    scorer: ScorerName,
    /// BM25 term-frequency saturation.
    #[arg(long, default_value_t = 0.9)]
    k1: f32,
    /// BM25 length normalisation.
    #[arg(long, default_value_t = 0.4)]
    b: f32,
}

impl ScorerArgs {
    fn scorer(&self) -> CliResult<Box<dyn Scorer>> {
        Ok(match self.scorer {
            ScorerName::Dot => Box::new(DotProduct),
            ScorerName::Bm25 => Box::new(Bm25::new(Bm25Params {
                k1: self.k1,
                b: self.b,
                ..Bm25Params::default()
            })?),
            ScorerName::Clsr => Box::new(ClSr::default()),
        })
    }
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// Index file (from `bm25 --save-index`, `import-ciff` or `Index::save`).
    #[arg(long)]
    index: PathBuf,
    /// Target engine format.
    #[arg(long, value_enum)]
    format: Format,
    /// Output: a directory for anserini and opensearch, a file for ciff.
    #[arg(long)]
    out: PathBuf,
    /// Queries to export alongside (JSON lines: {"id", "vector": {term: weight}}, or a BEIR
    /// queries.jsonl with "text" for lexical indexes). Not used by ciff.
    #[arg(long)]
    queries: Option<PathBuf>,
    #[command(flatten)]
    scorer: ScorerArgs,
    /// Document impacts become round(impact × SCALE). Default 100 for anserini; for ciff
    /// the stored weights must then be whole numbers; opensearch writes floats without it.
    #[arg(long)]
    scale: Option<f32>,
    /// Query weights become round(weight × QUERY_SCALE) (default: as --scale for anserini,
    /// floats for opensearch; lexical query tfs are whole numbers already, use 1).
    #[arg(long)]
    query_scale: Option<f32>,
    /// OpenSearch index name.
    #[arg(long, default_value = "latent-terms")]
    index_name: String,
    /// OpenSearch rank_features field.
    #[arg(long, default_value = "latent_terms")]
    field: String,
    /// Hits per query in the OpenSearch query bodies.
    #[arg(long, default_value_t = 1000)]
    size: usize,
}

pub(crate) fn read_queries(path: Option<&Path>, index: &Index) -> CliResult<Vec<WeightedQuery>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    latent_terms::pipeline::check_seal_if_present(path)?;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let analyzer = Analyzer::english();
    Ok(export::read_weighted_queries(
        BufReader::new(file),
        TermNames::for_index(index),
        Some(&analyzer),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?)
}

fn quantizer(scale: Option<f32>) -> CliResult<Option<Quantizer>> {
    Ok(scale.map(Quantizer::new).transpose()?)
}

pub(crate) fn export(args: &ExportArgs) -> CliResult {
    let index = Index::open(&args.index)?;
    let scorer = args.scorer.scorer()?;
    let queries = read_queries(args.queries.as_deref(), &index)?;
    match args.format {
        Format::Anserini => {
            let doc = Quantizer::new(args.scale.unwrap_or(100.0))?;
            let query = Quantizer::new(args.query_scale.or(args.scale).unwrap_or(100.0))?;
            let s = export::write_anserini(&index, &*scorer, &queries, doc, query, &args.out)?;
            eprintln!(
                "anserini: {} documents, {} postings ({} quantized to 0 and left out), {} topics ({} queries without terms left out) -> {}/corpus/docs.jsonl, {}/topics.tsv",
                s.documents,
                s.postings,
                s.dropped_postings,
                s.queries,
                s.empty_queries,
                args.out.display(),
                args.out.display()
            );
        }
        Format::Opensearch => {
            let options = OpenSearchOptions {
                index_name: args.index_name.clone(),
                field: args.field.clone(),
                doc_quantizer: quantizer(args.scale)?,
                query_quantizer: quantizer(args.query_scale)?,
                size: args.size,
            };
            let s = export::write_opensearch(&index, &*scorer, &queries, &options, &args.out)?;
            eprintln!(
                "opensearch: {} documents, {} features ({} quantized to 0 and left out), {} queries -> {}/{{mapping.json,bulk.ndjson,queries.msearch.ndjson,queries.ids}}",
                s.documents,
                s.postings,
                s.dropped_postings,
                s.queries,
                args.out.display()
            );
        }
        Format::Ciff => {
            if args.queries.is_some() {
                return Err(
                    "CIFF holds no queries; export them with --format anserini or opensearch"
                        .into(),
                );
            }
            let description = format!(
                "latent-terms {} export of {}",
                env!("CARGO_PKG_VERSION"),
                args.index.display()
            );
            let s = export::write_ciff(
                &index,
                &*scorer,
                quantizer(args.scale)?,
                &description,
                &args.out,
            )?;
            eprintln!(
                "ciff: {} documents, {} postings lists, {} postings ({} quantized to 0 and left out) -> {}",
                s.documents,
                s.postings_lists,
                s.postings,
                s.dropped_postings,
                args.out.display()
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct ImportCiffArgs {
    /// A CIFF file (Anserini's, PISA's or ours); `.gz` files are decompressed.
    file: PathBuf,
    /// Where to save the index (one file, the format of docs/index-format.md).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn import_ciff(args: &ImportCiffArgs) -> CliResult {
    // Every member of a multi-member gzip; gzip is told by its magic bytes, not the name.
    let ciff =
        export::read_ciff_file(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let index = export::ciff_to_index(&ciff)?;
    index.save(&args.out)?;
    let stats = index.statistics()?;
    eprintln!(
        "imported {} documents, {} terms ({}), {} postings -> {}",
        stats.num_docs,
        index.term_ids().len(),
        if index.vocabulary().is_some() {
            "words, vocabulary attached"
        } else {
            "latent terms l<id>"
        },
        stats.num_postings,
        args.out.display()
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// Index file.
    #[arg(long)]
    index: PathBuf,
    /// Queries (JSON lines, as for `export --queries`).
    #[arg(long)]
    queries: PathBuf,
    #[command(flatten)]
    scorer: ScorerArgs,
    /// Search what an engine serving the export holds instead: impacts quantized as
    /// round(impact × SCALE), query weights as round(weight × --query-scale), dot product.
    #[arg(long)]
    quantize: Option<f32>,
    /// Query scale for --quantize (default: the same as --quantize); with --feature-field
    /// and no --query-scale, query boosts stay floats.
    #[arg(long)]
    query_scale: Option<f32>,
    /// Search what an Elasticsearch/OpenSearch rank_features field holds instead: impacts
    /// (quantized by --quantize if given) with Lucene FeatureField's 9 significant bits,
    /// dot product with the query boosts.
    #[arg(long)]
    feature_field: bool,
    /// Where to write the TREC run.
    #[arg(long)]
    run: PathBuf,
    /// Documents retrieved per query.
    #[arg(long, default_value_t = 1000)]
    top: usize,
    /// Qrels to evaluate the run with (TREC, or BEIR `.tsv`; prints nDCG@10, R@100, R@1000).
    #[arg(long)]
    qrels: Option<PathBuf>,
}

pub(crate) fn search(args: &SearchArgs) -> CliResult {
    let index = Index::open(&args.index)?;
    let scorer = args.scorer.scorer()?;
    let queries = read_queries(Some(&args.queries), &index)?;
    if index.num_docs() == 0 {
        return Err(format!("{}: the index holds no documents", args.index.display()).into());
    }
    if queries.is_empty() {
        return Err(format!("{}: no queries to search", args.queries.display()).into());
    }
    let mut run = Run::new(match (args.feature_field, args.quantize) {
        (true, _) => "latent-terms-feature-field",
        (false, Some(_)) => "latent-terms-quantized",
        (false, None) => "latent-terms",
    });
    let options = SearchOptions::default();
    let mut push = |ix: &Index, id: &str, hits: Vec<latent_terms::sparse_index::Hit>| {
        let hits: Vec<(&str, f64)> = hits
            .iter()
            .filter_map(|h| ix.external_id(h.doc).map(|d| (d, f64::from(h.score))))
            .collect();
        run.extend_query(id, hits)
    };
    if args.query_scale.is_some() && args.quantize.is_none() && !args.feature_field {
        return Err("--query-scale needs --quantize or --feature-field".into());
    }
    if args.feature_field {
        let served = export::feature_field_index(&index, &*scorer, quantizer(args.quantize)?)?;
        let query_scale = quantizer(args.query_scale)?;
        // One searcher per run of queries: prepared once, then exact and several times
        // faster per query than `Index::search` (bit-identical hits).
        let searcher = served.searcher(DotProduct)?;
        for q in &queries {
            let query = match query_scale {
                Some(qs) => export::quantized_query(&q.query, &*scorer, qs)?,
                None => latent_terms::sparse_index::Query::new(export::query_weights(
                    &q.query, &*scorer,
                ))?,
            };
            let hits = searcher.search(&query, args.top, &options)?;
            push(&served, &q.id, hits)?;
        }
    } else {
        match args.quantize {
            Some(scale) => {
                let doc = Quantizer::new(scale)?;
                let query = Quantizer::new(args.query_scale.unwrap_or(scale))?;
                let served = export::quantized_impact_index(&index, &*scorer, doc)?;
                let searcher = served.searcher(DotProduct)?;
                for q in &queries {
                    let query = export::quantized_query(&q.query, &*scorer, query)?;
                    let hits = searcher.search(&query, args.top, &options)?;
                    push(&served, &q.id, hits)?;
                }
            }
            None => {
                let searcher = index.searcher(&*scorer)?;
                for q in &queries {
                    let hits = searcher.search(&q.query, args.top, &options)?;
                    push(&index, &q.id, hits)?;
                }
            }
        }
    }
    run.save(&args.run, None)?;
    eprintln!("{} queries -> {}", queries.len(), args.run.display());
    if let Some(path) = &args.qrels {
        let qrels = if path.extension().is_some_and(|e| e == "tsv") {
            beir::qrels_from_tsv_path(path)?
        } else {
            Qrels::from_path(path)?
        };
        let eval =
            Evaluator::from_names(&["ndcg_cut.10", "recall.100,1000"])?.evaluate(&qrels, &run);
        let mean = |m| eval.mean(m).unwrap_or(0.0);
        println!(
            "nDCG@10 {:.4}  R@100 {:.4}  R@1000 {:.4}",
            mean(Measure::NdcgCut(10)),
            mean(Measure::Recall(100)),
            mean(Measure::Recall(1000))
        );
    }
    Ok(())
}
