//! TopK, BatchTopK and contrastive-KLD trainers on burn: one loop, three selection rules.
//!
//! ```no_run
//! use latent_terms_sae::train::{Backend, TrainConfig, TrainSet, Trainer};
//! use latent_terms_sae::SaeKind;
//!
//! let rows: Vec<f32> = vec![0.1; 384 * 10_000]; // your embeddings, row-major
//! let set = TrainSet::new(&rows, 384)?;
//! let config = TrainConfig::new(SaeKind::TopK, 4096, 32);
//! let outcome = Trainer::new(config, Backend::default_cpu()?)?.train(&set, &mut |_| {})?;
//! outcome.weights.save("sae.safetensors")?;
//! # Ok::<(), latent_terms_sae::Error>(())
//! ```

mod backend;
mod data;
mod kld;
mod memory;
mod optim;
mod select;
mod state;
mod step;
mod stream;
#[cfg(test)]
mod test_support;

use std::borrow::Cow;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use crate::resume::TrainState;
pub use backend::Backend;
pub use data::TrainSet;
pub use kld::KldConfig;
pub use memory::retain_freed_memory;
pub use optim::{Decay, MAX_WARMUP_FRACTION, OptimConfig};
pub use state::state_path;
pub use stream::{ChunkedRows, RowBlocks, StreamOptions};

use crate::encoder::{EncodeOptions, SaeEncoder};
use crate::error::{Error, Result};
use crate::weights::{SaeConfig, SaeKind, SaeWeights};
use data::Rng;
use step::Params;

/// How the pre-encoder bias `b_dec` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BiasInit {
    /// The mean of the training rows.
    Mean,
    /// Their geometric median (Weiszfeld), more robust to outliers.
    GeometricMedian,
}

/// AuxK dead-latent loss (Gao et al. 2025).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuxConfig {
    /// Dead latents used to reconstruct the residual per row; `None` means `2k`.
    pub k_aux: Option<usize>,
    /// Weight of the (normalised) auxiliary loss; 0 turns it off.
    pub coef: f32,
    /// A latent is dead after this many steps without firing.
    pub dead_after_steps: u32,
}

impl Default for AuxConfig {
    fn default() -> Self {
        AuxConfig {
            k_aux: None,
            coef: 1.0 / 16.0,
            dead_after_steps: 20,
        }
    }
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Selection rule and loss.
    pub kind: SaeKind,
    /// Number of latents.
    pub d_sae: usize,
    /// Active latents per vector (per vector on average for BatchTopK).
    pub k: usize,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per step (plus the KLD group for the KLD trainer).
    pub batch_size: usize,
    /// Optimiser.
    pub optim: OptimConfig,
    /// AuxK.
    pub aux: AuxConfig,
    /// Contrastive KL term (KLD trainer only).
    pub kld: KldConfig,
    /// Initial `b_dec`.
    pub bias_init: BiasInit,
    /// Fraction of rows held out to measure generalisation (0 for none).
    pub validation_fraction: f64,
    /// Seed of every random choice (initialisation, order, sampling).
    pub seed: u64,
    /// Record a history entry every this many steps.
    pub log_every: u64,
    /// Scale every input row by one constant `c = sqrt(d_in / mean ‖x‖²)` (over the
    /// training rows, validation rows excluded) so that the rows the SAE trains on have
    /// mean squared norm `d_in` (SAELens' `normalize_activations =
    /// "expected_average_only_in"`). For inputs that are not normalised, such as token
    /// hidden states, whose norms would otherwise set the effective learning rate. `c` is
    /// stored as the output's [`SaeConfig::input_scale`], which [`SaeEncoder`] applies, so
    /// callers keep using their own units. Off by default (and in configurations saved
    /// before it existed).
    #[serde(default)]
    pub input_scaling: bool,
}

/// Training rows the bias initialisation and the summary look at (a sample of them when
/// there are more).
pub(crate) const SUMMARY_ROWS: usize = 20_000;

/// Fewer total steps than this draws a warning from [`TrainConfig::warnings`].
pub const MIN_STEPS: u64 = 200;

impl TrainConfig {
    /// Defaults for a `kind` SAE with `d_sae` latents and `k` active.
    pub fn new(kind: SaeKind, d_sae: usize, k: usize) -> Self {
        TrainConfig {
            kind,
            d_sae,
            k,
            epochs: 10,
            batch_size: 1024,
            optim: OptimConfig::default(),
            aux: AuxConfig::default(),
            kld: KldConfig::default(),
            bias_init: BiasInit::GeometricMedian,
            validation_fraction: 0.0,
            seed: 0,
            log_every: 10,
            input_scaling: false,
        }
    }

    /// Rows trained on out of `rows` (the rest are held out for validation).
    fn training_rows(&self, rows: usize) -> usize {
        let held = (rows as f64 * self.validation_fraction) as usize;
        rows.saturating_sub(held)
    }

    /// Steps per epoch over `train_rows` training rows: whole batches, at least one.
    fn steps_per_epoch(&self, train_rows: usize) -> u64 {
        if train_rows == 0 {
            return 0;
        }
        (train_rows / self.batch_size.clamp(1, train_rows)).max(1) as u64
    }

    /// Total optimiser steps of a run over a set of `rows` rows (validation rows excluded,
    /// whole batches per epoch, at least one per epoch), as [`Trainer::train`] runs it.
    pub fn total_steps(&self, rows: usize) -> u64 {
        self.steps_per_epoch(self.training_rows(rows)) * self.epochs as u64
    }

    /// Warnings about a run over `rows` rows that will probably train badly, for the
    /// caller to print: fewer than [`MIN_STEPS`] total steps, or a batch larger than the
    /// training rows. Empty when there is nothing to say.
    ///
    /// ```
    /// use latent_terms_sae::{SaeKind, train::TrainConfig};
    ///
    /// let mut config = TrainConfig::new(SaeKind::TopK, 8192, 32);
    /// config.epochs = 1;
    /// config.batch_size = 2048;
    /// assert!(config.warnings(1_200_000).is_empty()); // 585 steps
    /// assert!(config.warnings(60_000)[0].contains("29 steps"));
    /// ```
    pub fn warnings(&self, rows: usize) -> Vec<String> {
        let mut out = Vec::new();
        let train = self.training_rows(rows);
        let total = self.total_steps(rows);
        if total < MIN_STEPS {
            out.push(format!(
                "this run has {total} steps; the SAE needs more (at least {MIN_STEPS}): \
                 raise epochs or lower batch_size"
            ));
        }
        if self.batch_size > train {
            out.push(format!(
                "batch_size {} exceeds the {train} training rows; each step uses all of them",
                self.batch_size
            ));
        }
        out
    }

    fn check(&self, d_in: usize) -> Result<()> {
        SaeConfig::new(self.kind, d_in, self.d_sae, self.k)?;
        let bad = |m: &str| Err(Error::InvalidConfig(m.into()));
        if self.batch_size == 0 || self.epochs == 0 {
            return bad("batch size and epochs must be positive");
        }
        if !(0.0..0.5).contains(&self.validation_fraction) {
            return bad("the validation fraction must be in [0, 0.5)");
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return bad("the learning rate must be positive");
        }
        if self.kind == SaeKind::Kld {
            self.kld.check()?;
        }
        Ok(())
    }

    fn k_aux(&self) -> usize {
        self.aux.k_aux.unwrap_or(2 * self.k).min(self.d_sae)
    }
}

/// Metrics of one step, as shown live and logged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based step.
    pub step: u64,
    /// Total steps of the run.
    pub total_steps: u64,
    /// Fractional epoch reached.
    pub epoch: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss (reconstruction + weighted AuxK + weighted KL).
    pub loss: f64,
    /// Mean squared error per coordinate, in the caller's units (divided by the squared
    /// input scale when [`TrainConfig::input_scaling`] is on; `loss` is in the scaled units).
    pub mse: f64,
    /// Squared error over the data's spread about its mean (scale-free).
    pub nmse: f64,
    /// Mean active latents per row.
    pub l0: f64,
    /// Fraction of latents dead (no firing in `dead_after_steps`).
    pub dead_fraction: f64,
    /// Normalised AuxK loss (before its weight).
    pub aux_loss: f64,
    /// KL term (before its weight); 0 outside the KLD trainer.
    pub kld: f64,
    /// Running inference-threshold estimate (BatchTopK).
    pub threshold: f64,
    /// Rows per second over the steps since the last report.
    pub samples_per_s: f64,
}

/// Quality of the finished SAE, measured with [`SaeEncoder`] (not with training batches).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// NMSE on (a sample of up to 20,000) training rows.
    pub nmse: f64,
    /// MSE per coordinate on those rows.
    pub mse: f64,
    /// Mean active latents per row at inference (training rule).
    pub l0: f64,
    /// NMSE on the held-out rows, when some were held out.
    pub validation_nmse: Option<f64>,
    /// Fraction of latents that never fire on those rows.
    pub dead_fraction: f64,
    /// Mean training throughput, rows per second.
    pub samples_per_s: f64,
    /// Steps run in this call.
    pub steps: u64,
    /// Wall time of this call, seconds.
    pub seconds: f64,
    /// Most rows [`Trainer::train_streamed`] held in memory at once: the shuffle buffer,
    /// the block being read, the batch, the validation rows and the training sample (at
    /// most [`StreamOptions::max_rows`]; times `d_in × 4` bytes). `None` after
    /// [`Trainer::train`], which works on the caller's rows in place.
    #[serde(default)]
    pub peak_buffered_rows: Option<usize>,
}

/// What a training run returns.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The trained SAE (with its threshold for BatchTopK).
    pub weights: SaeWeights,
    /// Optimiser and dead-latent state, to resume from.
    pub state: TrainState,
    /// Every `log_every`-th step's metrics, and the last.
    pub history: Vec<StepMetrics>,
    /// Final quality.
    pub summary: Summary,
}

/// Where and how often to write checkpoints during training.
#[derive(Clone, Debug)]
pub struct CheckpointPolicy {
    /// The checkpoint path (`SAE.safetensors`); the resume state goes beside it.
    pub path: PathBuf,
    /// Write every this many steps (and at the end).
    pub every_steps: u64,
}

/// Trains sparse autoencoders on one burn device.
#[derive(Debug)]
pub struct Trainer {
    config: TrainConfig,
    device: Device,
    checkpoints: Option<CheckpointPolicy>,
    step_limit: Option<u64>,
    /// Run the sparse passes (`step::HostSparse`) and the Adam update
    /// (`Moments::update_host`) over host memory: on burn flex, whose tensors live there,
    /// they are bit for bit the tensor ops and faster.
    host_kernels: bool,
}

/// What every step of a run needs besides its rows.
struct Run {
    dim: usize,
    /// Spread of the training rows in the caller's units.
    spread: f64,
    /// Input scale the SAE trains with (1 without input scaling).
    scale: f32,
    steps_per_epoch: u64,
    total_steps: u64,
    /// Rows per step, before a KLD group.
    batch: usize,
}

impl Run {
    /// Trains in the checkpoint's units: a resumed run continues with the input scale its
    /// weights were trained in, not one recomputed from the rows given now.
    fn train_in_units_of(&mut self, checkpoint: &SaeWeights) {
        self.scale = checkpoint.config.input_scale.unwrap_or(1.0);
    }
}

/// Where a run's batches come from, and the rows its summary measures: the caller's set
/// in memory, or blocks streamed through a shuffle buffer. Both feed the same step loop.
enum Rows<'a> {
    Memory(InMemory<'a>),
    Stream(Box<stream::StreamBatches<'a>>),
}

struct InMemory<'a> {
    set: &'a TrainSet<'a>,
    train_rows: Vec<usize>,
    validation_rows: Vec<usize>,
    order_epoch: u64,
    order: Vec<usize>,
}

impl Rows<'_> {
    /// The rows of step `step` in the caller's units, with its KLD group.
    fn batch(
        &mut self,
        run: &Run,
        c: &TrainConfig,
        step: u64,
    ) -> Result<(Vec<f32>, Option<kld::Group>)> {
        let epoch = step / run.steps_per_epoch;
        match self {
            Rows::Memory(m) => {
                if epoch != m.order_epoch {
                    m.order = data::epoch_order(m.train_rows.len(), c.seed, epoch);
                    m.order_epoch = epoch;
                }
                let pos = (step % run.steps_per_epoch) as usize * run.batch;
                let mut rows: Vec<usize> = m.order[pos..pos + run.batch]
                    .iter()
                    .map(|&i| m.train_rows[i])
                    .collect();
                let group = if c.kind == SaeKind::Kld {
                    let mut rng = Rng::new(c.seed ^ step.wrapping_mul(0x2545_F491_4F6C_DD1D));
                    Some(kld::sample_group(&m.set.pairs, &c.kld, &mut rng, &mut rows))
                } else {
                    None
                };
                Ok((m.set.gather(&rows), group))
            }
            Rows::Stream(s) => Ok((s.next(epoch, run.batch)?, None)),
        }
    }

    /// Training rows (up to [`SUMMARY_ROWS`]) and validation rows, for the summary.
    fn summary_rows(&self) -> (Cow<'_, [f32]>, Cow<'_, [f32]>) {
        match self {
            Rows::Memory(m) => {
                let sample: Vec<usize> = m.train_rows.iter().copied().take(SUMMARY_ROWS).collect();
                (
                    Cow::Owned(m.set.gather(&sample)),
                    Cow::Owned(m.set.gather(&m.validation_rows)),
                )
            }
            Rows::Stream(s) => (
                Cow::Borrowed(s.plan.sample.as_slice()),
                Cow::Borrowed(s.plan.validation.as_slice()),
            ),
        }
    }

    /// Readies the batches of step `step` onwards, for a run resumed there. In memory any
    /// step's batch is found directly; a stream is replayed up to it.
    fn skip_to(&mut self, run: &Run, step: u64) -> Result<()> {
        match self {
            Rows::Memory(_) => Ok(()),
            Rows::Stream(s) => s.skip(
                step / run.steps_per_epoch,
                step % run.steps_per_epoch,
                run.batch,
            ),
        }
    }

    fn peak_rows(&self) -> Option<usize> {
        match self {
            Rows::Memory(_) => None,
            Rows::Stream(s) => Some(s.peak_rows),
        }
    }
}

impl Trainer {
    /// A trainer for `config` on `backend`.
    pub fn new(config: TrainConfig, backend: Backend) -> Result<Self> {
        Ok(Trainer {
            config,
            device: backend.device()?,
            checkpoints: None,
            step_limit: None,
            host_kernels: backend == Backend::Flex,
        })
    }

    /// Writes checkpoints (weights + resume state) during training.
    pub fn with_checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoints = Some(policy);
        self
    }

    /// Stops after `steps` steps in one call (the schedule still spans all epochs), so a
    /// run can be split across calls with [`Trainer::resume`] or
    /// [`Trainer::resume_streamed`].
    pub fn with_step_limit(mut self, steps: u64) -> Self {
        self.step_limit = Some(steps);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains a new SAE on `set`, calling `observe` after every step.
    pub fn train(
        &self,
        set: &TrainSet<'_>,
        observe: &mut dyn FnMut(&StepMetrics),
    ) -> Result<TrainOutcome> {
        let (run, mut rows) = self.plan(set)?;
        let weights = self.initial_weights(&run, &rows);
        let state = TrainState::fresh(&weights);
        self.run(&run, &mut rows, weights, state, observe)
    }

    /// Trains a new SAE on rows read block by block from `source`, for sets larger than
    /// memory, calling `observe` after every step.
    ///
    /// One pass over the blocks plans the run: it checks every block (a ragged block,
    /// NaN/Inf or an empty source is a typed error), holds out validation rows (each row
    /// with probability `validation_fraction`, seeded, then capped at
    /// [`StreamOptions::max_validation_rows`]; they are never trained on), draws a sample
    /// of training rows for the bias initialisation and the summary, and sums the
    /// training rows' mean, spread and mean squared norm (input scaling). Steps per epoch
    /// come from the counted training rows. Each epoch then visits the blocks in an order
    /// fixed by `(seed, epoch)`, fills a buffer of [`StreamOptions::buffer_rows`] training
    /// rows, shuffles it (seeded) and takes batches from it, so a run repeats exactly for
    /// a seed.
    ///
    /// Memory: at most [`StreamOptions::max_rows`] rows, `(max(buffer_rows, batch_size) +
    /// largest block + batch_size + max_validation_rows + sample_rows) × d_in × 4` bytes
    /// besides the model and its optimiser state;
    /// [`Summary::peak_buffered_rows`] reports what the run held. The result differs from
    /// [`Trainer::train`] on the same rows (a different order and validation split).
    ///
    /// The KLD trainer needs pairs over in-memory rows and is refused here. Checkpoints
    /// (see [`Trainer::with_checkpoints`]) record the stream options and a fingerprint of
    /// the plan; [`Trainer::resume_streamed`] continues such a run from the same source.
    ///
    /// ```
    /// use latent_terms_sae::SaeKind;
    /// use latent_terms_sae::train::{Backend, ChunkedRows, StreamOptions, TrainConfig, Trainer};
    ///
    /// // 2,000 rows of width 8 in blocks of 100, trained through a 256-row buffer.
    /// let rows: Vec<f32> = (0..16_000).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
    /// let source = ChunkedRows::new(&rows, 8, 100);
    /// let mut config = TrainConfig::new(SaeKind::TopK, 32, 4);
    /// config.epochs = 2;
    /// config.batch_size = 64;
    /// config.validation_fraction = 0.05;
    /// let options = StreamOptions { buffer_rows: 256, ..StreamOptions::default() };
    /// let trainer = Trainer::new(config, Backend::default_cpu()?)?;
    /// let outcome = trainer.train_streamed(&source, &options, &mut |_| {})?;
    /// let peak = outcome.summary.peak_buffered_rows.unwrap();
    /// assert!(peak <= options.max_rows(64, 100));
    /// assert!(outcome.summary.validation_nmse.is_some());
    /// # Ok::<(), latent_terms_sae::Error>(())
    /// ```
    pub fn train_streamed(
        &self,
        source: &dyn RowBlocks,
        options: &StreamOptions,
        observe: &mut dyn FnMut(&StepMetrics),
    ) -> Result<TrainOutcome> {
        let (run, mut rows, fingerprint) = self.plan_stream(source, options)?;
        let mut weights = self.initial_weights(&run, &rows);
        let metadata = &mut weights.config.metadata;
        metadata.insert(
            stream::OPTIONS_KEY.into(),
            serde_json::to_value(options).unwrap_or_default(),
        );
        metadata.insert(
            stream::PLAN_KEY.into(),
            serde_json::to_value(&fingerprint).unwrap_or_default(),
        );
        let state = TrainState::fresh(&weights);
        self.run(&run, &mut rows, weights, state, observe)
    }

    /// Continues the run saved at `checkpoint` (weights and the state file beside it).
    /// The configuration must match the saved one except for `epochs`, which may grow.
    /// Runs on in-memory sets only: a checkpoint of a [`Trainer::train_streamed`] run is
    /// refused (continue it with [`Trainer::resume_streamed`]).
    pub fn resume(
        &self,
        set: &TrainSet<'_>,
        checkpoint: &Path,
        observe: &mut dyn FnMut(&StepMetrics),
    ) -> Result<TrainOutcome> {
        let (mut run, mut rows) = self.plan(set)?;
        let (weights, state) = self.load_resume_point(checkpoint, set.dim(), None)?;
        run.train_in_units_of(&weights);
        self.run(&run, &mut rows, weights, state, observe)
    }

    /// Continues the [`Trainer::train_streamed`] run saved at `checkpoint` (weights and
    /// the state file beside it) on the same `source` and `options`, calling `observe`
    /// after every step. Split across calls (a [`Trainer::with_step_limit`] run with
    /// checkpoints, then this), a run ends with exactly the weights of an uninterrupted
    /// one.
    ///
    /// The configuration must match the saved one except for `epochs`, which may grow;
    /// `options` must equal the checkpoint's, and the planning pass over `source` must
    /// find the stream the checkpoint was trained on (same blocks, rows, validation rows
    /// and sums): other rows are refused with [`Error::InvalidConfig`], a source of
    /// another width with [`Error::DimensionMismatch`], a checkpoint of an in-memory run
    /// with [`Error::InvalidConfig`] (continue it with [`Trainer::resume`]).
    ///
    /// The stream's order is a function of the seed, the epoch, the options and the plan,
    /// so the run replays it to the saved step without training on it: earlier epochs are
    /// skipped unread, and the current one's blocks up to the resume point are read and
    /// shuffled again but never made into batches. A resume thus costs one planning pass
    /// and part of an epoch's reads besides the remaining steps. Memory stays within
    /// [`StreamOptions::max_rows`].
    ///
    /// ```
    /// use latent_terms_sae::SaeKind;
    /// use latent_terms_sae::train::{
    ///     Backend, CheckpointPolicy, ChunkedRows, StreamOptions, TrainConfig, Trainer,
    /// };
    ///
    /// let rows: Vec<f32> = (0..8_000).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
    /// let source = ChunkedRows::new(&rows, 8, 100);
    /// let mut config = TrainConfig::new(SaeKind::TopK, 32, 4);
    /// config.epochs = 2;
    /// config.batch_size = 64;
    /// let options = StreamOptions { buffer_rows: 256, ..StreamOptions::default() };
    /// let dir = tempfile::tempdir().unwrap();
    /// let policy = CheckpointPolicy { path: dir.path().join("sae.safetensors"), every_steps: 5 };
    /// let backend = Backend::default_cpu()?;
    /// let trainer = || Trainer::new(config.clone(), backend);
    /// // Stopped after 10 of the 30 steps (a crash would leave the step-10 checkpoint too)...
    /// trainer()?
    ///     .with_checkpoints(policy.clone())
    ///     .with_step_limit(10)
    ///     .train_streamed(&source, &options, &mut |_| {})?;
    /// // ...and continued from the checkpoint.
    /// let outcome = trainer()?.resume_streamed(&source, &options, &policy.path, &mut |_| {})?;
    /// assert_eq!((outcome.state.step, outcome.summary.steps), (30, 20));
    /// # Ok::<(), latent_terms_sae::Error>(())
    /// ```
    pub fn resume_streamed(
        &self,
        source: &dyn RowBlocks,
        options: &StreamOptions,
        checkpoint: &Path,
        observe: &mut dyn FnMut(&StepMetrics),
    ) -> Result<TrainOutcome> {
        // The checkpoint is checked before the planning pass, which reads every block.
        let (weights, state) = self.load_resume_point(checkpoint, source.dim(), Some(options))?;
        let saved: stream::PlanFingerprint = weights
            .config
            .metadata
            .get(stream::PLAN_KEY)
            .cloned()
            .ok_or_else(|| {
                Error::InvalidConfig(
                    "this streamed checkpoint has no fingerprint of its stream (it was \
                     written before streamed runs could be resumed); train again"
                        .into(),
                )
            })
            .and_then(|v| {
                serde_json::from_value(v).map_err(|e| {
                    Error::checkpoint(checkpoint, format!("unusable stream fingerprint: {e}"))
                })
            })?;
        let (mut run, mut rows, fingerprint) = self.plan_stream(source, options)?;
        if fingerprint != saved {
            return Err(Error::InvalidConfig(format!(
                "the source is not the stream the checkpoint was trained on (it held {saved}; \
                 this source holds {fingerprint}): resume on the same rows in the same blocks, \
                 or train again"
            )));
        }
        run.train_in_units_of(&weights);
        self.run(&run, &mut rows, weights, state, observe)
    }

    /// The weights and state saved at `checkpoint`, checked for a resume of this trainer's
    /// configuration on rows of width `dim`: in memory when `stream` is `None`, else
    /// streamed with those options. The checkpoint's own run must be of the same kind,
    /// since either resume replays batches in its own order only.
    fn load_resume_point(
        &self,
        checkpoint: &Path,
        dim: usize,
        stream: Option<&StreamOptions>,
    ) -> Result<(SaeWeights, TrainState)> {
        let weights = SaeWeights::load(checkpoint)?;
        let metadata = &weights.config.metadata;
        match (metadata.get(stream::OPTIONS_KEY), stream) {
            (Some(_), None) => {
                return Err(Error::InvalidConfig(
                    "this checkpoint comes from Trainer::train_streamed: continue it with \
                     Trainer::resume_streamed on the same source and stream options"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::InvalidConfig(
                    "this checkpoint comes from a run on rows in memory (Trainer::train): \
                     continue it with Trainer::resume on the same rows"
                        .into(),
                ));
            }
            (Some(saved), Some(options)) => {
                let saved: StreamOptions = serde_json::from_value(saved.clone()).map_err(|e| {
                    Error::checkpoint(checkpoint, format!("unusable stream options: {e}"))
                })?;
                if saved != *options {
                    return Err(Error::InvalidConfig(format!(
                        "the stream options differ from the checkpoint's ({saved:?}, given \
                         {options:?}); they fix the order of the batches: resume with the \
                         checkpoint's"
                    )));
                }
            }
            (None, None) => {}
        }
        let state = TrainState::load(&state::state_path(checkpoint), &weights)?;
        let saved: TrainConfig = serde_json::from_value(
            metadata.get("train").cloned().unwrap_or_default(),
        )
        .map_err(|e| Error::checkpoint(checkpoint, format!("no usable training config: {e}")))?;
        let comparable = |c: &TrainConfig| TrainConfig {
            epochs: 0,
            ..c.clone()
        };
        if comparable(&saved) != comparable(&self.config) {
            return Err(Error::InvalidConfig(
                "the resume configuration differs from the checkpoint's (only epochs may change)"
                    .into(),
            ));
        }
        if weights.config.d_in != dim {
            return Err(Error::DimensionMismatch {
                expected: weights.config.d_in,
                got: dim,
            });
        }
        Ok((weights, state))
    }

    /// Checks a streamed run's settings and plans it with one pass over `source`.
    fn plan_stream<'a>(
        &self,
        source: &'a dyn RowBlocks,
        options: &StreamOptions,
    ) -> Result<(Run, Rows<'a>, stream::PlanFingerprint)> {
        let c = &self.config;
        let dim = source.dim();
        c.check(dim)?;
        if c.kind == SaeKind::Kld {
            return Err(Error::InvalidConfig(
                "the KLD trainer needs query → document pairs over rows in memory; \
                 use Trainer::train"
                    .into(),
            ));
        }
        if options.buffer_rows == 0 || options.sample_rows == 0 {
            return Err(Error::InvalidConfig(
                "the stream buffer and the training sample must hold at least one row".into(),
            ));
        }
        let plan = stream::StreamPlan::new(source, options, c.validation_fraction, c.seed)?;
        let scale = if c.input_scaling {
            crate::scale::scale_for(plan.square_norm_total, plan.train_rows, dim)
        } else {
            1.0
        };
        let steps_per_epoch = c.steps_per_epoch(plan.train_rows);
        let run = Run {
            dim,
            spread: plan.spread.max(1e-12),
            scale,
            steps_per_epoch,
            total_steps: steps_per_epoch * c.epochs as u64,
            batch: c.batch_size.min(plan.train_rows),
        };
        let fingerprint = plan.fingerprint();
        let rows = Rows::Stream(Box::new(stream::StreamBatches::new(
            source, plan, options, c.seed,
        )));
        Ok((run, rows, fingerprint))
    }

    fn plan<'a>(&self, set: &'a TrainSet<'a>) -> Result<(Run, Rows<'a>)> {
        let c = &self.config;
        c.check(set.dim())?;
        if c.kind == SaeKind::Kld && set.pairs.is_empty() {
            return Err(Error::Pairs(
                "the KLD trainer needs query → document pairs".into(),
            ));
        }
        let mut order = data::epoch_order(set.len(), c.seed, u64::MAX);
        let validation_rows = order.split_off(c.training_rows(set.len()));
        let train_rows = order;
        let centre = data::mean(set, &train_rows);
        let spread = data::spread(set, &train_rows, &centre);
        let scale = if c.input_scaling {
            let total = data::square_norm_total(set, &train_rows);
            crate::scale::scale_for(total, train_rows.len(), set.dim())
        } else {
            1.0
        };
        let steps_per_epoch = c.steps_per_epoch(train_rows.len());
        let run = Run {
            dim: set.dim(),
            spread: spread.max(1e-12),
            scale,
            steps_per_epoch,
            total_steps: steps_per_epoch * c.epochs as u64,
            batch: c.batch_size.min(train_rows.len()),
        };
        let rows = Rows::Memory(InMemory {
            set,
            train_rows,
            validation_rows,
            order_epoch: u64::MAX,
            order: Vec::new(),
        });
        Ok((run, rows))
    }

    fn initial_weights(&self, run: &Run, rows: &Rows<'_>) -> SaeWeights {
        let c = &self.config;
        let (d, m) = (run.dim, c.d_sae);
        let mut rng = Rng::new(c.seed);
        let mut w_dec: Vec<f32> = (0..m * d).map(|_| rng.symmetric()).collect();
        for row in w_dec.chunks_mut(d) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        // The encoder starts as the decoder's transpose.
        let mut w_enc = vec![0.0; d * m];
        for j in 0..m {
            for i in 0..d {
                w_enc[i * m + j] = w_dec[j * d + i];
            }
        }
        // Both are equivariant under scaling: computed on the caller's rows, then scaled.
        let mut b_dec = match rows {
            Rows::Memory(m) => {
                let sample: Vec<usize> = m.train_rows.iter().copied().take(SUMMARY_ROWS).collect();
                match c.bias_init {
                    BiasInit::Mean => data::mean(m.set, &sample),
                    BiasInit::GeometricMedian => data::geometric_median(m.set, &sample, 30),
                }
            }
            // The mean is over every training row; the median over the sample.
            Rows::Stream(s) => match c.bias_init {
                BiasInit::Mean => s.plan.mean.clone(),
                BiasInit::GeometricMedian => {
                    let sample = TrainSet {
                        rows: &s.plan.sample,
                        dim: d,
                        pairs: Vec::new(),
                    };
                    let all: Vec<usize> = (0..sample.len()).collect();
                    data::geometric_median(&sample, &all, 30)
                }
            },
        };
        b_dec.iter_mut().for_each(|v| *v *= run.scale);
        let mut config =
            SaeConfig::new(c.kind, d, m, c.k).unwrap_or_else(|_| unreachable!("checked in plan"));
        if c.input_scaling {
            config.set_input_scale(Some(run.scale));
        }
        config
            .metadata
            .insert("train".into(), serde_json::to_value(c).unwrap_or_default());
        SaeWeights {
            config,
            w_enc,
            b_enc: vec![0.0; m],
            w_dec,
            b_dec,
        }
    }

    fn run(
        &self,
        run: &Run,
        rows: &mut Rows<'_>,
        weights: SaeWeights,
        mut state: TrainState,
        observe: &mut dyn FnMut(&StepMetrics),
    ) -> Result<TrainOutcome> {
        let c = &self.config;
        let dev = &self.device;
        let mut params = to_device(&weights, dev);
        let mut moments = state.moments_on(dev);
        let started = Instant::now();
        let first_step = state.step;
        let mut history = Vec::new();
        let mut window = (Instant::now(), 0usize);
        let stop = run
            .total_steps
            .min(first_step.saturating_add(self.step_limit.unwrap_or(u64::MAX)));
        if first_step < stop {
            rows.skip_to(run, first_step)?;
        }
        while state.step < stop {
            let step = state.step;
            let (x_host, group) = rows.batch(run, c, step)?;
            let batch_rows = x_host.len() / run.dim;
            let lr = c.optim.lr_at(step, run.total_steps);
            let (mut metrics, updated) = self.step(
                run,
                &mut params,
                moments,
                &mut state,
                x_host,
                group.as_ref(),
                lr,
            )?;
            moments = updated;
            state.step += 1;
            window.1 += batch_rows;
            metrics.step = state.step;
            metrics.total_steps = run.total_steps;
            metrics.epoch = state.step as f64 / run.steps_per_epoch as f64;
            metrics.lr = lr;
            metrics.samples_per_s = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
            metrics.threshold = state.threshold().unwrap_or(0.0) as f64;
            if state.step.is_multiple_of(c.log_every.max(1)) || state.step == run.total_steps {
                history.push(metrics.clone());
                window = (Instant::now(), 0);
            }
            observe(&metrics);
            if let Some(p) = &self.checkpoints
                && state.step.is_multiple_of(p.every_steps.max(1))
                && state.step < run.total_steps
            {
                let w = from_device(&params, &weights, &state)?;
                state.sync_moments(&moments)?;
                save_checkpoint(&p.path, &w, &state)?;
            }
        }
        let weights = from_device(&params, &weights, &state)?;
        state.sync_moments(&moments)?;
        if let Some(p) = &self.checkpoints {
            save_checkpoint(&p.path, &weights, &state)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let steps = state.step - first_step;
        let mut summary = summarise(&weights, run, rows)?;
        summary.steps = steps;
        summary.seconds = seconds;
        summary.samples_per_s = steps as f64 * run.batch as f64 / seconds.max(1e-9);
        summary.peak_buffered_rows = rows.peak_rows();
        Ok(TrainOutcome {
            weights,
            state,
            history,
            summary,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        run: &Run,
        params: &mut Params,
        moments: state::DeviceMoments,
        state: &mut TrainState,
        mut x_host: Vec<f32>,
        group: Option<&kld::Group>,
        lr: f64,
    ) -> Result<(StepMetrics, state::DeviceMoments)> {
        let c = &self.config;
        let dev = &self.device;
        let (d, m, r) = (run.dim, c.d_sae, x_host.len() / run.dim);
        // Only the batch is scaled, never a copy of the whole training set.
        if run.scale != 1.0 {
            x_host.iter_mut().for_each(|v| *v *= run.scale);
        }
        let x = Tensor::<2>::from_data(TensorData::new(x_host, [r, d]), dev);
        let (pre, centred) = step::pre_activations(params, &x);
        let pre_host = read(pre)?;
        let dead = state.dead_mask(c.aux.dead_after_steps);
        let n_dead = dead.iter().filter(|&&b| b).count();
        let aux = (c.aux.coef > 0.0 && n_dead > 0).then_some((dead.as_slice(), c.k_aux()));
        let (main, aux_pattern) = match c.kind {
            SaeKind::TopK | SaeKind::Kld => select::top_k(&pre_host, m, c.k, aux),
            SaeKind::BatchTopK => {
                let (p, a, cut) = select::batch_top_k(&pre_host, m, c.k, aux);
                // The inference threshold is the mean cut after warm-up: warm-up batches
                // come from an encoder still far from its trained scale.
                if state.step >= c.optim.effective_warmup(run.total_steps) {
                    state.observe_threshold(cut);
                }
                (p, a)
            }
        };
        drop(pre_host);
        state.mark_fired(&main.latents);
        // On flex, decoding and the gathered/scattered gradients run over host memory, bit
        // for bit the tensor ops (`step::HostSparse`).
        let mut sparse = step::Sparse::new(self.host_kernels, params, &centred)?;
        // No positive pre-activation in the whole batch leaves only the bias to learn.
        let (decoded, ready) = sparse.decode(&main, params, r, dev);
        let x_hat = decoded + params.b_dec.clone().unsqueeze_dim(0);
        let err = x_hat.clone() - x.clone();
        let se = scalar(err.clone().square().sum())?;
        let mut g = err.mul_scalar(2.0 / r as f64);
        let mut loss = se / r as f64;
        let mut kld_value = 0.0;
        if let Some(group) = group {
            let (value, g_kld) = kld::loss_and_grad(group, &x, &x_hat, &c.kld, run.scale, r, dev)?;
            kld_value = value;
            loss += f64::from(c.kld.coef) * value;
            g = g + g_kld;
        }
        sparse.set_b_dec(g.clone().sum_dim(0).reshape([d]));
        sparse = sparse.backward(ready, &g, &centred, params, dev)?;
        let mut aux_loss = 0.0;
        if aux_pattern.len() > 0 {
            // AuxK: dead latents reconstruct the (detached) residual, normalised by its spread.
            let residual = x - x_hat;
            let centre = residual.clone().mean_dim(0);
            let denom = scalar((residual.clone() - centre).square().sum())?.max(1e-12);
            let (e_hat, ready) = sparse.decode(&aux_pattern, params, r, dev);
            let diff = e_hat - residual;
            aux_loss = scalar(diff.clone().square().sum())? / denom;
            loss += f64::from(c.aux.coef) * aux_loss;
            let g_aux = diff.mul_scalar(2.0 * f64::from(c.aux.coef) / denom);
            sparse = sparse.backward(ready, &g_aux, &centred, params, dev)?;
        }
        let mut grads = sparse.finish(params, dev);
        if !loss.is_finite() {
            return Err(Error::Diverged { step: state.step });
        }
        grads.w_dec = step::project_decoder_grad(&params.w_dec, grads.w_dec);
        if let Some(clip) = c.optim.clip_norm {
            let norm = grads.norm_squared().sqrt();
            if norm > clip {
                grads = grads.scale(clip / norm);
            }
        }
        let t = state.step + 1;
        let o = &c.optim;
        let state::DeviceMoments {
            w_enc,
            b_enc,
            w_dec,
            b_dec,
        } = moments;
        // The parameters are moved out (not cloned) so that the update owns them: the host
        // pass reads and rebuilds them without copies, the tensor ops run in place.
        let (w_enc, new_w_enc, b_enc, new_b_enc, w_dec, new_w_dec, b_dec, new_b_dec) = if self
            .host_kernels
        {
            let (w_enc, a) = w_enc.update_host(o, lr, t, take(&mut params.w_enc), grads.w_enc)?;
            let (b_enc, b) = b_enc.update_host(o, lr, t, take(&mut params.b_enc), grads.b_enc)?;
            let (w_dec, c) = w_dec.update_host(o, lr, t, take(&mut params.w_dec), grads.w_dec)?;
            let (b_dec, d) = b_dec.update_host(o, lr, t, take(&mut params.b_dec), grads.b_dec)?;
            (w_enc, a, b_enc, b, w_dec, c, b_dec, d)
        } else {
            let (w_enc, a) = w_enc.update(o, lr, t, take(&mut params.w_enc), grads.w_enc);
            let (b_enc, b) = b_enc.update(o, lr, t, take(&mut params.b_enc), grads.b_enc);
            let (w_dec, c) = w_dec.update(o, lr, t, take(&mut params.w_dec), grads.w_dec);
            let (b_dec, d) = b_dec.update(o, lr, t, take(&mut params.b_dec), grads.b_dec);
            (w_enc, a, b_enc, b, w_dec, c, b_dec, d)
        };
        params.w_enc = new_w_enc;
        params.b_enc = new_b_enc;
        params.w_dec = step::unit_rows(new_w_dec);
        params.b_dec = new_b_dec;
        let moments = state::DeviceMoments {
            w_enc,
            b_enc,
            w_dec,
            b_dec,
        };
        // `se` is in scaled units; the spread in the caller's.
        let squared_scale = f64::from(run.scale).powi(2);
        let metrics = StepMetrics {
            loss,
            mse: se / squared_scale / (r * d) as f64,
            nmse: se / squared_scale / r as f64 / run.spread,
            l0: main.len() as f64 / r as f64,
            dead_fraction: n_dead as f64 / m as f64,
            aux_loss,
            kld: kld_value,
            ..StepMetrics::default()
        };
        Ok((metrics, moments))
    }
}

/// Moves a tensor out of `t`, leaving a one-element placeholder, so that the taker owns
/// the only reference (burn flex then updates or reads it without a copy).
pub(crate) fn take<const D: usize>(t: &mut Tensor<D>) -> Tensor<D> {
    let placeholder = Tensor::<D>::zeros([1; D], &t.device());
    std::mem::replace(t, placeholder)
}

pub(crate) fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Backend(format!("{e:?}")))
}

fn scalar(t: Tensor<1>) -> Result<f64> {
    let v = read(t)?;
    v.first()
        .map(|&x| f64::from(x))
        .ok_or_else(|| Error::Backend("empty reduction".into()))
}

fn to_device(w: &SaeWeights, dev: &Device) -> Params {
    let (d, m) = (w.config.d_in, w.config.d_sae);
    let w_enc_rows = transpose(&w.w_enc, d, m);
    Params {
        w_enc: Tensor::from_data(TensorData::new(w_enc_rows, [m, d]), dev),
        b_enc: Tensor::from_data(TensorData::new(w.b_enc.clone(), [m]), dev),
        w_dec: Tensor::from_data(TensorData::new(w.w_dec.clone(), [m, d]), dev),
        b_dec: Tensor::from_data(TensorData::new(w.b_dec.clone(), [d]), dev),
    }
}

fn from_device(p: &Params, template: &SaeWeights, state: &TrainState) -> Result<SaeWeights> {
    let (d, m) = (template.config.d_in, template.config.d_sae);
    let mut config = template.config.clone();
    config.threshold = state.threshold();
    config
        .metadata
        .insert("steps".into(), serde_json::json!(state.step));
    Ok(SaeWeights {
        config,
        w_enc: transpose(&read(p.w_enc.clone())?, m, d),
        b_enc: read(p.b_enc.clone())?,
        w_dec: read(p.w_dec.clone())?,
        b_dec: read(p.b_dec.clone())?,
    })
}

/// `[rows, cols]` → `[cols, rows]`, row-major.
pub(crate) fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = a[r * cols + c];
        }
    }
    out
}

fn save_checkpoint(path: &Path, weights: &SaeWeights, state: &TrainState) -> Result<()> {
    weights.save(path)?;
    state.save(&state::state_path(path), weights)
}

fn summarise(weights: &SaeWeights, run: &Run, rows: &Rows<'_>) -> Result<Summary> {
    let d = run.dim;
    let sae = SaeEncoder::new(weights.clone())?;
    let options = match weights.config.kind {
        SaeKind::BatchTopK if weights.config.threshold.is_some() => {
            EncodeOptions::stored_threshold(None)
        }
        _ => EncodeOptions::top_k(weights.config.k),
    };
    let measure = |rows: &[f32]| -> Result<(f64, f64, Vec<bool>)> {
        let n = rows.len() / d;
        let codes = sae.encode(rows, &options)?;
        let back = sae.decode(&codes);
        let se: f64 = rows
            .iter()
            .zip(&back)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let mut fired = vec![false; weights.config.d_sae];
        codes
            .iter()
            .flat_map(|c| &c.indices)
            .for_each(|&j| fired[j as usize] = true);
        let l0 = codes.iter().map(|c| c.len()).sum::<usize>() as f64 / n.max(1) as f64;
        Ok((se / n.max(1) as f64, l0, fired))
    };
    let (sample, validation) = rows.summary_rows();
    let (se, l0, fired) = measure(&sample)?;
    let validation_nmse = if validation.is_empty() {
        None
    } else {
        let set = TrainSet {
            rows: &validation,
            dim: d,
            pairs: Vec::new(),
        };
        let all: Vec<usize> = (0..set.len()).collect();
        let centre = data::mean(&set, &all);
        let spread = data::spread(&set, &all, &centre).max(1e-12);
        Some(measure(&validation)?.0 / spread)
    };
    Ok(Summary {
        nmse: se / run.spread,
        mse: se / d as f64,
        l0,
        validation_nmse,
        dead_fraction: fired.iter().filter(|&&f| !f).count() as f64 / fired.len() as f64,
        ..Summary::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n * d).map(|_| rng.symmetric()).collect()
    }

    fn small(kind: SaeKind) -> TrainConfig {
        let mut c = TrainConfig::new(kind, 64, 4);
        c.epochs = 4;
        c.batch_size = 64;
        c.optim.warmup_steps = 5;
        c.log_every = 1;
        c
    }

    /// The burn-free encoder against a forward pass written only with burn ops (device
    /// matmul, burn's own top-k, dense decode).
    #[test]
    fn sae_encoder_matches_the_burn_forward_pass() {
        let data = rows(500, 16, 1);
        let set = TrainSet::new(&data, 16).unwrap();
        let backend = Backend::default_cpu().unwrap();
        let out = Trainer::new(small(SaeKind::TopK), backend)
            .unwrap()
            .train(&set, &mut |_| {})
            .unwrap();
        let w = &out.weights;
        assert_eq!(w.config.input_scale, None);
        assert_eq!(w.config.normalize_activations, "none");
        let dev = backend.device().unwrap();
        let params = to_device(w, &dev);
        let x = Tensor::<2>::from_data(TensorData::new(data.clone(), [500, 16]), &dev);
        let (pre, _) = step::pre_activations(&params, &x);
        let (vals, idx) = pre.topk_with_indices(w.config.k, 1);
        let vals = vals.clamp_min(0.0);
        let code = Tensor::<2>::zeros([500, 64], &dev).scatter(
            1,
            idx.clone(),
            vals.clone(),
            burn::tensor::IndexingUpdateOp::Add,
        );
        let x_hat = code.matmul(params.w_dec.clone()) + params.b_dec.clone().unsqueeze_dim(0);
        let burn_vals = read(vals).unwrap();
        let burn_idx: Vec<i64> = read(idx.float())
            .unwrap()
            .into_iter()
            .map(|v| v as i64)
            .collect();
        let burn_hat = read(x_hat).unwrap();

        let sae = SaeEncoder::new(w.clone()).unwrap();
        let codes = sae
            .encode(&data, &EncodeOptions::top_k(w.config.k))
            .unwrap();
        let ours_hat = sae.decode(&codes);
        for (r, code) in codes.iter().enumerate() {
            for j in 0..w.config.k {
                let (latent, v) = (burn_idx[r * w.config.k + j], burn_vals[r * w.config.k + j]);
                let ours = code
                    .iter()
                    .find(|&(i, _)| i as i64 == latent)
                    .map_or(0.0, |(_, v)| v);
                assert!(
                    (ours - v).abs() <= 1e-5,
                    "row {r} latent {latent}: {ours} vs {v}"
                );
            }
        }
        for (a, b) in ours_hat.iter().zip(&burn_hat) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }

    /// Input scaling: `c` over the training rows is stored; the summary's NMSE is the
    /// NMSE measured in the scaled units; the run does not depend on the data's units.
    #[test]
    fn input_scaling_is_stored_and_unit_free() {
        let (n, d) = (640, 16);
        let data = rows(n, d, 5);
        // A power of two, so the scaled rows the two runs train on are bit-identical.
        let big: Vec<f32> = data.iter().map(|v| v * 64.0).collect();
        let backend = Backend::default_cpu().unwrap();
        let mut config = small(SaeKind::TopK);
        config.input_scaling = true;
        config.validation_fraction = 0.1;
        let train = |rows: &[f32]| {
            let set = TrainSet::new(rows, d).unwrap();
            let mut lrs = Vec::new();
            let out = Trainer::new(config.clone(), backend)
                .unwrap()
                .train(&set, &mut |m| lrs.push(m.lr))
                .unwrap();
            (out, lrs)
        };
        let (a, lrs) = train(&data);
        let (b, _) = train(&big);

        // c is over the training rows, validation rows excluded.
        let order = data::epoch_order(n, config.seed, u64::MAX);
        let train_idx = &order[..config.training_rows(n)];
        let set = TrainSet::new(&data, d).unwrap();
        let train_rows = set.gather(train_idx);
        let c = a.weights.config.input_scale.unwrap();
        let want = crate::mean_square_norm_scale(&train_rows, d);
        assert!((c - want).abs() <= 1e-6 * want, "{c} vs {want}");
        assert_eq!(
            a.weights.config.normalize_activations,
            "expected_average_only_in"
        );
        let cb = b.weights.config.input_scale.unwrap();
        assert!((c / cb - 64.0).abs() < 1e-4, "{c} / {cb}");

        // The summary's NMSE (caller's units) equals the NMSE in the scaled units, measured
        // with the same weights as an unscaled SAE fed scaled rows.
        let scaled_rows: Vec<f32> = train_rows.iter().map(|v| v * c).collect();
        let mut unscaled = a.weights.clone();
        unscaled.config.set_input_scale(None);
        let sae = SaeEncoder::new(unscaled).unwrap();
        let codes = sae
            .encode(&scaled_rows, &EncodeOptions::top_k(config.k))
            .unwrap();
        let back = sae.decode(&codes);
        let se: f64 = scaled_rows
            .iter()
            .zip(&back)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum();
        let scaled_set = TrainSet::new(&scaled_rows, d).unwrap();
        let all: Vec<usize> = (0..train_idx.len()).collect();
        let centre = data::mean(&scaled_set, &all);
        let spread = data::spread(&scaled_set, &all, &centre);
        let nmse_scaled = se / train_idx.len() as f64 / spread;
        let nmse = a.summary.nmse;
        assert!(
            (nmse - nmse_scaled).abs() <= 1e-4 * nmse,
            "{nmse} vs {nmse_scaled}"
        );
        assert!(a.summary.validation_nmse.is_some());

        // Same run in both units: NMSE equal, MSE in the caller's units.
        let nb = b.summary.nmse;
        assert!((nmse - nb).abs() <= 1e-4 * nmse, "{nmse} vs {nb}");
        let ratio = b.summary.mse / a.summary.mse;
        assert!((ratio - 4096.0).abs() < 0.5, "{ratio}");
        let (la, lb) = (a.history.last().unwrap(), b.history.last().unwrap());
        assert!((la.nmse - lb.nmse).abs() <= 1e-4 * la.nmse.max(1e-9));
        assert!((lb.mse / la.mse - 4096.0).abs() < 0.5);
        for (x, y) in a.weights.w_dec.iter().zip(&b.weights.w_dec) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }

        // The schedule the trainer used: capped warm-up, peak reached, then decay.
        assert_eq!(lrs.len() as u64, config.total_steps(n));
        let peak = lrs
            .iter()
            .position(|&lr| (lr - config.optim.lr).abs() <= 1e-12 * config.optim.lr)
            .unwrap();
        assert!(peak < lrs.len() / 2, "{lrs:?}");
        assert!(lrs.last().unwrap() < &config.optim.lr);
    }

    #[test]
    fn short_runs_draw_a_warning() {
        let mut c = TrainConfig::new(SaeKind::TopK, 8192, 32);
        c.batch_size = 2048;
        c.epochs = 1;
        assert_eq!(c.total_steps(1_200_000), 585);
        assert!(c.warnings(1_200_000).is_empty());
        let w = c.warnings(60_000);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("has 29 steps") && w[0].contains("raise epochs"));
        c.epochs = 7;
        assert_eq!(c.total_steps(60_000), 203);
        assert!(c.warnings(60_000).is_empty());
        c.validation_fraction = 0.2;
        assert_eq!(c.total_steps(1_000), 7);
        assert_eq!(c.warnings(1_000).len(), 2);
        assert_eq!(c.total_steps(0), 0);
        assert!(!c.warnings(0).is_empty());
    }

    #[test]
    fn saved_train_configs_without_input_scaling_still_parse() {
        let c = small(SaeKind::TopK);
        let mut v = serde_json::to_value(&c).unwrap();
        v.as_object_mut().unwrap().remove("input_scaling");
        let back: TrainConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn the_batchtopk_threshold_leaves_out_warm_up_steps() {
        let data = rows(640, 8, 4);
        let set = TrainSet::new(&data, 8).unwrap();
        let mut config = small(SaeKind::BatchTopK);
        config.epochs = 10;
        config.optim.warmup_steps = 1000; // capped at 10 % of the run
        let total = config.total_steps(640);
        let warmup = config.optim.effective_warmup(total);
        assert!(warmup > 0 && warmup < total);
        let outcome = Trainer::new(config, Backend::default_cpu().unwrap())
            .unwrap()
            .train(&set, &mut |_| {})
            .unwrap();
        assert_eq!(outcome.state.threshold_count, total - warmup);
        assert!(outcome.weights.config.threshold.is_some());
    }

    #[test]
    fn resuming_continues_the_same_run() {
        let data = rows(640, 8, 2);
        let set = TrainSet::new(&data, 8).unwrap();
        let backend = Backend::default_cpu().unwrap();
        let mut config = small(SaeKind::BatchTopK);
        // Resuming keeps the checkpoint's input scale (here c = sqrt(3), rows in [-1, 1)).
        config.input_scaling = true;
        let straight = Trainer::new(config.clone(), backend)
            .unwrap()
            .train(&set, &mut |_| {})
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        let policy = CheckpointPolicy {
            path: path.clone(),
            every_steps: 1000,
        };
        let first = Trainer::new(config.clone(), backend)
            .unwrap()
            .with_checkpoints(policy.clone())
            .with_step_limit(17)
            .train(&set, &mut |_| {})
            .unwrap();
        assert_eq!(first.state.step, 17);
        let resumed = Trainer::new(config, backend)
            .unwrap()
            .with_checkpoints(policy)
            .resume(&set, &path, &mut |_| {})
            .unwrap();
        assert_eq!(resumed.state.step, straight.state.step);
        assert_eq!(
            resumed.weights.config.threshold,
            straight.weights.config.threshold
        );
        assert_eq!(
            resumed.weights.config.input_scale,
            straight.weights.config.input_scale
        );
        assert!(straight.weights.config.input_scale.is_some());
        for (a, b) in resumed.weights.w_dec.iter().zip(&straight.weights.w_dec) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// Writing checkpoints reads the run's state and changes nothing in it: the pipeline
    /// checkpoints every training, and its cached SAEs must equal unchecked runs.
    #[test]
    fn checkpoints_do_not_change_the_run() {
        let data = rows(640, 8, 2);
        let set = TrainSet::new(&data, 8).unwrap();
        let backend = Backend::default_cpu().unwrap();
        let config = small(SaeKind::TopK);
        let plain = Trainer::new(config.clone(), backend)
            .unwrap()
            .train(&set, &mut |_| {})
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let checked = Trainer::new(config, backend)
            .unwrap()
            .with_checkpoints(CheckpointPolicy {
                path: dir.path().join("sae.safetensors"),
                every_steps: 1,
            })
            .train(&set, &mut |_| {})
            .unwrap();
        let bits = |w: &SaeWeights| {
            [&w.w_enc, &w.b_enc, &w.w_dec, &w.b_dec]
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
        };
        assert!(plain.state.step > 2);
        assert!(bits(&plain.weights) == bits(&checked.weights));
    }

    #[test]
    fn kld_trainer_needs_pairs_and_runs_with_them() {
        let data = rows(400, 8, 3);
        let set = TrainSet::new(&data, 8).unwrap();
        let backend = Backend::default_cpu().unwrap();
        let trainer = Trainer::new(small(SaeKind::Kld), backend).unwrap();
        assert!(matches!(
            trainer.train(&set, &mut |_| {}),
            Err(Error::Pairs(_))
        ));
        let pairs = (0..40)
            .map(|q| (q, vec![100 + q, 200 + q, 300 + q]))
            .collect();
        let set = set.with_pairs(pairs).unwrap();
        let mut kls = Vec::new();
        let out = trainer.train(&set, &mut |m| kls.push(m.kld)).unwrap();
        assert!(kls.iter().all(|k| k.is_finite() && *k >= -1e-6));
        assert!(kls.iter().any(|&k| k > 0.0));
        assert!(out.summary.nmse.is_finite());
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let data = rows(100, 8, 4);
        let set = TrainSet::new(&data, 8).unwrap();
        let backend = Backend::default_cpu().unwrap();
        let mut c = small(SaeKind::TopK);
        c.k = 64;
        assert!(matches!(
            Trainer::new(c, backend).unwrap().train(&set, &mut |_| {}),
            Err(Error::InvalidConfig(_))
        ));
        let mut c = small(SaeKind::TopK);
        c.optim.lr = 1e9;
        c.optim.clip_norm = None;
        c.aux.coef = 0.0;
        // A huge learning rate must end in a typed error or finite weights, never a panic.
        if let Ok(out) = Trainer::new(c, backend).unwrap().train(&set, &mut |_| {}) {
            assert!(out.weights.validate().is_ok());
        }
    }

    /// Refactors of the trainer keep in-memory runs bit for bit (the documented results
    /// depend on them): fingerprints of a TopK run with input scaling and validation rows,
    /// and of a KLD run, recorded before the step loop was shared with streamed training.
    #[test]
    fn in_memory_runs_are_bit_identical_to_before() {
        fn fingerprint(out: &TrainOutcome) -> u64 {
            let w = &out.weights;
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            let mut eat = |x: u64| {
                h ^= x;
                h = h.wrapping_mul(0x100_0000_01b3);
            };
            for v in w
                .w_enc
                .iter()
                .chain(&w.w_dec)
                .chain(&w.b_enc)
                .chain(&w.b_dec)
            {
                eat(u64::from(v.to_bits()));
            }
            eat(out.summary.nmse.to_bits());
            eat(out.summary.validation_nmse.unwrap_or(0.0).to_bits());
            eat(out.summary.l0.to_bits());
            for m in &out.history {
                eat(m.nmse.to_bits());
                eat(m.loss.to_bits());
            }
            h
        }
        let backend = Backend::default_cpu().unwrap();
        let data = rows(700, 8, 11);
        let set = TrainSet::new(&data, 8).unwrap();
        let mut config = small(SaeKind::TopK);
        config.input_scaling = true;
        config.validation_fraction = 0.1;
        let topk = Trainer::new(config, backend)
            .unwrap()
            .train(&set, &mut |_| {})
            .unwrap();
        let pairs = (0..40)
            .map(|q| (q, vec![100 + q, 200 + q, 300 + q]))
            .collect();
        let set = set.with_pairs(pairs).unwrap();
        let kld = Trainer::new(small(SaeKind::Kld), backend)
            .unwrap()
            .train(&set, &mut |_| {})
            .unwrap();
        let got = (fingerprint(&topk), fingerprint(&kld));
        eprintln!("fingerprints {got:#x?}");
        assert_eq!(got, (0x679a_5dc4_187b_6179, 0x2983_5c95_3ff6_db5f));
    }
}
