//! Quick throughput measurement (no criterion): passages per second on the first N
//! passages of a BEIR corpus, with the time split into tokenisation, inference and
//! pooling. The Python counterpart is scripts/bench-encoders.py.
//!
//! With `--tokens`, measures `Encoder::encode_tokens` instead (token vectors, special
//! tokens dropped) in tokens per second, then one `encode_tokens_to_store` run into
//! an F16 token store (in the temporary directory and removed, or kept at `--store PATH`).
//!
//! ```sh
//! cargo run --release -p latent-terms-encoders --example throughput -- \
//!     [--model assets/models/all-MiniLM-L6-v2] [--corpus ../shared/data/scifact/corpus.jsonl.gz] \
//!     [--n 200] [--batch 32] [--threads 2] [--max-length 256] [--repeat 3] [--tokens [--store PATH]]
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use latent_terms_encoders::{Encoder, StoreDtype, TextKind, TokenStore, TokenStoreWriter};

fn read_corpus(path: &PathBuf, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut out = Vec::new();
    for line in reader.lines() {
        if out.len() == n {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let title = v["title"].as_str().unwrap_or("");
        let text = v["text"].as_str().unwrap_or("");
        // BEIR convention: title and text joined by a space.
        out.push(format!("{title} {text}").trim().to_string());
    }
    Ok(out)
}

/// CPU time (user + system) of this process so far, in seconds, from /proc/self/stat
/// (Linux); 0 where unavailable. Less sensitive than wall time to other load.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut model = root.join("assets/models/all-MiniLM-L6-v2");
    let mut corpus = root.join("../shared/data/scifact/corpus.jsonl.gz");
    let (mut n, mut batch, mut threads, mut max_length, mut repeat) = (200, 32, 2, 256, 3);
    let mut tokens_mode = false;
    let mut store_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--tokens" {
            tokens_mode = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => model = value.into(),
            "--corpus" => corpus = value.into(),
            "--n" => n = value.parse()?,
            "--batch" => batch = value.parse()?,
            "--threads" => threads = value.parse()?,
            "--max-length" => max_length = value.parse()?,
            "--repeat" => repeat = value.parse()?,
            "--store" => store_path = Some(value.into()),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let texts = read_corpus(&corpus, n)?;
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let encoder = Encoder::builder(&model)
        .batch_size(batch)
        .intra_threads(threads)
        .max_length(max_length)
        .build()?;
    // Warm-up (graph optimisation caches, allocator).
    encoder.encode_passages(&texts[..batch.min(texts.len())])?;
    if tokens_mode {
        return token_throughput(&encoder, &texts, repeat, store_path);
    }
    println!(
        "rust: {} passages ({:.0} words on average), batch {batch}, threads {threads}, max length {max_length}",
        texts.len(),
        words as f64 / texts.len().max(1) as f64
    );
    let mut rates = Vec::new();
    for run in 0..repeat {
        encoder.reset_stats();
        let (t, c) = (Instant::now(), cpu_seconds());
        let out = encoder.encode_passages(&texts)?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c;
        let s = encoder.stats();
        let rate = out.rows() as f64 / wall;
        rates.push(rate);
        println!(
            "run {run}: {rate:.1} passages/s, wall {wall:.3} s, cpu {cpu:.2} s ({:.1} ms/passage): tokenize {:.3} s ({:.1}%), inference {:.3} s ({:.1}%), pooling {:.4} s ({:.2}%); {} tokens, {} with padding",
            1000.0 * cpu / out.rows() as f64,
            s.tokenize.as_secs_f64(),
            100.0 * s.tokenize.as_secs_f64() / wall,
            s.inference.as_secs_f64(),
            100.0 * s.inference.as_secs_f64() / wall,
            s.pooling.as_secs_f64(),
            100.0 * s.pooling.as_secs_f64() / wall,
            s.tokens,
            s.padded_tokens,
        );
    }
    rates.sort_by(f64::total_cmp);
    println!("rust: median {:.1} passages/s", rates[rates.len() / 2]);
    Ok(())
}

/// `--tokens`: token vectors per second of `encode_tokens`, then one store run.
fn token_throughput(
    encoder: &Encoder,
    texts: &[String],
    repeat: usize,
    keep: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let items: Vec<(String, &str)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("d{i}"), t.as_str()))
        .collect();
    let mut rates = Vec::new();
    for run in 0..repeat {
        encoder.reset_stats();
        let (t, c) = (Instant::now(), cpu_seconds());
        let out = encoder.encode_tokens(TextKind::Passage, &items)?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c;
        let s = encoder.stats();
        let kept: usize = out.iter().map(|t| t.len()).sum();
        let rate = kept as f64 / wall;
        rates.push(rate);
        println!(
            "tokens run {run}: {rate:.0} token vectors/s ({:.0} model tokens/s, {:.1} passages/s), wall {wall:.3} s, cpu {cpu:.2} s: tokenize {:.3} s ({:.1}%), inference {:.3} s ({:.1}%), token selection {:.4} s ({:.2}%); {kept} token vectors kept of {} tokens, {} with padding",
            s.tokens as f64 / wall,
            out.len() as f64 / wall,
            s.tokenize.as_secs_f64(),
            100.0 * s.tokenize.as_secs_f64() / wall,
            s.inference.as_secs_f64(),
            100.0 * s.inference.as_secs_f64() / wall,
            s.pooling.as_secs_f64(),
            100.0 * s.pooling.as_secs_f64() / wall,
            s.tokens,
            s.padded_tokens,
        );
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "rust tokens: median {:.0} token vectors/s",
        rates[rates.len() / 2]
    );

    let path = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("throughput-{}.tokens", std::process::id()))
    });
    let t = Instant::now();
    let mut writer = TokenStoreWriter::create(
        &path,
        encoder.token_store_metadata(TextKind::Passage),
        StoreDtype::F16,
    )?;
    encoder.encode_tokens_to_store(
        TextKind::Passage,
        items.iter().map(|(i, t)| (i, *t)),
        &mut writer,
    )?;
    let kept = writer.tokens();
    writer.finish()?;
    let wall = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path)?.len();
    let t = Instant::now();
    let store = TokenStore::open(&path)?;
    let open = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut read = 0;
    for block in store.blocks(64) {
        read += block?.iter().map(|t| t.len()).sum::<usize>();
    }
    let scan = t.elapsed().as_secs_f64();
    println!(
        "token store: {kept} token vectors to F16 in {wall:.2} s ({:.0}/s), {:.1} MB; open + verify {:.3} s, read in blocks of 64 texts {:.3} s ({read} vectors)",
        kept as f64 / wall,
        size as f64 / 1e6,
        open,
        scan,
    );
    if keep.is_none() {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
