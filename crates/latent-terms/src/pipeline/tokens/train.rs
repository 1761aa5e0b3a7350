//! Stage 2: the token SAE, trained on a sample of token rows.

use std::ops::Range;
use std::path::{Path, PathBuf};

use latent_terms_encoders::TokenStore;
use latent_terms_sae::{SaeEncoder, SaeWeights};

use super::TokenStores;
use crate::error::{Error, Result};
use crate::pipeline::config::{PipelineConfig, TokenSettings};
use crate::pipeline::training::{CachedSae, SaeRows, SaeSummary, given_sae_summary};
use crate::pipeline::{CacheKey, Progress, Stage};

/// The trained token SAE (stage 2).
pub(crate) struct TokenSae {
    pub(crate) encoder: SaeEncoder,
    pub(crate) summary: SaeSummary,
    pub(crate) key: String,
}

/// Texts per block of the streamed trainer: a block holds at most this many texts'
/// sampled rows (256 texts of 256 tokens: 64k rows, 96 MiB at 384 dimensions).
const TEXTS_PER_BLOCK: usize = 128;

/// Stage 2: a TopK SAE over a sample of token rows of the corpus (and, with
/// `train_on_queries`, the queries) plus the extra token stores. A sample larger than
/// `tokens.training_memory_mb` is streamed from the stores instead of loaded.
pub(crate) fn train(
    stores: &TokenStores,
    given: Option<&Path>,
    config: &PipelineConfig,
    cache: &Path,
    stage: &mut Stage,
    progress: &dyn Progress,
) -> Result<TokenSae> {
    let t = &config.tokens;
    let mut sources = vec![stores.corpus.clone()];
    if config.train_on_queries {
        sources.push(stores.queries.clone());
    }
    sources.extend(t.extra_training_stores.iter().cloned());
    if let Some(path) = given {
        stage.cached = true;
        let key = CacheKey::new("token-sae-given").file(path)?.finish();
        let weights = SaeWeights::load(path)?;
        return Ok(TokenSae {
            encoder: SaeEncoder::new(weights)?,
            summary: given_sae_summary(path),
            key,
        });
    }
    let mut key = CacheKey::new("token-sae")
        .key(&stores.key)
        .str(&serde_json::to_string(&t.sae).unwrap_or_default())
        .num(t.max_training_tokens as u64)
        .num(t.tokens_per_text.map_or(0, |n| n as u64 + 1))
        .num(u64::from(config.train_on_queries));
    for p in &t.extra_training_stores {
        key = key.file(p)?;
    }
    let in_memory_key = key.finish();
    // A streamed run trains on a different order and validation split: its own entry.
    // The in-memory key is the one every earlier run used, so their caches stay valid.
    let streamed_key = CacheKey::new("token-sae-streamed")
        .key(&in_memory_key)
        .num(t.stream_buffer_rows as u64)
        .finish();
    // Which path applies depends on the sample's size, known only from the stores; a
    // cached SAE records it (summary rows × d_in), so a cached run does not open them.
    for (key, streamed) in [(&in_memory_key, false), (&streamed_key, true)] {
        let entry = CachedSae::new(cache, &format!("token-sae-{key}"), key);
        if let Some((weights, summary)) = entry.load(stage)?
            && streams(t, summary.rows, weights.config.d_in) == streamed
        {
            stage.cached = true;
            return Ok(TokenSae {
                encoder: SaeEncoder::new(weights)?,
                summary,
                key: key.clone(),
            });
        }
    }
    let sampler = Sampler::open(&sources, t)?;
    let counts = sampler.counts();
    let n: usize = counts.iter().sum();
    if n == 0 {
        return Err(Error::Invalid(
            "the token stores hold no token to train the token SAE on".into(),
        ));
    }
    if n < t.min_training_tokens {
        progress.note(&format!(
            "warning: only {n} token rows to train the token SAE on (fewer than {}): its \
             vocabulary will be poor. Add text: token stores of other collections \
             (`latent-terms encode --dataset D --out D.safetensors --tokens`, then \
             `--train-extra-tokens D.tokens`), or a trained token SAE (`--token-sae`)",
            t.min_training_tokens
        ));
    }
    let dim = sampler.dim;
    let streamed = streams(t, n, dim);
    let mib = |rows: usize| (rows * dim * 4) as f64 / f64::from(1u32 << 20);
    // Steps, not epochs, are what an SAE needs: a small sample is seen several times.
    // Rounded, not ceiled: a sample a few rows short of the target is one epoch, not two.
    let mut settings = t.sae.clone();
    settings.epochs = settings.epochs.max(epochs_for(t.max_training_tokens, n));
    if streamed {
        let key = streamed_key;
        let entry = CachedSae::new(cache, &format!("token-sae-{key}"), &key);
        let parts = sampler.parts(&counts);
        let blocks = TokenBlocks::new(&sampler, TEXTS_PER_BLOCK);
        let bound = t.stream_buffer_rows.max(settings.batch_size)
            + blocks.max_rows()
            + settings.batch_size
            + 2 * 20_000;
        progress.note(&format!(
            "training the token SAE streamed from the token stores, on {n} token rows \
             sampled from {} tokens: {}; the sample ({:.0} MiB) is above \
             tokens.training_memory_mb = {}, so at most {bound} rows ({:.0} MiB) are held",
            sampler.total,
            parts.join(" + "),
            mib(n),
            t.training_memory_mb,
            mib(bound)
        ));
        let rows = SaeRows::Stream {
            source: &blocks,
            rows: n,
            buffer_rows: t.stream_buffer_rows,
        };
        let (weights, summary) =
            entry.train(rows, dim, &settings, true, parts.join(" + "), progress)?;
        return Ok(TokenSae {
            encoder: SaeEncoder::new(weights)?,
            summary,
            key,
        });
    }
    let key = in_memory_key;
    let entry = CachedSae::new(cache, &format!("token-sae-{key}"), &key);
    let sample = sample_rows(&sampler, t, progress)?;
    progress.note(&format!(
        "training the token SAE on {n} token rows sampled from {} tokens: {}; in memory \
         ({:.0} MiB, within tokens.training_memory_mb = {})",
        sampler.total,
        sample.parts.join(" + "),
        mib(n),
        t.training_memory_mb
    ));
    let rows = SaeRows::Memory {
        rows: &sample.rows,
        pairs: Vec::new(),
    };
    let (weights, summary) = entry.train(
        rows,
        dim,
        &settings,
        true,
        sample.parts.join(" + "),
        progress,
    )?;
    Ok(TokenSae {
        encoder: SaeEncoder::new(weights)?,
        summary,
        key,
    })
}

/// Whether a sample of `rows` rows of width `dim` is streamed: its `rows × dim × 4` bytes
/// exceed `training_memory_mb` (0 always streams).
fn streams(t: &TokenSettings, rows: usize, dim: usize) -> bool {
    (rows as u128) * (dim as u128) * 4 > (t.training_memory_mb as u128) << 20
}

/// Passes over a sample of `rows` rows that give about `target` training rows (at least 1).
fn epochs_for(target: usize, rows: usize) -> usize {
    ((target as f64 / rows.max(1) as f64).round() as usize).max(1)
}

struct Sample {
    rows: Vec<f32>,
    parts: Vec<String>,
}

/// SplitMix64's output for state `x`: a fixed hash, so the sample repeats exactly for a
/// seed.
fn mix(x: u64) -> u64 {
    latent_terms_sparse_index::SplitMix64::new(x).next_u64()
}

/// Which token rows join the training sample: up to `max_training_tokens` rows, each
/// kept with the same probability after an optional per-text cap. A pure function of
/// the stores and the settings, shared by the in-memory sample and the streamed blocks
/// so both train on the same rows.
pub(crate) struct Sampler {
    stores: Vec<TokenStore>,
    dim: usize,
    /// Tokens after the per-text cap.
    total: u64,
    keep: f64,
    threshold: u64,
    seed: u64,
    tokens_per_text: Option<usize>,
}

impl Sampler {
    fn open(sources: &[PathBuf], t: &TokenSettings) -> Result<Self> {
        let stores: Vec<TokenStore> = sources
            .iter()
            .map(TokenStore::open)
            .collect::<std::result::Result<_, _>>()?;
        let dim = stores.first().map_or(0, TokenStore::dim);
        if let Some(bad) = stores.iter().find(|s| s.dim() != dim) {
            return Err(Error::Invalid(format!(
                "token store {} has dimension {}, the corpus's has {dim}: they come from different models",
                bad.path().display(),
                bad.dim()
            )));
        }
        let capped = |s: &TokenStore| -> u64 {
            (0..s.texts())
                .map(|i| {
                    let len = s.text_range(i).len();
                    t.tokens_per_text.map_or(len, |c| len.min(c)) as u64
                })
                .sum()
        };
        let total: u64 = stores.iter().map(capped).sum();
        let keep = (t.max_training_tokens as f64 / total.max(1) as f64).min(1.0);
        Ok(Sampler {
            stores,
            dim,
            total,
            keep,
            threshold: (keep * u64::MAX as f64) as u64,
            seed: t.sae.seed,
            tokens_per_text: t.tokens_per_text,
        })
    }

    /// Positions (within the text) of text `i` of store `s` that join the sample.
    fn chosen(&self, s: usize, i: usize) -> Vec<usize> {
        let range = self.stores[s].text_range(i);
        let len = range.len();
        let seed = self.seed;
        let positions: Vec<usize> = match self.tokens_per_text {
            Some(cap) if len > cap => {
                // A seeded partial shuffle: the first `cap` of a permutation.
                let mut p: Vec<usize> = (0..len).collect();
                for j in 0..cap {
                    let r = j
                        + (mix(seed ^ mix((s as u64) << 40 ^ (i as u64) << 8 ^ j as u64))
                            % (len - j) as u64) as usize;
                    p.swap(j, r);
                }
                p.truncate(cap);
                p.sort_unstable();
                p
            }
            _ => (0..len).collect(),
        };
        positions
            .into_iter()
            .filter(|&p| {
                self.keep >= 1.0
                    || mix(seed ^ mix(((s as u64) << 48) ^ (range.start + p) as u64))
                        <= self.threshold
            })
            .collect()
    }

    /// The sampled rows of texts `texts` of store `s`, appended to `out`.
    fn read_texts(&self, s: usize, texts: Range<usize>, out: &mut Vec<f32>) -> Result<()> {
        let (store, dim) = (&self.stores[s], self.dim);
        for i in texts {
            let chosen = self.chosen(s, i);
            if !chosen.is_empty() {
                let text_rows = store.read_rows(store.text_range(i))?;
                for p in chosen {
                    out.extend_from_slice(&text_rows[p * dim..(p + 1) * dim]);
                }
            }
        }
        Ok(())
    }

    /// Sampled rows per store, from the tables alone (no vector is read).
    fn counts(&self) -> Vec<usize> {
        (0..self.stores.len())
            .map(|s| {
                (0..self.stores[s].texts())
                    .map(|i| self.chosen(s, i).len())
                    .sum()
            })
            .collect()
    }

    /// "name (sampled of all tokens)" per store, for the progress notes and the summary.
    fn parts(&self, counts: &[usize]) -> Vec<String> {
        self.stores
            .iter()
            .zip(counts)
            .map(|(store, n)| {
                format!(
                    "{} ({n} of {} tokens)",
                    store
                        .path()
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    store.tokens()
                )
            })
            .collect()
    }
}

/// The sampled token rows as blocks of [`TEXTS_PER_BLOCK`] texts of one store, read on
/// demand: the streamed trainer's source.
pub(crate) struct TokenBlocks<'a> {
    sampler: &'a Sampler,
    /// Store and texts of each block.
    blocks: Vec<(usize, Range<usize>)>,
}

impl<'a> TokenBlocks<'a> {
    fn new(sampler: &'a Sampler, texts_per_block: usize) -> Self {
        let mut blocks = Vec::new();
        for (s, store) in sampler.stores.iter().enumerate() {
            let texts = store.texts();
            for start in (0..texts).step_by(texts_per_block.max(1)) {
                blocks.push((s, start..(start + texts_per_block).min(texts)));
            }
        }
        TokenBlocks { sampler, blocks }
    }

    /// Most sampled rows one block can hold (its texts' tokens after the per-text cap).
    fn max_rows(&self) -> usize {
        self.blocks
            .iter()
            .map(|(s, texts)| {
                let store = &self.sampler.stores[*s];
                texts
                    .clone()
                    .map(|i| {
                        let len = store.text_range(i).len();
                        self.sampler.tokens_per_text.map_or(len, |c| len.min(c))
                    })
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    }

    #[cfg_attr(
        not(any(feature = "flex", feature = "ndarray", feature = "cuda")),
        allow(dead_code)
    )]
    fn read(&self, block: usize) -> Result<Vec<f32>> {
        let (s, texts) = &self.blocks[block];
        let mut out = Vec::new();
        self.sampler.read_texts(*s, texts.clone(), &mut out)?;
        Ok(out)
    }
}

#[cfg(any(feature = "flex", feature = "ndarray", feature = "cuda"))]
impl latent_terms_sae::train::RowBlocks for TokenBlocks<'_> {
    fn dim(&self) -> usize {
        self.sampler.dim
    }

    fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    fn read_block(&self, block: usize) -> latent_terms_sae::Result<Vec<f32>> {
        self.read(block)
            .map_err(|e| latent_terms_sae::Error::RowSource(Box::new(e)))
    }
}

/// The sample in memory, read text by text so only the sample is held.
fn sample_rows(sampler: &Sampler, t: &TokenSettings, progress: &dyn Progress) -> Result<Sample> {
    let dim = sampler.dim;
    let mut rows = Vec::new();
    let mut counts = Vec::new();
    progress.begin("sampling training tokens", Some(sampler.total));
    for (s, store) in sampler.stores.iter().enumerate() {
        let before = rows.len();
        for i in 0..store.texts() {
            sampler.read_texts(s, i..i + 1, &mut rows)?;
            let len = store.text_range(i).len();
            progress.advance(t.tokens_per_text.map_or(len, |c| len.min(c)) as u64);
        }
        counts.push((rows.len() - before) / dim.max(1));
    }
    progress.end();
    Ok(Sample {
        parts: sampler.parts(&counts),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_near_the_target_is_one_epoch_and_a_small_one_several() {
        assert_eq!(epochs_for(1_200_000, 1_199_929), 1);
        assert_eq!(epochs_for(1_200_000, 1_200_000), 1);
        assert_eq!(epochs_for(1_200_000, 2_000_000), 1);
        assert_eq!(epochs_for(1_200_000, 250_000), 5);
        assert_eq!(epochs_for(1_200_000, 0), 1_200_000);
        // SplitMix64's well-known first output for seed 0: the sample's hash is unchanged.
        assert_eq!(mix(0), 0xe220_a839_7b1d_cdaf);
    }

    /// A token store of `texts` texts of 3–9 tokens, width 8, with seeded values.
    fn store(path: &Path, texts: usize, seed: u64) {
        use latent_terms_encoders::{
            SpecialTokens, StoreDtype, TokenStoreMetadata, TokenStoreWriter, TokenVectors,
        };
        let meta = TokenStoreMetadata {
            model: "tiny".into(),
            dim: 8,
            max_length: 16,
            special_tokens: SpecialTokens::Drop,
            prefix: String::new(),
            kind: "passage".into(),
        };
        let mut w = TokenStoreWriter::create(path, meta, StoreDtype::F16).unwrap();
        let mut state = seed;
        for i in 0..texts {
            let n = 3 + i % 7;
            let data = (0..n * 8)
                .map(|_| {
                    state = mix(state);
                    (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect();
            w.append(&TokenVectors {
                id: format!("t{i}"),
                dim: 8,
                token_ids: (0..n as u32).collect(),
                offsets: (0..n as u32).map(|t| (t, t + 1)).collect(),
                data,
            })
            .unwrap();
        }
        w.finish().unwrap();
    }

    /// Keeps the notes, to see which path a run took.
    #[derive(Default)]
    struct Notes(std::sync::Mutex<Vec<String>>);

    impl Progress for Notes {
        fn begin(&self, _: &str, _: Option<u64>) {}
        fn advance(&self, _: u64) {}
        fn end(&self) {}
        fn note(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_owned());
        }
    }

    impl Notes {
        fn any(&self, part: &str) -> bool {
            self.0.lock().unwrap().iter().any(|l| l.contains(part))
        }
    }

    #[test]
    fn streamed_blocks_hold_exactly_the_in_memory_sample() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tokens"), dir.path().join("b.tokens"));
        store(&a, 300, 1);
        store(&b, 40, 2);
        let mut t = TokenSettings {
            max_training_tokens: 900,
            tokens_per_text: Some(6),
            ..TokenSettings::default()
        };
        t.sae.seed = 3;
        let sampler = Sampler::open(&[a, b], &t).unwrap();
        let sample = sample_rows(&sampler, &t, &crate::pipeline::Quiet).unwrap();
        let counts = sampler.counts();
        assert_eq!(sample.rows.len() / 8, counts.iter().sum::<usize>());
        assert!((700..1100).contains(&(sample.rows.len() / 8)), "{counts:?}");
        assert_eq!(sample.parts, sampler.parts(&counts));
        let blocks = TokenBlocks::new(&sampler, 16);
        assert_eq!(blocks.blocks.len(), 19 + 3);
        let streamed: Vec<f32> = (0..blocks.blocks.len())
            .flat_map(|b| blocks.read(b).unwrap())
            .collect();
        assert_eq!(streamed, sample.rows);
        assert!(blocks.max_rows() <= 16 * 6);
    }

    /// Two tiny token stores in `dir` and a config that trains a small SAE on about 1,000
    /// of their rows, streamed (`training_memory_mb` 0).
    fn tiny_training(dir: &Path) -> (TokenStores, PipelineConfig) {
        let stores = TokenStores {
            corpus: dir.join("corpus.tokens"),
            queries: dir.join("queries.tokens"),
            key: "tiny-stores".into(),
            entry: None,
        };
        store(&stores.corpus, 300, 1);
        store(&stores.queries, 20, 2);
        let mut config = PipelineConfig::default();
        let t = &mut config.tokens;
        t.sae.d_sae = 32;
        t.sae.k = 4;
        t.sae.epochs = 3;
        t.sae.batch_size = 64;
        t.sae.warmup_steps = Some(5);
        t.max_training_tokens = 1000;
        t.min_training_tokens = 0;
        t.training_memory_mb = 0;
        t.stream_buffer_rows = 128;
        config.validate().unwrap();
        (stores, config)
    }

    /// A training stopped part way (a crash) leaves its checkpoint in the cache; the next
    /// run continues from it and ends with the uninterrupted training's weights, bit for
    /// bit, streamed and in memory, and removes it. A damaged checkpoint starts over.
    #[cfg(any(feature = "flex", feature = "ndarray", feature = "cuda"))]
    #[test]
    fn an_interrupted_training_continues_from_its_checkpoint() {
        use crate::pipeline::training::interrupt;
        let dir = tempfile::tempdir().unwrap();
        let (stores, mut config) = tiny_training(dir.path());
        let train_in = |cache: &Path, config: &PipelineConfig, notes: &Notes| {
            std::fs::create_dir_all(cache).unwrap();
            train(&stores, None, config, cache, &mut Stage::default(), notes)
        };
        let tensors = |sae: &TokenSae| {
            let w = sae.encoder.weights();
            [&w.w_enc, &w.b_enc, &w.w_dec, &w.b_dec]
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
        };
        for memory_mb in [0, 1] {
            config.tokens.training_memory_mb = memory_mb;
            let straight = train_in(
                &dir.path().join(format!("straight-{memory_mb}")),
                &config,
                &Notes::default(),
            )
            .unwrap();
            let cache = dir.path().join(format!("interrupted-{memory_mb}"));
            interrupt::set(Some(7));
            let crashed = train_in(&cache, &config, &Notes::default());
            interrupt::set(None);
            assert!(crashed.is_err(), "the stand-in crash fails the training");
            let partial = cache.join(format!("token-sae-{}.partial.safetensors", straight.key));
            let state = latent_terms_sae::train::state_path(&partial);
            assert!(
                partial.is_file() && state.is_file(),
                "{}",
                partial.display()
            );

            let notes = Notes::default();
            let resumed = train_in(&cache, &config, &notes).unwrap();
            assert!(
                notes.any("continued the interrupted SAE training"),
                "{:?}",
                notes.0
            );
            assert!(notes.any("(step 7)"), "{:?}", notes.0);
            assert_eq!(resumed.key, straight.key);
            assert!(
                tensors(&resumed) == tensors(&straight),
                "memory_mb {memory_mb}"
            );
            let leftovers: Vec<String> = std::fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains("partial"))
                .collect();
            assert!(
                leftovers.is_empty(),
                "the checkpoint is removed: {leftovers:?}"
            );

            // A damaged checkpoint is not continued: the training starts over.
            let cache = dir.path().join(format!("damaged-{memory_mb}"));
            std::fs::create_dir_all(&cache).unwrap();
            std::fs::write(
                cache.join(partial.file_name().unwrap()),
                b"not a checkpoint",
            )
            .unwrap();
            let notes = Notes::default();
            let fresh = train_in(&cache, &config, &notes).unwrap();
            assert!(notes.any("cannot be continued"), "{:?}", notes.0);
            assert!(tensors(&fresh) == tensors(&straight));
        }
    }

    /// The token SAE stage end to end on tiny stores: above the memory budget it trains
    /// streamed under its own cache key, below it in memory, and a cached SAE is found
    /// again without opening the stores.
    #[cfg(any(feature = "flex", feature = "ndarray", feature = "cuda"))]
    #[test]
    fn a_sample_above_the_memory_budget_trains_streamed_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, mut config) = tiny_training(dir.path());
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let run = |config: &PipelineConfig| {
            let notes = Notes::default();
            let mut stage = Stage::default();
            let sae = train(&stores, None, config, &cache, &mut stage, &notes).unwrap();
            (sae, stage.cached, notes)
        };
        let (streamed, cached, notes) = run(&config);
        assert!(!cached);
        assert!(notes.any("streamed from the token stores"), "{:?}", notes.0);
        assert!(notes.any("streamed SAE training held at most"));
        let summary = &streamed.summary;
        assert!((900..1100).contains(&summary.rows), "{}", summary.rows);
        assert!(summary.training_nmse.is_finite() && summary.training_nmse < 1.5);
        assert!(summary.validation_nmse.is_some());
        let (again, cached, _) = run(&config);
        assert!(cached);
        assert_eq!(again.key, streamed.key);

        // Within the budget the same sample trains in memory, under the usual key.
        config.tokens.training_memory_mb = 1;
        let (in_memory, cached, notes) = run(&config);
        assert!(!cached);
        assert!(notes.any("in memory"), "{:?}", notes.0);
        assert_ne!(in_memory.key, streamed.key);
        assert_eq!(in_memory.summary.rows, summary.rows);
        // Back above the budget, the streamed entry is used, not the in-memory one.
        config.tokens.training_memory_mb = 0;
        let (back, cached, _) = run(&config);
        assert!(cached);
        assert_eq!(back.key, streamed.key);
        let mut bad = config.clone();
        bad.tokens.stream_buffer_rows = 0;
        assert!(bad.validate().is_err());
    }
}
