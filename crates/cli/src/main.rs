//! The `latent-terms` command-line tool.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Latent Terms retrieval: evaluate runs, build indexes, turn dense retrievers sparse.
#[derive(Parser)]
#[command(name = "latent-terms", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a TREC run against qrels, printing trec_eval's output format.
    Eval(commands::eval::EvalArgs),
    /// Lexical BM25 over a BEIR dataset's title + text; writes a TREC run.
    Bm25(commands::bm25::Bm25Args),
    /// Encode a BEIR dataset's corpus and queries with a dense retriever.
    Encode(commands::encode::EncodeArgs),
    /// Exact dense retrieval over embeddings stores; writes a TREC run.
    Dense(commands::encode::DenseArgs),
    /// Rewrite embeddings stores of an older format (no checksum) in the current one.
    UpgradeStore(commands::encode::UpgradeStoreArgs),
    /// Export an index for Anserini/Lucene, Elasticsearch/OpenSearch or CIFF (docs/scale-out.md).
    Export(commands::export::ExportArgs),
    /// Import a CIFF file (from Anserini, PISA or `export --format ciff`) as an index.
    ImportCiff(commands::export::ImportCiffArgs),
    /// Search a saved index with weighted or text queries; writes a TREC run.
    Search(commands::export::SearchArgs),
    /// Inspect saved indexes.
    #[command(subcommand)]
    Index(commands::index::IndexCommand),
    /// Train sparse autoencoders and encode embeddings into latents.
    #[command(subcommand)]
    Sae(commands::sae::SaeCommand),
    /// The whole Latent Terms pipeline on a BEIR dataset, with the report.
    Run(commands::run::RunArgs),
    /// Write a LIMIT-style collection of any size as a BEIR directory.
    LimitGen(commands::run::LimitGenArgs),
    /// Latent cards (df, IDF, top documents, descriptions) of a run's SAE, as JSON.
    Cards(commands::interpret::CardsArgs),
    /// Explain a document as its top latents, or a query–document match by shared latents.
    Explain(commands::interpret::ExplainArgs),
    /// Steer queries by editing their latents (and the Kang et al. experiment).
    #[command(subcommand)]
    Steer(commands::interpret::SteerCommand),
    /// Intrusion test of latent quality, per SAE, with the centroid judge.
    Intrusion(commands::interpret::IntrusionArgs),
    /// Write the static HTML latent explorer of a run's report.
    Explore(commands::interpret::ExploreArgs),
    /// How well the top shared latents alone reproduce a run's rankings.
    Simulate(commands::interpret::SimulateArgs),
}

fn main() -> ExitCode {
    // `sae train` and `run` train SAEs; without this every step re-faults its large
    // tensors' pages in (crates/sae/src/train/memory.rs).
    latent_terms::sae::train::retain_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval(args) => commands::eval::run(&args),
        Command::Bm25(args) => commands::bm25::run(&args),
        Command::Index(command) => commands::index::run(&command),
        Command::Export(args) => commands::export::export(&args),
        Command::ImportCiff(args) => commands::export::import_ciff(&args),
        Command::Search(args) => commands::export::search(&args),
        Command::Encode(args) => commands::encode::encode(&args),
        Command::Dense(args) => commands::encode::dense(&args),
        Command::UpgradeStore(args) => commands::encode::upgrade_stores(&args),
        Command::Sae(command) => commands::sae::run(&command),
        Command::Run(args) => commands::run::run(&args),
        Command::LimitGen(args) => commands::run::limit_gen(&args),
        Command::Cards(args) => commands::interpret::cards_cmd(&args),
        Command::Explain(args) => commands::interpret::explain_cmd(&args),
        Command::Steer(commands::interpret::SteerCommand::Query(args)) => {
            commands::interpret::steer_query(&args)
        }
        Command::Steer(commands::interpret::SteerCommand::Experiment(args)) => {
            commands::interpret::steer_experiment(&args)
        }
        Command::Intrusion(args) => commands::interpret::intrusion_cmd(&args),
        Command::Explore(args) => commands::interpret::explore(&args),
        Command::Simulate(args) => commands::interpret::simulate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latent-terms: error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
