//! SAE training shared by both representations, and the summary cached beside an SAE.

use std::ops::Range;
use std::path::{Path, PathBuf};

use latent_terms_sae::SaeWeights;
use serde::{Deserialize, Serialize};

use super::config::SaeSettings;
use super::tokens::TokenBlocks;
use super::{CacheEntry, Progress, Stage, write_atomic};
use crate::error::{Error, Result};

/// The rows an SAE trains on.
// Only a build with a training backend reads the rows; one without refuses to train.
#[cfg_attr(
    not(any(feature = "flex", feature = "ndarray", feature = "cuda")),
    allow(dead_code)
)]
pub(crate) enum SaeRows<'a> {
    /// Row-major rows in memory, with the KLD trainer's pairs (query row → document
    /// rows; empty for the other trainers).
    Memory {
        rows: &'a [f32],
        pairs: Vec<(usize, Vec<usize>)>,
    },
    /// `rows` sampled token rows read from the token stores block by block, through a
    /// shuffle buffer of `buffer_rows` rows: for samples larger than memory.
    Stream {
        source: &'a TokenBlocks<'a>,
        rows: usize,
        buffer_rows: usize,
    },
}

impl SaeRows<'_> {
    fn len(&self, dim: usize) -> usize {
        match self {
            SaeRows::Memory { rows, .. } => rows.len() / dim.max(1),
            SaeRows::Stream { rows, .. } => *rows,
        }
    }
}

/// Steps between the checkpoints a pipeline SAE training writes beside its cache entry,
/// so that an interrupted training continues where it stopped instead of starting over
/// (100 steps of 2,048 rows: about a minute of work here at 8,192 latents).
const CHECKPOINT_EVERY_STEPS: u64 = 100;

/// What the SAE stage leaves in the cache beside the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SaeSummary {
    pub(crate) training_nmse: f64,
    pub(crate) validation_nmse: Option<f64>,
    pub(crate) dead_fraction: f64,
    pub(crate) rows: usize,
    pub(crate) corpus: String,
}

/// An SAE in the cache: `<stem>.safetensors` and the `<stem>.summary.json` beside it,
/// sealed as one [`CacheEntry`].
pub(crate) struct CachedSae {
    pub(crate) weights: PathBuf,
    pub(crate) summary: PathBuf,
    entry: CacheEntry,
}

impl CachedSae {
    /// The cache entry `DIR/<stem>.safetensors` of the stage keyed `key`.
    pub(crate) fn new(dir: &Path, stem: &str, key: &str) -> Self {
        let weights = dir.join(format!("{stem}.safetensors"));
        let summary = dir.join(format!("{stem}.summary.json"));
        CachedSae {
            entry: CacheEntry::new(key, [weights.clone(), summary.clone()]),
            weights,
            summary,
        }
    }

    /// The weights and summary when the entry is there and verified (a stale one is
    /// noted in `stage`); `None` means train.
    pub(crate) fn load(&self, stage: &mut Stage) -> Result<Option<(SaeWeights, SaeSummary)>> {
        if !stage.lookup(&self.entry) {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&self.summary).map_err(|e| Error::io(&self.summary, e))?;
        let summary = serde_json::from_str::<SaeSummary>(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", self.summary.display())))?;
        Ok(Some((SaeWeights::load(&self.weights)?, summary)))
    }

    /// Trains an SAE on `rows` of width `dim` (described as `corpus`), saves it and its
    /// summary here.
    pub(crate) fn train(
        &self,
        rows: SaeRows<'_>,
        dim: usize,
        settings: &SaeSettings,
        input_scaling: bool,
        corpus: String,
        progress: &dyn Progress,
    ) -> Result<(SaeWeights, SaeSummary)> {
        let n = rows.len(dim);
        // The checkpoint of a training in progress: `<stem>.partial.safetensors`.
        let partial = self.weights.with_extension("partial.safetensors");
        let (weights, training_nmse, validation_nmse, dead_fraction) =
            train_sae(rows, dim, settings, input_scaling, &partial, progress)?;
        weights.save(&self.weights)?;
        let summary = SaeSummary {
            training_nmse,
            validation_nmse,
            dead_fraction,
            rows: n,
            corpus,
        };
        write_atomic(
            &self.summary,
            serde_json::to_string_pretty(&summary)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        self.entry.seal()?;
        remove_checkpoint(&partial)?;
        Ok((weights, summary))
    }
}

/// Removes a finished training's checkpoint, its cfg JSON and its resume state (absent
/// ones are fine).
fn remove_checkpoint(checkpoint: &Path) -> Result<()> {
    for path in [
        checkpoint.to_path_buf(),
        latent_terms_sae::cfg_path(checkpoint),
        latent_terms_sae::train::state_path(checkpoint),
    ] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The summary of an SAE trained elsewhere: the `<stem>.summary.json` a pipeline run
/// writes beside the SAEs it trains, or the `<stem>.log.json` that `latent-terms sae
/// train` writes (NaN where there is neither).
pub(crate) fn given_sae_summary(sae: &Path) -> SaeSummary {
    let stem = sae
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // An SAE a pipeline run trained (in its cache) has its summary beside it.
    if let Ok(text) = std::fs::read_to_string(sae.with_file_name(format!("{stem}.summary.json")))
        && let Ok(summary) = serde_json::from_str::<SaeSummary>(&text)
    {
        return SaeSummary {
            corpus: format!("given SAE {}, trained on {}", sae.display(), summary.corpus),
            ..summary
        };
    }
    let log: Option<serde_json::Value> =
        std::fs::read(sae.with_file_name(format!("{stem}.log.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    let get = |k: &str| log.as_ref().and_then(|l| l["summary"][k].as_f64());
    let stores: Vec<String> = log
        .as_ref()
        .and_then(|l| l["embeddings"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    SaeSummary {
        training_nmse: get("nmse").unwrap_or(f64::NAN),
        validation_nmse: get("validation_nmse"),
        dead_fraction: get("dead_fraction").unwrap_or(f64::NAN),
        rows: log.as_ref().and_then(|l| l["rows"].as_u64()).unwrap_or(0) as usize,
        corpus: if stores.is_empty() {
            format!("given SAE {}", sae.display())
        } else {
            format!(
                "given SAE {}, trained on {}",
                sae.display(),
                stores.join(" + ")
            )
        },
    }
}

/// Pairs each query row (the `queries` row ranges of `rows`) with its `k` nearest rows of
/// the `docs` range by dot product: the KLD trainer's groups, made without relevance
/// labels. With no query rows, each document is paired with its nearest other documents.
pub(crate) fn dense_neighbour_pairs(
    rows: &[f32],
    dim: usize,
    docs: Range<usize>,
    queries: &[Range<usize>],
    k: usize,
) -> Result<Vec<(usize, Vec<usize>)>> {
    use latent_terms_encoders::{Embeddings, SearchOptions, search};
    let block = |range: Range<usize>| -> Result<Embeddings> {
        let ids = range.clone().map(|i| i.to_string()).collect();
        Ok(Embeddings::new(
            ids,
            dim,
            rows[range.start * dim..range.end * dim].to_vec(),
        )?)
    };
    let doc_block = block(docs.clone())?;
    let self_pairs = queries.iter().all(|r| r.is_empty());
    let query_ranges = if self_pairs {
        vec![docs]
    } else {
        queries.to_vec()
    };
    let mut pairs = Vec::new();
    for range in query_ranges {
        let hits = search(
            &block(range.clone())?,
            &doc_block,
            &SearchOptions::top(k + usize::from(self_pairs)),
        )?;
        for (q, hits) in range.zip(hits) {
            let neighbours: Vec<usize> = hits
                .iter()
                .filter_map(|(id, _)| id.parse().ok())
                .filter(|&d| !(self_pairs && d == q))
                .take(k)
                .collect();
            pairs.push((q, neighbours));
        }
    }
    Ok(pairs)
}

/// Trains an SAE on `rows`, writing checkpoints to `partial` as it goes; a checkpoint
/// already there (an interrupted training of the same rows and settings) is continued.
#[cfg(any(feature = "flex", feature = "ndarray", feature = "cuda"))]
fn train_sae(
    rows: SaeRows<'_>,
    dim: usize,
    s: &SaeSettings,
    input_scaling: bool,
    partial: &Path,
    progress: &dyn Progress,
) -> Result<(SaeWeights, f64, Option<f64>, f64)> {
    use latent_terms_sae::train::{
        Backend, CheckpointPolicy, KldConfig, StepMetrics, StreamOptions, TrainConfig, TrainSet,
        Trainer,
    };
    let kind: latent_terms_sae::SaeKind = s.kind.parse()?;
    let n = rows.len(dim);
    let mut tc = TrainConfig::new(kind, s.d_sae, s.k);
    tc.epochs = s.epochs;
    tc.batch_size = s.batch_size.min(n.max(1));
    tc.optim.lr = s.lr;
    tc.aux.coef = s.aux_coef;
    tc.validation_fraction = s.validation_fraction;
    tc.seed = s.seed;
    tc.input_scaling = input_scaling;
    if let Some(w) = s.warmup_steps {
        tc.optim.warmup_steps = w;
    }
    let kld = s.kld.clone().unwrap_or_default();
    tc.kld = KldConfig {
        coef: kld.coef,
        temperature: kld.temperature,
        queries_per_batch: kld.queries_per_batch,
        docs_per_query: kld.docs_per_query,
    };
    for warning in tc.warnings(n) {
        progress.note(&format!("warning: {warning}"));
    }
    let backend = match &s.backend {
        Some(name) => name.parse::<Backend>()?,
        None => Backend::default_cpu()?,
    };
    progress.note(&format!("training on backend {backend:?}"));
    let trainer = Trainer::new(tc, backend)?.with_checkpoints(CheckpointPolicy {
        path: partial.to_path_buf(),
        every_steps: CHECKPOINT_EVERY_STEPS,
    });
    #[cfg(test)]
    let trainer = match interrupt::after() {
        Some(steps) => trainer.with_step_limit(steps),
        None => trainer,
    };
    let resumable = partial.is_file();
    let mut started = false;
    let mut last = 0;
    let mut observe = |m: &StepMetrics| {
        if !started {
            progress.begin("SAE training (steps)", Some(m.total_steps));
            started = true;
        }
        progress.advance(m.step.saturating_sub(last));
        last = m.step;
        // A line every tenth of the run, for logs where no bar is drawn.
        let tenth = (m.total_steps / 10).max(1);
        if m.step.is_multiple_of(tenth) || m.step == m.total_steps {
            progress.note(&format!(
                "SAE step {}/{}: NMSE {:.3}, dead {:.1}%, {:.0} rows/s",
                m.step,
                m.total_steps,
                m.nmse,
                100.0 * m.dead_fraction,
                m.samples_per_s
            ));
        }
    };
    let outcome = match rows {
        SaeRows::Memory { rows, pairs } => {
            let set = TrainSet::new(rows, dim)?.with_pairs(pairs)?;
            let resumed = resumable
                .then(|| {
                    continued(
                        trainer.resume(&set, partial, &mut observe),
                        partial,
                        progress,
                    )
                })
                .flatten();
            match resumed {
                Some(outcome) => outcome,
                None => trainer.train(&set, &mut observe)?,
            }
        }
        SaeRows::Stream {
            source,
            buffer_rows,
            ..
        } => {
            let options = StreamOptions {
                buffer_rows,
                ..StreamOptions::default()
            };
            let resumed = resumable
                .then(|| {
                    let outcome = trainer.resume_streamed(source, &options, partial, &mut observe);
                    continued(outcome, partial, progress)
                })
                .flatten();
            match resumed {
                Some(outcome) => outcome,
                None => trainer.train_streamed(source, &options, &mut observe)?,
            }
        }
    };
    progress.end();
    #[cfg(test)]
    if let Some(steps) = interrupt::after() {
        return Err(Error::Invalid(format!(
            "interrupted after {steps} steps (a test)"
        )));
    }
    if let Some(peak) = outcome.summary.peak_buffered_rows {
        progress.note(&format!(
            "streamed SAE training held at most {peak} rows ({:.0} MiB) of training data",
            (peak * dim * 4) as f64 / f64::from(1u32 << 20)
        ));
    }
    let sm = outcome.summary;
    Ok((
        outcome.weights,
        sm.nmse,
        sm.validation_nmse,
        sm.dead_fraction,
    ))
}

/// The outcome of continuing from the checkpoint at `partial`, or `None` (noted) when it
/// cannot be continued: a checkpoint of other rows or settings starts the training over.
#[cfg(any(feature = "flex", feature = "ndarray", feature = "cuda"))]
fn continued(
    outcome: latent_terms_sae::Result<latent_terms_sae::train::TrainOutcome>,
    partial: &Path,
    progress: &dyn Progress,
) -> Option<latent_terms_sae::train::TrainOutcome> {
    match outcome {
        Ok(outcome) => {
            progress.note(&format!(
                "continued the interrupted SAE training from its checkpoint {} (step {})",
                partial.display(),
                outcome.state.step - outcome.summary.steps
            ));
            Some(outcome)
        }
        Err(e) => {
            progress.note(&format!(
                "warning: the checkpoint {} cannot be continued ({e}); training from the start",
                partial.display()
            ));
            None
        }
    }
}

/// A test's stand-in for a crash: the next SAE training on this thread stops after this
/// many steps (leaving its checkpoint) and fails.
#[cfg(all(test, any(feature = "flex", feature = "ndarray", feature = "cuda")))]
pub(crate) mod interrupt {
    use std::cell::Cell;

    thread_local! {
        static AFTER: Cell<Option<u64>> = const { Cell::new(None) };
    }

    pub(crate) fn set(steps: Option<u64>) {
        AFTER.with(|a| a.set(steps));
    }

    pub(crate) fn after() -> Option<u64> {
        AFTER.with(Cell::get)
    }
}

#[cfg(not(any(feature = "flex", feature = "ndarray", feature = "cuda")))]
fn train_sae(
    _: SaeRows<'_>,
    _: usize,
    _: &SaeSettings,
    _: bool,
    _: &Path,
    _: &dyn Progress,
) -> Result<(SaeWeights, f64, Option<f64>, f64)> {
    Err(Error::Invalid(
        "this build has no SAE training backend; enable the flex, ndarray or cuda feature".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_neighbours_pair_queries_with_their_nearest_documents() {
        // Documents 0..3 on the axes and the diagonal; queries 3..5 near documents 1 and 2.
        let rows = [1.0, 0.0, 0.0, 1.0, 0.7, 0.7, 0.1, 0.9, 0.6, 0.8];
        let queries = [Range { start: 3, end: 5 }];
        let pairs = dense_neighbour_pairs(&rows, 2, 0..3, &queries, 2).unwrap();
        assert_eq!(pairs, vec![(3, vec![1, 2]), (4, vec![2, 1])]);
        // Without query rows, documents pair with their nearest other documents.
        let pairs = dense_neighbour_pairs(&rows, 2, 0..3, &[], 1).unwrap();
        assert_eq!(pairs, vec![(0, vec![2]), (1, vec![2]), (2, vec![0])]);
    }

    #[test]
    fn a_given_sae_is_described_by_the_summary_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let sae = dir.path().join("token-sae-x.safetensors");
        assert!(given_sae_summary(&sae).training_nmse.is_nan());
        let summary = SaeSummary {
            training_nmse: 0.25,
            validation_nmse: Some(0.3),
            dead_fraction: 0.0,
            rows: 12,
            corpus: "six collections".into(),
        };
        std::fs::write(
            dir.path().join("token-sae-x.summary.json"),
            serde_json::to_string(&summary).unwrap(),
        )
        .unwrap();
        let given = given_sae_summary(&sae);
        assert_eq!(given.training_nmse, 0.25);
        assert_eq!(given.rows, 12);
        assert!(
            given.corpus.ends_with("trained on six collections"),
            "{}",
            given.corpus
        );
    }
}
