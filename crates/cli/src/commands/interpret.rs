//! Interpretability and control: `cards`, `explain`, `steer`, `intrusion`, `explore`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use latent_terms::encoders::{Embeddings, EmbeddingsStore, Metric, SearchOptions, search};
use latent_terms::eval::Qrels;
use latent_terms::eval::beir::{BeirDataset, trec_safe_id};
use latent_terms::interpret::cards::{CardOptions, CardSet, attach_titles, cards, num_docs};
use latent_terms::interpret::collection::{Collection, ScorerKind};
use latent_terms::interpret::describe::{Descriptions, LatentDescriber, llm_prompt};
use latent_terms::interpret::explain::{
    ForwardIndex, MatchExplanation, explain_match, simulate_rankings,
};
use latent_terms::interpret::explorer::{QueryView, ResultView, Site, write_site};
use latent_terms::interpret::intrusion::{
    CentroidJudge, IntrusionOptions, Judge, LexicalJudge, intrusion_items, random_items,
    run_intrusion,
};
use latent_terms::interpret::snippet;
use latent_terms::interpret::steer::{
    Edit, SteeringConfig, edit_code, edit_query, steer_embedding, steering_experiment,
};
use latent_terms::interpret::tokens::{
    CardOptions as TokenCardOptions, TokenCard, TokenRun, WordHit,
};
use latent_terms::pipeline::{LatentIndex, code_to_query, write_atomic};
use latent_terms::sae::{EncodeOptions, SaeEncoder, SparseCode};
use latent_terms::sparse_index::SearchOptions as SparseOptions;

use super::CliResult;

#[derive(Args)]
pub(crate) struct CardsArgs {
    /// Report directory of `latent-terms run` (reads results.json's artifacts).
    #[arg(long)]
    report: PathBuf,
    /// Output JSON file of cards.
    #[arg(long)]
    out: PathBuf,
    /// Only these latents (comma-separated); default every latent with a document.
    #[arg(long, value_delimiter = ',')]
    latents: Vec<u32>,
    /// Top-activating documents per card (default 10), or words with --tokens (default 20).
    #[arg(long)]
    top: Option<usize>,
    /// Cards of the token-level SAE (`run --representation tokens|both`): each latent's
    /// top-activating words highlighted in their sentences, and its class (lexical,
    /// narrow or broad; docs/interpretability.md).
    #[arg(long)]
    tokens: bool,
    /// Words of context on each side of a highlighted word (with --tokens).
    #[arg(long, default_value_t = 12)]
    window: usize,
    /// Descriptions file (JSON keyed by latent id) that replaces the keyword descriptions.
    #[arg(long)]
    descriptions: Option<PathBuf>,
    /// Also write the cards' descriptions as a descriptions file.
    #[arg(long)]
    export_descriptions: Option<PathBuf>,
    /// Also write one LLM prompt per latent (JSON lines `{"latent", "prompt"}`) for
    /// descriptions written elsewhere; import the answers with --descriptions.
    #[arg(long)]
    prompts: Option<PathBuf>,
}

fn load_descriptions(path: Option<&Path>) -> CliResult<Option<Descriptions>> {
    Ok(match path {
        Some(p) => Some(Descriptions::load(p)?),
        None => None,
    })
}

/// Cards of a collection with keyword descriptions, overridden by imported ones.
fn described_cards(
    c: &Collection,
    options: &CardOptions,
    imported: Option<&Descriptions>,
) -> CliResult<Vec<latent_terms::interpret::cards::LatentCard>> {
    let mut out = cards(&c.index, options)?;
    c.keyword_describer().describe_all(&mut out)?;
    if let Some(d) = imported {
        d.describe_all(&mut out)?;
    }
    attach_titles(&mut out, &c.titles());
    Ok(out)
}

pub(crate) fn cards_cmd(args: &CardsArgs) -> CliResult {
    if args.tokens {
        return token_cards_cmd(args);
    }
    let c = Collection::open(&args.report)?;
    let imported = load_descriptions(args.descriptions.as_deref())?;
    let options = CardOptions {
        top: args.top.unwrap_or(10),
        latents: (!args.latents.is_empty()).then(|| args.latents.clone()),
    };
    let list = described_cards(&c, &options, imported.as_ref())?;
    let set = CardSet {
        num_docs: num_docs(&c.index)?,
        cards: list,
    };
    set.save(&args.out)?;
    if let Some(p) = &args.export_descriptions {
        Descriptions::from_cards(&set.cards).save(p)?;
    }
    if let Some(p) = &args.prompts {
        let mut lines = String::new();
        for card in &set.cards {
            let passages: Vec<String> = card
                .top_docs
                .iter()
                .map(|d| c.docs.get(&d.id).map(|x| x.full_text()).unwrap_or_default())
                .collect();
            let line =
                serde_json::json!({"latent": card.latent, "prompt": llm_prompt(card, &passages)});
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        write_atomic(p, lines.as_bytes())?;
    }
    for card in set.cards.iter().take(10) {
        println!(
            "latent {:>5}  df {:>5}  idf {:>6.3}  {}",
            card.latent,
            card.doc_freq,
            card.idf,
            card.description.as_ref().map_or("", |d| d.text.as_str())
        );
    }
    eprintln!("{} cards -> {}", set.cards.len(), args.out.display());
    Ok(())
}

/// `cards --tokens`: token cards of every latent that fires, as JSON, with the class
/// counts; prints the class line and the ten latents that fire most.
fn token_cards_cmd(args: &CardsArgs) -> CliResult {
    let run = TokenRun::open(&args.report)?;
    let options = TokenCardOptions {
        window: args.window,
        ..TokenCardOptions::default()
    };
    let mut set = run.cards(args.top.unwrap_or(20), &options)?;
    if !args.latents.is_empty() {
        set.cards.retain(|c| args.latents.contains(&c.latent));
    }
    set.save(&args.out)?;
    println!("{}", set.shares.line());
    let mut busiest: Vec<&TokenCard> = set.cards.iter().collect();
    busiest.sort_by(|a, b| b.fired.cmp(&a.fired).then(a.latent.cmp(&b.latent)));
    for card in busiest.into_iter().take(10) {
        let forms: Vec<String> = card
            .forms
            .iter()
            .take(5)
            .map(|(w, n)| format!("{w}×{n}"))
            .collect();
        println!(
            "latent {:>5}  fired {:>7}  {:<7}  {}",
            card.latent,
            card.fired,
            card.class.as_str(),
            forms.join(", ")
        );
        if let Some(c) = card.contexts.first() {
            println!("      {:.3}  {}: {}", c.activation, c.doc, c.marked);
        }
    }
    eprintln!("{} token cards -> {}", set.cards.len(), args.out.display());
    Ok(())
}

#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// Report directory of `latent-terms run`.
    #[arg(long)]
    report: PathBuf,
    /// Document id.
    #[arg(long)]
    doc: String,
    /// Query id: explain the query–document match instead of the document alone.
    #[arg(long)]
    query: Option<String>,
    /// Scorer of the match: clsr, bm25 (lt-bm25) or dot, with the report's parameters.
    #[arg(long, default_value = "clsr")]
    scorer: String,
    /// Latents shown for a document alone (or shared token latents with --tokens).
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Descriptions file replacing the keyword descriptions.
    #[arg(long)]
    descriptions: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// With --query: the token-level latents (`run --representation tokens|both`) shared
    /// by the query and the document, with the words where each fired in both.
    #[arg(long, requires = "query")]
    tokens: bool,
}

fn describe_all_latents(c: &Collection, imported: Option<Descriptions>) -> CliResult<Descriptions> {
    let list = described_cards(c, &CardOptions::default(), imported.as_ref())?;
    Ok(Descriptions::from_cards(&list))
}

pub(crate) fn explain_cmd(args: &ExplainArgs) -> CliResult {
    if args.tokens {
        return explain_tokens_cmd(args);
    }
    let c = Collection::open(&args.report)?;
    let descriptions = describe_all_latents(&c, load_descriptions(args.descriptions.as_deref())?)?;
    // Ids are read the way the dataset reader spells them (whitespace runs become `_`).
    let doc = trec_safe_id(&args.doc);
    match args.query.as_deref().map(trec_safe_id) {
        None => {
            let e = ForwardIndex::new(&c.index)?.explain(&doc, Some(&descriptions), args.top)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                println!("doc {}: {}", e.doc, c.title(&e.doc));
                println!("  latent  activation    idf  act×idf  description");
                for l in &e.latents {
                    println!(
                        "  {:>6}  {:>10.4}  {:>5.3}  {:>7.4}  {}",
                        l.latent,
                        l.activation,
                        l.idf,
                        l.weight,
                        l.description.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Some(qid) => {
            let qid = qid.as_str();
            let kind: ScorerKind = args.scorer.parse()?;
            let scorer = c.scorer(kind)?;
            let q = c.query(qid)?;
            let e = explain_match(
                &c.index,
                qid,
                &q,
                scorer.as_ref(),
                kind.name(),
                &doc,
                Some(&descriptions),
            )?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                println!(
                    "query {qid}: {}",
                    c.query_text.get(qid).map_or("", String::as_str)
                );
                println!("doc {}: {}", doc, c.title(&doc));
                print!("{}", e.table());
            }
        }
    }
    Ok(())
}

/// Words of hits as `word(activation)`, comma-separated.
fn hit_words(hits: &[WordHit], max: usize) -> String {
    let mut out: Vec<String> = hits
        .iter()
        .take(max)
        .map(|h| format!("{}({:.2})", h.word, h.activation))
        .collect();
    if hits.len() > max {
        out.push(format!("… {} more", hits.len() - max));
    }
    out.join(", ")
}

/// `explain --query Q --doc D --tokens`.
fn explain_tokens_cmd(args: &ExplainArgs) -> CliResult {
    let run = TokenRun::open(&args.report)?;
    let doc = trec_safe_id(&args.doc);
    let qid = trec_safe_id(args.query.as_deref().unwrap_or_default());
    let shared = run.explain(&qid, &doc)?;
    if args.json {
        let value = serde_json::json!({
            "query": qid, "doc": doc, "k": run.k, "shared": shared,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let text = |t: Option<&String>| t.map_or(String::new(), |t| snippet(t, 100));
    println!("query {qid}: {}", text(run.query_text.get(&qid)));
    println!("doc {doc}: {}", text(run.docs.get(&doc)));
    println!(
        "query {qid} × doc {doc}: {} shared token latents (k {} per token)",
        shared.len(),
        run.k
    );
    println!("  latent   q.act   d.act    idf   weight  query words → document words");
    for s in shared.iter().take(args.top) {
        println!(
            "  {:>6}  {:>6.3}  {:>6.3}  {:>5.2}  {:>7.2}  {} → {}",
            s.latent,
            s.query_activation,
            s.doc_activation,
            run.idf(s.latent),
            s.weight,
            hit_words(&s.query, 4),
            hit_words(&s.doc, 6)
        );
    }
    if shared.len() > args.top {
        println!("  … {} more (--top)", shared.len() - args.top);
    }
    Ok(())
}

#[derive(Subcommand)]
pub(crate) enum SteerCommand {
    /// Edit one query's latents and show its results before and after.
    Query(SteerQueryArgs),
    /// Kang et al.'s experiment: amplify the latents of each query's relevant documents
    /// by increasing amounts; MRR@10 of dense retrieval with the steered query.
    Experiment(SteerExperimentArgs),
}

#[derive(Args)]
pub(crate) struct SteerQueryArgs {
    /// Report directory of `latent-terms run`.
    #[arg(long)]
    report: PathBuf,
    /// Query id.
    #[arg(long)]
    query: String,
    /// Latent edits: `L*F` scale, `L+V` add, `L=V` set, `-L` suppress (repeat the flag).
    #[arg(long = "edit", required = true, allow_hyphen_values = true)]
    edits: Vec<String>,
    /// Edit the sparse latent-term query (searched with --scorer) instead of decoding to a
    /// dense embedding.
    #[arg(long)]
    sparse: bool,
    /// Scorer of the sparse mode: clsr, bm25 or dot.
    #[arg(long, default_value = "clsr")]
    scorer: String,
    /// Decode the edited code alone (default keeps the SAE's reconstruction error).
    #[arg(long)]
    decode_only: bool,
    /// Results shown.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

fn print_results(c: &Collection, qrels_qid: &str, label: &str, hits: &[(String, f32)]) {
    println!("{label}:");
    for (i, (d, s)) in hits.iter().enumerate() {
        let rel = c
            .qrels
            .get(qrels_qid)
            .and_then(|j| j.relevance(d))
            .is_some_and(|r| r > 0);
        println!(
            "  {:>2}. {:<10} {:>8.4} {} {}",
            i + 1,
            d,
            s,
            if rel { "[relevant]" } else { "          " },
            latent_terms::interpret::snippet(&c.title(d), 70)
        );
    }
}

fn dense_top(c: &Collection, qid: &str, row: Vec<f32>, k: usize) -> CliResult<Vec<(String, f32)>> {
    let q = Embeddings::new(vec![qid.to_owned()], c.corpus.dim(), row)?;
    let mut hits = search(&q, &c.corpus, &SearchOptions::top(k).metric(Metric::Dot))?;
    Ok(hits.pop().unwrap_or_default())
}

pub(crate) fn steer_query(args: &SteerQueryArgs) -> CliResult {
    let c = Collection::open(&args.report)?;
    let edits = args
        .edits
        .iter()
        .map(|e| e.parse::<Edit>())
        .collect::<Result<Vec<_>, _>>()?;
    let qid = trec_safe_id(&args.query);
    let code = c.query_code(&qid)?;
    let show = |label: &str, pairs: Vec<(u32, f32)>| {
        let s: Vec<String> = pairs.iter().map(|(l, v)| format!("{l}:{v:.3}")).collect();
        println!("{label}: {}", s.join(" "));
    };
    println!(
        "query {}: {}",
        qid,
        c.query_text.get(&qid).map_or("", String::as_str)
    );
    show("latents before", code.iter().collect());
    show("latents after ", edit_code(&code, &edits)?.iter().collect());
    if args.sparse {
        let kind: ScorerKind = args.scorer.parse()?;
        let scorer = c.scorer(kind)?;
        let q = code_to_query(&code, None)?;
        let steered = edit_query(&q, &edits)?;
        let index = LatentIndex::from_index(c.index.clone());
        print_results(
            &c,
            &qid,
            &format!("{} before", kind.name()),
            &index.search(&q, scorer.as_ref(), args.top)?,
        );
        print_results(
            &c,
            &qid,
            &format!("{} after", kind.name()),
            &index.search(&steered, scorer.as_ref(), args.top)?,
        );
    } else {
        let x = c.query_embedding(&qid)?.to_vec();
        let k = c.report.params.query_k;
        let steered = steer_embedding(&c.sae, &x, k, &edits, !args.decode_only)?;
        print_results(&c, &qid, "dense before", &dense_top(&c, &qid, x, args.top)?);
        print_results(
            &c,
            &qid,
            "dense after (steered)",
            &dense_top(&c, &qid, steered, args.top)?,
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct SteerExperimentArgs {
    /// BEIR dataset directory (with qrels/<split>.tsv).
    #[arg(long)]
    dataset: PathBuf,
    /// Corpus embeddings store.
    #[arg(long)]
    corpus_emb: PathBuf,
    /// Query embeddings store.
    #[arg(long)]
    query_emb: PathBuf,
    /// SAE checkpoint.
    #[arg(long)]
    sae: PathBuf,
    /// Qrels split whose queries are steered.
    #[arg(long, default_value = "train")]
    split: String,
    /// SAE top-k for queries and documents (default: the SAE's trained k).
    #[arg(long)]
    k: Option<usize>,
    /// Latents amplified per query.
    #[arg(long, default_value_t = 8)]
    latents: usize,
    /// Amplification strengths α (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,1,2,4,8")]
    strengths: Vec<f32>,
    /// Markdown table output.
    #[arg(long)]
    out_md: PathBuf,
    /// PNG curve output.
    #[arg(long)]
    out_png: PathBuf,
    /// JSON output (optional).
    #[arg(long)]
    out_json: Option<PathBuf>,
}

pub(crate) fn steer_experiment(args: &SteerExperimentArgs) -> CliResult {
    let dataset = BeirDataset::open(&args.dataset)?;
    let qrels: Qrels = dataset.qrels(&args.split)?;
    let corpus = EmbeddingsStore::open(&args.corpus_emb)?.load()?;
    let queries = EmbeddingsStore::open(&args.query_emb)?.load()?;
    let sae = SaeEncoder::load(&args.sae)?;
    let config = SteeringConfig {
        k: args.k.unwrap_or(sae.weights().config.k),
        latents: args.latents,
        strengths: args.strengths.clone(),
    };
    let report = steering_experiment(&sae, &corpus, &queries, &qrels, &config)?;
    let md = format!(
        "{}\nqrels/{}.tsv of {}; SAE {}\n",
        report.markdown(),
        args.split,
        args.dataset.display(),
        args.sae.display()
    );
    write_atomic(&args.out_md, md.as_bytes())?;
    report.plot(&args.out_png)?;
    if let Some(p) = &args.out_json {
        write_atomic(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    print!("{md}");
    Ok(())
}

#[derive(Args)]
pub(crate) struct IntrusionArgs {
    /// Corpus embeddings store (encoded by each SAE; also the centroid judge's space).
    #[arg(long)]
    corpus_emb: PathBuf,
    /// SAE checkpoints, one row each (repeat the flag).
    #[arg(long = "sae", required = true)]
    saes: Vec<PathBuf>,
    /// Top-k of the corpus encoding (default: each SAE's trained k).
    #[arg(long)]
    k: Option<usize>,
    /// Latents sampled per SAE.
    #[arg(long, default_value_t = 200)]
    latents: usize,
    /// Top-activating passages per question.
    #[arg(long, default_value_t = 9)]
    top: usize,
    /// Seed of the sample, intruders and shuffles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// BEIR dataset of the corpus: adds the lexical judge (IDF-weighted words), which never
    /// sees the retriever's embeddings.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Markdown table output.
    #[arg(long)]
    out_md: Option<PathBuf>,
}

/// Wilson score interval at 95%.
fn wilson(correct: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (z, n, p) = (1.96f64, n as f64, correct as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    (centre - half, centre + half)
}

pub(crate) fn intrusion_cmd(args: &IntrusionArgs) -> CliResult {
    let corpus = EmbeddingsStore::open(&args.corpus_emb)?.load()?;
    let centroid = CentroidJudge::new(&corpus);
    let lexical = match &args.dataset {
        Some(dir) => {
            let mut texts = Vec::new();
            for d in BeirDataset::open(dir)?.corpus()? {
                let d = d?;
                texts.push((d.id.clone(), d.full_text()));
            }
            Some(LexicalJudge::new(texts))
        }
        None => None,
    };
    let mut judges: Vec<&dyn Judge> = vec![&centroid];
    if let Some(l) = &lexical {
        judges.push(l);
    }
    let mut md = format!(
        "Intrusion test: {} top-activating passages + 1 random non-activating intruder, shuffled; seed {}; chance {:.2}\n\n\
| SAE | kind | d_sae | k | judge | latents | correct | accuracy | 95% CI | control (random passages) |\n|---|---|---|---|---|---|---|---|---|---|\n",
        args.top,
        args.seed,
        1.0 / (args.top + 1) as f64
    );
    for path in &args.saes {
        let sae = SaeEncoder::load(path)?;
        let cfg = &sae.weights().config;
        let k = args.k.unwrap_or(cfg.k);
        sae.check_dim(corpus.dim())?;
        let codes = sae.encode(corpus.data(), &EncodeOptions::top_k(k))?;
        let index = LatentIndex::build(corpus.ids(), &codes, None)?;
        let options = IntrusionOptions {
            latents: args.latents,
            top: args.top,
            seed: args.seed,
        };
        let items = intrusion_items(index.index(), &options)?;
        let controls = random_items(index.index(), &items, args.seed ^ 0xC0FFEE);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for judge in &judges {
            let r = run_intrusion(&items, *judge)?;
            let control = run_intrusion(&controls, *judge)?;
            let (lo, hi) = wilson(r.correct, r.items);
            md.push_str(&format!(
                "| {name} | {} | {} | {k} | {} | {} | {} | {:.3} | [{lo:.3}, {hi:.3}] | {:.3} |\n",
                cfg.kind.as_str(),
                cfg.d_sae,
                r.judge,
                r.items,
                r.correct,
                r.accuracy,
                control.accuracy
            ));
        }
    }
    if let Some(p) = &args.out_md {
        write_atomic(p, md.as_bytes())?;
    }
    print!("{md}");
    Ok(())
}

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// Report directory of `latent-terms run`.
    #[arg(long)]
    report: PathBuf,
    /// Shared latents shown per result (comma-separated budgets).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,5,10,20")]
    budgets: Vec<usize>,
    /// Results per query.
    #[arg(long, default_value_t = 10)]
    results: usize,
    /// Scorer: clsr, bm25 or dot.
    #[arg(long, default_value = "clsr")]
    scorer: String,
}

/// A query id, its SAE code and its top results' explanations.
type Explained = (String, SparseCode, Vec<MatchExplanation>);

/// Every judged test query's top results with their explanations.
fn explained_rankings(
    c: &Collection,
    kind: ScorerKind,
    results: usize,
    limit: usize,
    descriptions: Option<&Descriptions>,
) -> CliResult<Vec<Explained>> {
    let scorer = c.scorer(kind)?;
    let mut out = Vec::new();
    let qids = c
        .query_text
        .keys()
        .filter(|q| c.qrels.get(q).is_some_and(|j| j.num_relevant(1) > 0))
        .take(limit);
    for qid in qids {
        let code = c.query_code(qid)?;
        let q = code_to_query(&code, None)?;
        let hits = c
            .index
            .search(&q, scorer.as_ref(), results, &SparseOptions::default())?;
        let mut list = Vec::with_capacity(hits.len());
        for h in &hits {
            let doc = c.index.external_id(h.doc).unwrap_or_default().to_owned();
            list.push(explain_match(
                &c.index,
                qid,
                &q,
                scorer.as_ref(),
                kind.name(),
                &doc,
                descriptions,
            )?);
        }
        out.push((qid.clone(), code, list));
    }
    Ok(out)
}

pub(crate) fn simulate(args: &SimulateArgs) -> CliResult {
    let c = Collection::open(&args.report)?;
    let kind: ScorerKind = args.scorer.parse()?;
    let rankings: Vec<_> = explained_rankings(&c, kind, args.results, usize::MAX, None)?
        .into_iter()
        .map(|r| r.2)
        .collect();
    println!(
        "Ranking simulated from the top m shared latents ({} test queries, top {} {} results)\n",
        rankings.len(),
        args.results,
        kind.name()
    );
    println!("| m | top-1 agreement | pairwise agreement |\n|---|---|---|");
    for r in simulate_rankings(&rankings, &args.budgets) {
        println!("| {} | {:.4} | {:.4} |", r.latents, r.top1, r.pairwise);
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct ExploreArgs {
    /// Report directory of `latent-terms run`.
    #[arg(long)]
    report: PathBuf,
    /// Site directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Evaluated queries with a page (default: every test query).
    #[arg(long)]
    queries: Option<usize>,
    /// Results per query page.
    #[arg(long, default_value_t = 10)]
    results: usize,
    /// Scorer of the query pages: clsr, bm25 or dot.
    #[arg(long, default_value = "clsr")]
    scorer: String,
    /// Top-activating documents per card.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Descriptions file replacing the keyword descriptions.
    #[arg(long)]
    descriptions: Option<PathBuf>,
}

pub(crate) fn explore(args: &ExploreArgs) -> CliResult {
    let c = Collection::open(&args.report)?;
    let imported = load_descriptions(args.descriptions.as_deref())?;
    let options = CardOptions {
        top: args.top,
        latents: None,
    };
    let card_list = described_cards(&c, &options, imported.as_ref())?;
    let descriptions = Descriptions::from_cards(&card_list);
    let kind: ScorerKind = args.scorer.parse()?;
    let mut views = Vec::new();
    for (qid, code, list) in explained_rankings(
        &c,
        kind,
        args.results,
        args.queries.unwrap_or(usize::MAX),
        Some(&descriptions),
    )? {
        let results = list
            .into_iter()
            .enumerate()
            .map(|(i, explanation)| ResultView {
                rank: i + 1,
                title: c.title(&explanation.doc),
                relevant: c
                    .qrels
                    .get(&qid)
                    .and_then(|j| j.relevance(&explanation.doc))
                    .is_some_and(|r| r > 0),
                explanation,
            })
            .collect();
        let mut latents: Vec<(u32, f32)> = code.iter().collect();
        latents.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        views.push(QueryView {
            text: c.query_text.get(&qid).cloned().unwrap_or_default(),
            id: qid,
            latents,
            results,
        });
    }
    let r = &c.report;
    let metric = |m: &str| {
        r.row(kind.name())
            .and_then(|row| row.get(m))
            .map_or_else(|| "–".to_owned(), |v| format!("{v:.4}"))
    };
    let facts = vec![
        (
            "dataset".to_owned(),
            format!(
                "{} ({} documents, {} test queries)",
                r.dataset, r.docs, r.queries
            ),
        ),
        (
            "SAE".to_owned(),
            format!(
                "{} latents, {} used; documents keep {}, queries {}",
                r.d_sae, r.latents_used, r.params.doc_k, r.params.query_k
            ),
        ),
        (
            "scorer".to_owned(),
            format!(
                "{} (CL-SR k1, b, k2 = {:?}; lt-bm25 k1, b = {:?})",
                kind.name(),
                r.params.clsr,
                r.params.lt_bm25
            ),
        ),
        (
            format!("{} nDCG@10 / MRR@10", kind.name()),
            format!("{} / {}", metric("ndcg_cut_10"), metric("recip_rank@10")),
        ),
        (
            "descriptions".to_owned(),
            match &args.descriptions {
                Some(p) => format!("keywords (log-odds), replaced by {}", p.display()),
                None => "keywords (weighted log-odds of top documents vs corpus)".to_owned(),
            },
        ),
    ];
    let zipf = args.report.join("zipf.png");
    let site = Site {
        title: format!("Latent explorer — {}", r.dataset),
        facts,
        cards: &card_list,
        zipf_png: zipf.is_file().then_some(zipf.as_path()),
        queries: &views,
    };
    let pages = write_site(&site, &args.out)?;
    eprintln!("{pages} pages -> {}", args.out.join("index.html").display());
    Ok(())
}
