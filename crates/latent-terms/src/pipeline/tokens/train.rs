//! Stage 2: the token SAE, trained on a sample of token rows.

use std::path::{Path, PathBuf};

use latent_terms_encoders::TokenStore;
use latent_terms_sae::{SaeEncoder, SaeWeights};

use super::TokenStores;
use crate::error::{Error, Result};
use crate::pipeline::config::{PipelineConfig, TokenSettings};
use crate::pipeline::training::{CachedSae, SaeSummary, given_sae_summary};
use crate::pipeline::{CacheKey, Progress, Stage};

/// The trained token SAE (stage 2).
pub(crate) struct TokenSae {
    pub(crate) encoder: SaeEncoder,
    pub(crate) summary: SaeSummary,
    pub(crate) key: String,
}

/// Stage 2: a TopK SAE over a sample of token rows of the corpus (and, with
/// `train_on_queries`, the queries) plus the extra token stores.
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
    let key = key.finish();
    let entry = CachedSae::new(cache, &format!("token-sae-{key}"), &key);
    if let Some((weights, summary)) = entry.load(stage)? {
        stage.cached = true;
        return Ok(TokenSae {
            encoder: SaeEncoder::new(weights)?,
            summary,
            key,
        });
    }
    let sample = sample_rows(&sources, t, progress)?;
    let n = sample.rows.len() / sample.dim.max(1);
    if n < t.min_training_tokens {
        progress.note(&format!(
            "warning: only {n} token rows to train the token SAE on (fewer than {}): its \
             vocabulary will be poor. Add text: token stores of other collections \
             (`latent-terms encode --dataset D --out D.safetensors --tokens`, then \
             `--train-extra-tokens D.tokens`), or a trained token SAE (`--token-sae`)",
            t.min_training_tokens
        ));
    }
    progress.note(&format!(
        "training the token SAE on {n} token rows sampled from {} tokens: {}",
        sample.total,
        sample.parts.join(" + ")
    ));
    // Steps, not epochs, are what an SAE needs: a small sample is seen several times.
    // Rounded, not ceiled: a sample a few rows short of the target is one epoch, not two.
    let mut settings = t.sae.clone();
    settings.epochs = settings.epochs.max(epochs_for(t.max_training_tokens, n));
    let (weights, summary) = entry.train(
        &sample.rows,
        sample.dim,
        &settings,
        true,
        Vec::new(),
        sample.parts.join(" + "),
        progress,
    )?;
    Ok(TokenSae {
        encoder: SaeEncoder::new(weights)?,
        summary,
        key,
    })
}

/// Passes over a sample of `rows` rows that give about `target` training rows (at least 1).
fn epochs_for(target: usize, rows: usize) -> usize {
    ((target as f64 / rows.max(1) as f64).round() as usize).max(1)
}

struct Sample {
    rows: Vec<f32>,
    dim: usize,
    total: u64,
    parts: Vec<String>,
}

/// SplitMix64's output for state `x`: a fixed hash, so the sample repeats exactly for a
/// seed.
fn mix(x: u64) -> u64 {
    latent_terms_sparse_index::SplitMix64::new(x).next_u64()
}

/// Up to `max_training_tokens` token rows, each row kept with the same probability
/// (after an optional per-text cap), read block by block so only the sample is in memory.
fn sample_rows(sources: &[PathBuf], t: &TokenSettings, progress: &dyn Progress) -> Result<Sample> {
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
    let threshold = (keep * u64::MAX as f64) as u64;
    let seed = t.sae.seed;
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    progress.begin("sampling training tokens", Some(total));
    for (s, store) in stores.iter().enumerate() {
        let before = rows.len();
        for i in 0..store.texts() {
            let range = store.text_range(i);
            let len = range.len();
            let positions: Vec<usize> = match t.tokens_per_text {
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
            let chosen: Vec<usize> = positions
                .into_iter()
                .filter(|&p| {
                    keep >= 1.0
                        || mix(seed ^ mix(((s as u64) << 48) ^ (range.start + p) as u64))
                            <= threshold
                })
                .collect();
            if !chosen.is_empty() {
                let text_rows = store.read_rows(range.clone())?;
                for p in chosen {
                    rows.extend_from_slice(&text_rows[p * dim..(p + 1) * dim]);
                }
            }
            progress.advance(t.tokens_per_text.map_or(len, |c| len.min(c)) as u64);
        }
        parts.push(format!(
            "{} ({} of {} tokens)",
            store
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (rows.len() - before) / dim.max(1),
            store.tokens()
        ));
    }
    progress.end();
    if rows.is_empty() {
        return Err(Error::Invalid(
            "the token stores hold no token to train the token SAE on".into(),
        ));
    }
    Ok(Sample {
        rows,
        dim,
        total,
        parts,
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
}
