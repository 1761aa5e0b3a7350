//! Training rows read block by block, for sets larger than memory.
//!
//! One planning pass reads every block once: it counts the rows, checks them, draws the
//! held-out validation rows and a sample of training rows, and sums what the plan needs
//! (the training rows' mean, spread and mean squared norm). Each epoch then reads the
//! blocks again in a seeded order through a shuffle buffer.

use serde::{Deserialize, Serialize};

use super::SUMMARY_ROWS;
use super::data::{self, Rng};
use crate::error::{Error, Result};

/// Rows of one width, read one block at a time: the source [`Trainer::train_streamed`]
/// trains on. Every call for the same block must return the same rows (the trainer reads
/// each block once to plan and once per epoch, and [`Trainer::resume_streamed`] reads
/// them again to continue a run); blocks may differ in length and may be empty.
///
/// ```
/// use latent_terms_sae::Result;
/// use latent_terms_sae::train::RowBlocks;
///
/// /// Rows kept as one `Vec` per shard (files on disk, in a real source).
/// struct Shards {
///     dim: usize,
///     shards: Vec<Vec<f32>>,
/// }
///
/// impl RowBlocks for Shards {
///     fn dim(&self) -> usize {
///         self.dim
///     }
///     fn num_blocks(&self) -> usize {
///         self.shards.len()
///     }
///     fn read_block(&self, block: usize) -> Result<Vec<f32>> {
///         Ok(self.shards[block].clone())
///     }
/// }
///
/// let source = Shards { dim: 2, shards: vec![vec![1.0, 2.0, 3.0, 4.0], vec![], vec![5.0, 6.0]] };
/// let rows: usize = (0..source.num_blocks()).map(|b| source.read_block(b).unwrap().len() / 2).sum();
/// assert_eq!(rows, 3);
/// ```
///
/// [`Trainer::train_streamed`]: super::Trainer::train_streamed
/// [`Trainer::resume_streamed`]: super::Trainer::resume_streamed
pub trait RowBlocks {
    /// Row width.
    fn dim(&self) -> usize;
    /// Number of blocks.
    fn num_blocks(&self) -> usize;
    /// The rows of `block` (`0..num_blocks()`), row-major. Errors of the underlying
    /// storage go in [`Error::RowSource`].
    fn read_block(&self, block: usize) -> Result<Vec<f32>>;
}

/// Rows in memory served as blocks of `block_rows` rows: for tests, examples, and sets
/// that fit in memory but should train like streamed ones.
///
/// ```
/// use latent_terms_sae::train::{ChunkedRows, RowBlocks};
///
/// let rows = [0.0f32; 2 * 5]; // five rows of width 2
/// let source = ChunkedRows::new(&rows, 2, 2);
/// assert_eq!(source.num_blocks(), 3);
/// assert_eq!(source.read_block(2)?.len(), 2); // the last block holds one row
/// # Ok::<(), latent_terms_sae::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ChunkedRows<'a> {
    rows: &'a [f32],
    dim: usize,
    block_rows: usize,
}

impl<'a> ChunkedRows<'a> {
    /// Row-major `rows` of width `dim` in blocks of `block_rows` rows (the last may be
    /// shorter). Rows are checked when the trainer reads them, not here.
    pub fn new(rows: &'a [f32], dim: usize, block_rows: usize) -> Self {
        ChunkedRows {
            rows,
            dim,
            block_rows: block_rows.max(1),
        }
    }
}

impl RowBlocks for ChunkedRows<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn num_blocks(&self) -> usize {
        self.rows
            .len()
            .div_ceil((self.block_rows * self.dim).max(1))
    }

    fn read_block(&self, block: usize) -> Result<Vec<f32>> {
        let width = self.block_rows * self.dim;
        let start = (block * width).min(self.rows.len());
        let end = (start + width).min(self.rows.len());
        Ok(self.rows[start..end].to_vec())
    }
}

/// How [`Trainer::train_streamed`] holds rows in memory.
///
/// [`Trainer::train_streamed`]: super::Trainer::train_streamed
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamOptions {
    /// Training rows held and shuffled together (at least one batch is held). Larger
    /// buffers mix rows of more blocks into each batch.
    pub buffer_rows: usize,
    /// At most this many rows are held out for validation (drawn with the configuration's
    /// `validation_fraction`, then sampled down to this cap).
    pub max_validation_rows: usize,
    /// Training rows sampled (uniformly, seeded) for the bias initialisation (the
    /// geometric median; the mean is over every row) and the summary's NMSE.
    pub sample_rows: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            buffer_rows: 262_144,
            max_validation_rows: 20_000,
            sample_rows: SUMMARY_ROWS,
        }
    }
}

impl StreamOptions {
    /// Rows the streamed trainer holds at most, for a batch of `batch_size` rows and
    /// blocks of at most `max_block_rows` rows: the shuffle buffer, one block being
    /// read, one batch, the validation rows and the training sample. Times `dim × 4`
    /// bytes.
    ///
    /// ```
    /// use latent_terms_sae::train::StreamOptions;
    ///
    /// let options = StreamOptions::default();
    /// let rows = options.max_rows(2048, 10_000);
    /// assert_eq!(rows, 262_144 + 10_000 + 2048 + 20_000 + 20_000);
    /// assert!(rows * 384 * 4 < 500 << 20); // under 500 MiB at 384 dimensions
    /// ```
    pub fn max_rows(&self, batch_size: usize, max_block_rows: usize) -> usize {
        self.buffer_rows.max(batch_size)
            + max_block_rows
            + batch_size
            + self.max_validation_rows
            + self.sample_rows
    }
}

/// The checkpoint metadata key holding the [`StreamOptions`] of a streamed run.
pub(crate) const OPTIONS_KEY: &str = "stream";
/// The checkpoint metadata key holding the [`PlanFingerprint`] of a streamed run.
pub(crate) const PLAN_KEY: &str = "stream_plan";

/// What a streamed run's checkpoint records of the stream it trained on: a resume replays
/// the stream from a new plan, so a source with other rows would silently continue the
/// run on other batches; comparing fingerprints refuses it instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanFingerprint {
    blocks: usize,
    rows: u64,
    training_rows: usize,
    validation_rows: usize,
    /// CRC-32 of the plan: block boundaries, held-out rows (indices and values), the
    /// training sample and the bit patterns of the sums over every training row, so that
    /// other values in the same layout are caught too.
    crc32: String,
}

impl std::fmt::Display for PlanFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows in {} blocks ({} training, {} held out; plan checksum {})",
            self.rows, self.blocks, self.training_rows, self.validation_rows, self.crc32
        )
    }
}

const VALIDATION_SALT: u64 = 0x5641_4C49_4441_5445;
const SAMPLE_SALT: u64 = 0x5341_4D50_4C45_5253;
const ORDER_SALT: u64 = 0x424C_4F43_4B53_4F52;
const BUFFER_SALT: u64 = 0x5348_5546_464C_4542;

/// Whether global row `g` is a validation candidate (kept with probability `fraction`).
fn candidate(seed: u64, g: u64, threshold: Option<u64>) -> bool {
    threshold.is_some_and(|t| {
        Rng::new(seed ^ VALIDATION_SALT ^ g.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64() < t
    })
}

/// Checks one block read from `source`; `start` is the global index of its first row.
fn check_block(block: usize, rows: &[f32], dim: usize, start: u64) -> Result<()> {
    if !rows.len().is_multiple_of(dim) {
        return Err(Error::RaggedBlock {
            block,
            len: rows.len(),
            dim,
        });
    }
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "the streamed training rows",
            row: start as usize + i / dim,
            col: i % dim,
        });
    }
    Ok(())
}

/// A fixed-size sample of rows (Algorithm R), seeded.
struct Reservoir {
    cap: usize,
    seen: u64,
    index: Vec<u64>,
    rows: Vec<f32>,
    rng: Rng,
}

impl Reservoir {
    fn new(cap: usize, seed: u64) -> Self {
        Reservoir {
            cap,
            seen: 0,
            index: Vec::new(),
            rows: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    fn offer(&mut self, g: u64, row: &[f32]) {
        let dim = row.len();
        self.seen += 1;
        if self.index.len() < self.cap {
            self.index.push(g);
            self.rows.extend_from_slice(row);
        } else if self.cap > 0 {
            let j = self.rng.below(self.seen as usize);
            if j < self.cap {
                self.index[j] = g;
                self.rows[j * dim..(j + 1) * dim].copy_from_slice(row);
            }
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }
}

/// What the planning pass learns about a source.
pub(crate) struct StreamPlan {
    pub(crate) dim: usize,
    /// Global index of each block's first row, and the total at the end.
    starts: Vec<u64>,
    /// The validation rows' global indices, ascending, and their rows in that order.
    validation_index: Vec<u64>,
    pub(crate) validation: Vec<f32>,
    /// Up to `sample_rows` training rows, uniformly drawn.
    pub(crate) sample: Vec<f32>,
    pub(crate) train_rows: usize,
    /// Mean of the training rows (caller's units).
    pub(crate) mean: Vec<f32>,
    /// Mean squared distance of the training rows to their mean.
    pub(crate) spread: f64,
    /// Sum of the training rows' squared norms.
    pub(crate) square_norm_total: f64,
    /// Rows held at once during planning.
    pub(crate) peak_rows: usize,
}

impl StreamPlan {
    /// One pass over `source`: counts, checks, validation rows, sample and statistics.
    pub(crate) fn new(
        source: &dyn RowBlocks,
        options: &StreamOptions,
        validation_fraction: f64,
        seed: u64,
    ) -> Result<Self> {
        let dim = source.dim();
        let threshold = (validation_fraction > 0.0 && options.max_validation_rows > 0)
            .then_some((validation_fraction * u64::MAX as f64) as u64);
        let mut validation = Reservoir::new(options.max_validation_rows, seed ^ VALIDATION_SALT);
        let mut sample = Reservoir::new(options.sample_rows, seed ^ SAMPLE_SALT);
        let mut sum = vec![0f64; dim];
        let mut square_sum = 0f64;
        let mut starts = Vec::with_capacity(source.num_blocks() + 1);
        let mut total = 0u64;
        let mut peak_rows = 0;
        for block in 0..source.num_blocks() {
            starts.push(total);
            let rows = source.read_block(block)?;
            check_block(block, &rows, dim, total)?;
            peak_rows = peak_rows.max(rows.len() / dim + validation.len() + sample.len());
            for row in rows.chunks_exact(dim) {
                let g = total;
                total += 1;
                sum.iter_mut()
                    .zip(row)
                    .for_each(|(s, &x)| *s += f64::from(x));
                square_sum += row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
                // Only rows that cannot be validation rows enter the training sample.
                if candidate(seed, g, threshold) {
                    validation.offer(g, row);
                } else {
                    sample.offer(g, row);
                }
            }
        }
        starts.push(total);
        peak_rows = peak_rows.max(validation.len() + sample.len());
        // The sums were over all rows: take the validation rows back out.
        let held = validation.len();
        for row in validation.rows.chunks_exact(dim) {
            sum.iter_mut()
                .zip(row)
                .for_each(|(s, &x)| *s -= f64::from(x));
            square_sum -= row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        }
        let train_rows = total as usize - held;
        if train_rows == 0 {
            return Err(Error::EmptyTrainingSet);
        }
        let mean64: Vec<f64> = sum.iter().map(|s| s / train_rows as f64).collect();
        let mean_square = mean64.iter().map(|m| m * m).sum::<f64>();
        let spread = (square_sum / train_rows as f64 - mean_square).max(0.0);
        // Validation rows in ascending global order, so membership is a binary search.
        let mut order: Vec<usize> = (0..held).collect();
        order.sort_unstable_by_key(|&i| validation.index[i]);
        let validation_index = order.iter().map(|&i| validation.index[i]).collect();
        let mut rows = Vec::with_capacity(held * dim);
        for &i in &order {
            rows.extend_from_slice(&validation.rows[i * dim..(i + 1) * dim]);
        }
        Ok(StreamPlan {
            dim,
            starts,
            validation_index,
            validation: rows,
            sample: sample.rows,
            train_rows,
            mean: mean64.into_iter().map(|m| m as f32).collect(),
            spread,
            square_norm_total: square_sum.max(0.0),
            peak_rows,
        })
    }

    fn validation_rows(&self) -> usize {
        self.validation_index.len()
    }

    /// The fingerprint a checkpoint stores and a resume compares.
    pub(crate) fn fingerprint(&self) -> PlanFingerprint {
        let mut crc = crc32fast::Hasher::new();
        let words = self.starts.iter().chain(&self.validation_index).copied();
        let sums = [self.spread, self.square_norm_total].map(f64::to_bits);
        for w in words.chain(sums).chain([self.train_rows as u64]) {
            crc.update(&w.to_le_bytes());
        }
        for v in self.validation.iter().chain(&self.sample).chain(&self.mean) {
            crc.update(&v.to_bits().to_le_bytes());
        }
        PlanFingerprint {
            blocks: self.starts.len() - 1,
            rows: self.starts.last().copied().unwrap_or(0),
            training_rows: self.train_rows,
            validation_rows: self.validation_rows(),
            crc32: format!("{:08x}", crc.finalize()),
        }
    }

    /// Whether global row `g` was held out.
    #[cfg(test)]
    pub(crate) fn is_validation(&self, g: u64) -> bool {
        self.validation_index.binary_search(&g).is_ok()
    }

    /// The training rows of `block`, read and checked again.
    fn training_rows(&self, source: &dyn RowBlocks, block: usize) -> Result<Vec<f32>> {
        let dim = self.dim;
        let (start, end) = (self.starts[block], self.starts[block + 1]);
        let mut rows = source.read_block(block)?;
        check_block(block, &rows, dim, start)?;
        let expected = (end - start) as usize;
        if rows.len() / dim != expected {
            return Err(Error::SourceChanged {
                block,
                expected,
                got: rows.len() / dim,
            });
        }
        let lo = self.validation_index.partition_point(|&g| g < start);
        let hi = self.validation_index.partition_point(|&g| g < end);
        if lo == hi {
            return Ok(rows);
        }
        // Compact the training rows to the front, in place: no second copy of the block.
        let held = &self.validation_index[lo..hi];
        let mut write = 0;
        for r in 0..expected {
            if held.binary_search(&(start + r as u64)).is_ok() {
                continue;
            }
            if write != r {
                rows.copy_within(r * dim..(r + 1) * dim, write * dim);
            }
            write += 1;
        }
        rows.truncate(write * dim);
        Ok(rows)
    }
}

/// Shuffles the rows of a row-major buffer in place.
fn shuffle_rows(rows: &mut [f32], dim: usize, rng: &mut Rng) {
    let n = rows.len() / dim;
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        if j != i {
            let (head, tail) = rows.split_at_mut(i * dim);
            head[j * dim..(j + 1) * dim].swap_with_slice(&mut tail[..dim]);
        }
    }
}

/// The batches of a streamed run: blocks in a seeded order per epoch, through a shuffle
/// buffer.
pub(crate) struct StreamBatches<'a> {
    source: &'a dyn RowBlocks,
    pub(crate) plan: StreamPlan,
    seed: u64,
    buffer_rows: usize,
    epoch: u64,
    order: Vec<usize>,
    next_block: usize,
    buffer: Vec<f32>,
    cursor: usize,
    pending: Vec<f32>,
    pending_pos: usize,
    fills: u64,
    pub(crate) peak_rows: usize,
}

impl<'a> StreamBatches<'a> {
    pub(crate) fn new(
        source: &'a dyn RowBlocks,
        plan: StreamPlan,
        options: &StreamOptions,
        seed: u64,
    ) -> Self {
        let peak_rows = plan.peak_rows;
        StreamBatches {
            source,
            plan,
            seed,
            buffer_rows: options.buffer_rows,
            epoch: u64::MAX,
            order: Vec::new(),
            next_block: 0,
            buffer: Vec::new(),
            cursor: 0,
            pending: Vec::new(),
            pending_pos: 0,
            fills: 0,
            peak_rows,
        }
    }

    fn rows(&self, v: &[f32]) -> usize {
        v.len() / self.plan.dim
    }

    fn note_peak(&mut self, batch: usize) {
        let held = self.rows(&self.buffer)
            + self.rows(&self.pending)
            + batch
            + self.plan.validation_rows()
            + self.rows(&self.plan.sample);
        self.peak_rows = self.peak_rows.max(held);
    }

    /// The `batch` rows of a step in epoch `epoch` (the caller's units).
    pub(crate) fn next(&mut self, epoch: u64, batch: usize) -> Result<Vec<f32>> {
        let dim = self.plan.dim;
        let start = self.take(epoch, batch)?;
        let out = self.buffer[start * dim..(start + batch) * dim].to_vec();
        self.note_peak(batch);
        Ok(out)
    }

    /// Moves the stream past the first `steps` batches of epoch `epoch` without handing
    /// them out, so that the next [`StreamBatches::next`] returns what it would have
    /// returned after them: a resumed run continues the uninterrupted run's order. Earlier
    /// epochs are never read (each epoch starts from an empty buffer); the blocks of this
    /// epoch up to the resume point are read and shuffled again, since the buffer's
    /// leftover rows depend on them, but no batch is copied.
    pub(crate) fn skip(&mut self, epoch: u64, steps: u64, batch: usize) -> Result<()> {
        for _ in 0..steps {
            self.take(epoch, batch)?;
        }
        Ok(())
    }

    /// Advances past the `batch` rows of a step in epoch `epoch`; where they start in the
    /// buffer.
    fn take(&mut self, epoch: u64, batch: usize) -> Result<usize> {
        if epoch != self.epoch {
            // A new epoch starts from an empty buffer: its tail rows (fewer than a batch)
            // are dropped, as the in-memory trainer drops an epoch's partial batch.
            self.epoch = epoch;
            self.order =
                data::epoch_order(self.plan.starts.len() - 1, self.seed ^ ORDER_SALT, epoch);
            self.next_block = 0;
            self.buffer = Vec::new();
            self.cursor = 0;
            self.pending = Vec::new();
            self.pending_pos = 0;
            self.fills = 0;
        }
        if self.rows(&self.buffer) - self.cursor < batch {
            self.refill(batch)?;
        }
        let left = self.rows(&self.buffer) - self.cursor;
        if left < batch {
            return Err(Error::SourceChanged {
                block: self.order.last().copied().unwrap_or(0),
                expected: batch,
                got: left,
            });
        }
        let start = self.cursor;
        self.cursor += batch;
        Ok(start)
    }

    /// Keeps the unread rows and tops the buffer up to its size from the next blocks,
    /// then shuffles it.
    fn refill(&mut self, batch: usize) -> Result<()> {
        let dim = self.plan.dim;
        self.buffer.drain(..self.cursor * dim);
        self.cursor = 0;
        let target = self.buffer_rows.max(batch);
        while self.rows(&self.buffer) < target {
            if self.pending_pos == self.rows(&self.pending) {
                let Some(&block) = self.order.get(self.next_block) else {
                    break;
                };
                self.next_block += 1;
                // Freed before the next read, so at most one block is held.
                self.pending = Vec::new();
                self.pending = self.plan.training_rows(self.source, block)?;
                self.pending_pos = 0;
                self.note_peak(0);
                continue;
            }
            let take =
                (target - self.rows(&self.buffer)).min(self.rows(&self.pending) - self.pending_pos);
            let from = self.pending_pos * dim;
            self.buffer
                .extend_from_slice(&self.pending[from..from + take * dim]);
            self.pending_pos += take;
        }
        let mut rng = Rng::new(
            self.seed
                ^ BUFFER_SALT
                ^ self.epoch.wrapping_mul(0xD1B5_4A32_D192_ED03)
                ^ self.fills.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        self.fills += 1;
        shuffle_rows(&mut self.buffer, dim, &mut rng);
        self.note_peak(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_rows_cover_the_rows_once() {
        let rows: Vec<f32> = (0..14).map(|v| v as f32).collect();
        let source = ChunkedRows::new(&rows, 2, 3);
        assert_eq!(source.num_blocks(), 3);
        let all: Vec<f32> = (0..3).flat_map(|b| source.read_block(b).unwrap()).collect();
        assert_eq!(all, rows);
        assert_eq!(source.read_block(2).unwrap().len(), 2);
    }

    #[test]
    fn row_shuffles_are_permutations_of_rows() {
        let mut rows: Vec<f32> = (0..40).map(|v| v as f32).collect();
        shuffle_rows(&mut rows, 4, &mut Rng::new(3));
        let mut firsts: Vec<i32> = rows.chunks(4).map(|r| r[0] as i32).collect();
        for r in rows.chunks(4) {
            assert_eq!(r[1], r[0] + 1.0);
        }
        assert_ne!(firsts, (0..10).map(|i| i * 4).collect::<Vec<_>>());
        firsts.sort();
        assert_eq!(firsts, (0..10).map(|i| i * 4).collect::<Vec<_>>());
    }

    #[test]
    fn the_plan_holds_out_a_capped_validation_set_and_counts_the_rest() {
        let (n, dim) = (5000, 3);
        let rows: Vec<f32> = (0..n * dim).map(|v| (v % 17) as f32).collect();
        let source = ChunkedRows::new(&rows, dim, 64);
        let options = StreamOptions {
            buffer_rows: 100,
            max_validation_rows: 40,
            sample_rows: SUMMARY_ROWS,
        };
        let plan = StreamPlan::new(&source, &options, 0.1, 9).unwrap();
        assert_eq!(plan.validation_rows(), 40);
        assert_eq!(plan.train_rows, n - 40);
        // The sample draws from the rows that cannot be validation rows (about 90 %).
        let sampled = plan.sample.len() / dim;
        assert!(sampled > n * 8 / 10 && sampled < n - 40, "{sampled}");
        let counted: usize = (0..source.num_blocks())
            .map(|b| plan.training_rows(&source, b).unwrap().len() / dim)
            .sum();
        assert_eq!(counted, plan.train_rows);
    }

    use std::cell::Cell;
    use std::collections::HashSet;

    use crate::train::{Backend, CheckpointPolicy, TrainConfig, TrainState, Trainer, state};
    use crate::weights::{SaeKind, SaeWeights};

    /// Rows that are sums of two of a few atoms with positive weights: data an SAE with
    /// k ≥ 2 reconstructs well.
    fn structured(n: usize, dim: usize, atoms: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let dict: Vec<f32> = (0..atoms * dim).map(|_| rng.symmetric()).collect();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut row = vec![0f32; dim];
            for _ in 0..2 {
                let a = rng.below(atoms);
                let w = 0.5 + rng.symmetric().abs();
                row.iter_mut()
                    .zip(&dict[a * dim..(a + 1) * dim])
                    .for_each(|(r, &v)| *r += w * v);
            }
            out.extend(row);
        }
        out
    }

    fn config() -> TrainConfig {
        let mut c = TrainConfig::new(SaeKind::TopK, 64, 4);
        c.epochs = 6;
        c.batch_size = 32;
        c.optim.warmup_steps = 5;
        c.validation_fraction = 0.05;
        c.input_scaling = true;
        c.log_every = 1;
        c
    }

    fn options() -> StreamOptions {
        StreamOptions {
            buffer_rows: 256,
            max_validation_rows: 100,
            sample_rows: 200,
        }
    }

    fn trainer(config: TrainConfig) -> Trainer {
        Trainer::new(config, Backend::default_cpu().unwrap()).unwrap()
    }

    #[test]
    fn streamed_training_learns_within_its_memory_bound() {
        let (n, dim, block) = (4000, 16, 50);
        let rows = structured(n, dim, 32, 1);
        let source = ChunkedRows::new(&rows, dim, block);
        let mut nmse = Vec::new();
        let out = trainer(config())
            .train_streamed(&source, &options(), &mut |m| nmse.push(m.nmse))
            .unwrap();
        let s = &out.summary;
        assert_eq!(nmse.len() as u64, s.steps);
        assert_eq!(s.steps, (n as u64 - 100) / 32 * 6);
        // Seeded, so these are exact for this build (0.26 in training when written).
        assert!(s.nmse < 0.35, "training NMSE {}", s.nmse);
        let validation = s.validation_nmse.unwrap();
        assert!(validation < 0.4, "validation NMSE {validation}");
        assert!(nmse[0] > 2.0 * s.nmse, "{} → {}", nmse[0], s.nmse);
        assert!(out.weights.config.input_scale.is_some());
        // The buffer was used, and nothing beyond the stated bound was held.
        let peak = s.peak_buffered_rows.unwrap();
        let bound = options().max_rows(32, block);
        assert!((256..=bound).contains(&peak), "peak {peak}, bound {bound}");
        assert!(bound < n / 4);
    }

    #[test]
    fn streamed_runs_are_fixed_by_the_seed() {
        let (n, dim) = (1200, 8);
        let rows = structured(n, dim, 16, 2);
        let source = ChunkedRows::new(&rows, dim, 40);
        let mut c = config();
        c.epochs = 2;
        c.bias_init = crate::train::BiasInit::GeometricMedian;
        let run = |c: &TrainConfig| {
            trainer(c.clone())
                .train_streamed(&source, &options(), &mut |_| {})
                .unwrap()
        };
        let (a, b) = (run(&c), run(&c));
        assert_eq!(a.weights.w_dec, b.weights.w_dec);
        assert_eq!(a.weights.w_enc, b.weights.w_enc);
        assert_eq!(a.weights.b_dec, b.weights.b_dec);
        assert_eq!(a.summary.nmse.to_bits(), b.summary.nmse.to_bits());
        let nmse = |o: &crate::train::TrainOutcome| -> Vec<u64> {
            o.history.iter().map(|m| m.nmse.to_bits()).collect()
        };
        assert_eq!(nmse(&a), nmse(&b));
        c.seed = 1;
        assert_ne!(run(&c).weights.w_dec, a.weights.w_dec);
    }

    #[test]
    fn batches_never_hold_a_validation_row_nor_repeat_a_row_within_an_epoch() {
        let (n, dim, block) = (1000usize, 2, 37);
        // The first coordinate of each row is its index in the source.
        let rows: Vec<f32> = (0..n).flat_map(|g| [g as f32, 1.0]).collect();
        let source = ChunkedRows::new(&rows, dim, block);
        let options = StreamOptions {
            buffer_rows: 100,
            max_validation_rows: 30,
            sample_rows: 10,
        };
        let plan = StreamPlan::new(&source, &options, 0.1, 5).unwrap();
        let held: HashSet<u64> = (0..n as u64).filter(|&g| plan.is_validation(g)).collect();
        assert_eq!(held.len(), 30);
        assert_eq!(plan.train_rows, n - 30);
        let validation: HashSet<u64> = plan.validation.chunks(dim).map(|r| r[0] as u64).collect();
        assert_eq!(validation, held);
        assert!(
            plan.sample
                .chunks(dim)
                .all(|r| !held.contains(&(r[0] as u64)))
        );
        let batch = 32;
        let steps = plan.train_rows / batch;
        let mut batches = StreamBatches::new(&source, plan, &options, 5);
        let mut epochs = Vec::new();
        for epoch in 0..2 {
            let mut seen = Vec::new();
            for _ in 0..steps {
                let rows = batches.next(epoch, batch).unwrap();
                assert_eq!(rows.len(), batch * dim);
                seen.extend(rows.chunks(dim).map(|r| r[0] as u64));
            }
            assert!(seen.iter().all(|g| !held.contains(g)));
            let distinct: HashSet<u64> = seen.iter().copied().collect();
            assert_eq!(distinct.len(), seen.len());
            epochs.push(seen);
        }
        assert_ne!(epochs[0], epochs[1]);
        // The buffer mixes blocks: a batch holds rows of several.
        let blocks: HashSet<u64> = epochs[0][..batch]
            .iter()
            .map(|g| g / block as u64)
            .collect();
        assert!(blocks.len() > 1, "{blocks:?}");
        assert!(batches.peak_rows <= options.max_rows(batch, block));
    }

    /// A source of given blocks that can fail, or change after its first pass.
    struct Blocks {
        dim: usize,
        blocks: Vec<Vec<f32>>,
        reads: Cell<usize>,
        shrink_after: Option<usize>,
        fail: bool,
    }

    impl Blocks {
        fn new(dim: usize, blocks: Vec<Vec<f32>>) -> Self {
            Blocks {
                dim,
                blocks,
                reads: Cell::new(0),
                shrink_after: None,
                fail: false,
            }
        }
    }

    impl RowBlocks for Blocks {
        fn dim(&self) -> usize {
            self.dim
        }

        fn num_blocks(&self) -> usize {
            self.blocks.len()
        }

        fn read_block(&self, block: usize) -> Result<Vec<f32>> {
            if self.fail {
                return Err(Error::RowSource("the disk is gone".into()));
            }
            self.reads.set(self.reads.get() + 1);
            let mut rows = self.blocks[block].clone();
            if self.shrink_after.is_some_and(|k| self.reads.get() > k) {
                rows.truncate(rows.len() - self.dim);
            }
            Ok(rows)
        }
    }

    #[test]
    fn bad_sources_are_typed_errors() {
        let t = trainer(config());
        let run = |s: &dyn RowBlocks| t.train_streamed(s, &options(), &mut |_| {});
        assert!(matches!(
            run(&ChunkedRows::new(&[], 4, 10)),
            Err(Error::EmptyTrainingSet)
        ));
        assert!(matches!(
            run(&Blocks::new(4, vec![vec![], vec![]])),
            Err(Error::EmptyTrainingSet)
        ));
        assert!(matches!(
            run(&Blocks::new(4, vec![vec![0.5; 8], vec![0.5; 7]])),
            Err(Error::RaggedBlock {
                block: 1,
                len: 7,
                dim: 4
            })
        ));
        let mut nan = vec![0.5; 8];
        nan[5] = f32::NAN;
        assert!(matches!(
            run(&Blocks::new(4, vec![vec![0.5; 8], nan])),
            Err(Error::NonFinite { row: 3, col: 1, .. })
        ));
        assert!(matches!(
            run(&Blocks::new(0, vec![vec![0.5; 8]])),
            Err(Error::InvalidConfig(_))
        ));
        let rows = structured(400, 4, 8, 3);
        let mut changing = Blocks::new(4, rows.chunks(400).map(<[f32]>::to_vec).collect());
        changing.shrink_after = Some(changing.blocks.len());
        assert!(matches!(run(&changing), Err(Error::SourceChanged { .. })));
        let mut failing = Blocks::new(4, vec![vec![0.5; 8]]);
        failing.fail = true;
        let err = run(&failing).unwrap_err();
        assert!(matches!(err, Error::RowSource(_)));
        assert!(err.to_string().contains("the disk is gone"), "{err}");
        // The KLD trainer needs pairs, which a stream does not have.
        let mut kld = config();
        kld.kind = SaeKind::Kld;
        assert!(matches!(
            trainer(kld).train_streamed(&ChunkedRows::new(&rows, 4, 10), &options(), &mut |_| {}),
            Err(Error::InvalidConfig(_))
        ));
        let zero = StreamOptions {
            buffer_rows: 0,
            ..options()
        };
        assert!(matches!(
            t.train_streamed(&ChunkedRows::new(&rows, 4, 10), &zero, &mut |_| {}),
            Err(Error::InvalidConfig(_))
        ));
    }

    fn policy(path: &std::path::Path, every_steps: u64) -> CheckpointPolicy {
        CheckpointPolicy {
            path: path.to_path_buf(),
            every_steps,
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The property resuming exists for: a streamed run stopped by a step limit and
    /// continued from its checkpoint ends bit for bit where the uninterrupted run ends,
    /// having trained on the same batches, without replaying earlier epochs.
    #[test]
    fn a_streamed_run_split_by_resume_is_the_uninterrupted_run() {
        let (n, dim, block) = (1200, 8, 40);
        let rows = structured(n, dim, 16, 4);
        let blocks = || Blocks::new(dim, rows.chunks(block * dim).map(<[f32]>::to_vec).collect());
        let num_blocks = n / block;
        let mut c = config();
        // BatchTopK and input scaling: the threshold accumulators and the input scale
        // must survive the checkpoint too.
        c.kind = SaeKind::BatchTopK;
        c.epochs = 3;
        let straight = trainer(c.clone())
            .train_streamed(&blocks(), &options(), &mut |_| {})
            .unwrap();
        // About 5 % of the rows are held out (fewer than the cap of 100).
        let steps_per_epoch = straight.state.step / 3;
        assert_eq!(straight.state.step, 3 * steps_per_epoch);
        assert!((33..=35).contains(&steps_per_epoch), "{steps_per_epoch}");
        assert!(straight.weights.config.threshold.is_some());
        assert!(straight.weights.config.input_scale.is_some());
        // Split inside the first epoch, and inside the second (whose resume skips the
        // first epoch unread and replays the second up to the split).
        for split in [7, steps_per_epoch + 11] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("sae.safetensors");
            let first = trainer(c.clone())
                .with_checkpoints(policy(&path, 5))
                .with_step_limit(split)
                .train_streamed(&blocks(), &options(), &mut |_| {})
                .unwrap();
            assert_eq!(first.state.step, split);
            let source = blocks();
            let mut steps = Vec::new();
            let resumed = trainer(c.clone())
                .with_checkpoints(policy(&path, 5))
                .resume_streamed(&source, &options(), &path, &mut |m| steps.push(m.step))
                .unwrap();
            let (r, s) = (&resumed.weights, &straight.weights);
            assert_eq!(resumed.state.step, straight.state.step, "split {split}");
            assert_eq!(resumed.summary.steps, straight.state.step - split);
            assert_eq!(steps.first(), Some(&(split + 1)));
            for (name, a, b) in [
                ("w_enc", &r.w_enc, &s.w_enc),
                ("w_dec", &r.w_dec, &s.w_dec),
                ("b_enc", &r.b_enc, &s.b_enc),
                ("b_dec", &r.b_dec, &s.b_dec),
            ] {
                assert!(bits(a) == bits(b), "{name} differs, split {split}");
            }
            assert_eq!(r.config, s.config, "split {split}");
            assert_eq!(resumed.state.since_fired, straight.state.since_fired);
            // Every resumed step saw the uninterrupted run's batch (log_every is 1).
            let loss = |h: &[crate::train::StepMetrics]| -> Vec<u64> {
                h.iter().map(|m| m.loss.to_bits()).collect()
            };
            assert!(
                loss(&resumed.history) == loss(&straight.history[split as usize..]),
                "the losses differ, split {split}"
            );
            // The plan pass, then the blocks from the split's epoch on: earlier epochs are
            // skipped unread (each epoch reads every block once).
            let epochs_read = 3 - split / steps_per_epoch;
            assert_eq!(
                source.reads.get(),
                num_blocks * (1 + epochs_read as usize),
                "split {split}"
            );
            let peak = resumed.summary.peak_buffered_rows.unwrap();
            assert!(peak <= options().max_rows(32, block), "peak {peak}");
        }
    }

    /// A resume that would continue a run on other batches than the checkpoint's is a typed
    /// error that says what to do; only `epochs` may change.
    #[test]
    fn resuming_on_another_stream_or_run_is_refused() {
        let (n, dim) = (600, 4);
        let rows = structured(n, dim, 8, 5);
        let source = ChunkedRows::new(&rows, dim, 50);
        let dir = tempfile::tempdir().unwrap();
        let streamed = dir.path().join("streamed.safetensors");
        let first = trainer(config())
            .with_checkpoints(policy(&streamed, 5))
            .with_step_limit(5)
            .train_streamed(&source, &options(), &mut |_| {})
            .unwrap();
        let resume = |c: TrainConfig, s: &dyn RowBlocks, o: &StreamOptions, p: &std::path::Path| {
            trainer(c).resume_streamed(s, o, p, &mut |_| {})
        };
        let refused = |r: Result<crate::train::TrainOutcome>, says: &str| match r {
            Err(Error::InvalidConfig(m)) => assert!(m.contains(says), "{m}"),
            other => panic!(
                "expected a refusal saying {says:?}, got {:?}",
                other.map(|o| o.state.step)
            ),
        };

        // The in-memory resume points at the streamed one...
        let set = crate::train::TrainSet::new(&rows, dim).unwrap();
        refused(
            trainer(config()).resume(&set, &streamed, &mut |_| {}),
            "Trainer::resume_streamed",
        );
        // ...and the streamed one at the in-memory one.
        let in_memory = dir.path().join("in-memory.safetensors");
        trainer(config())
            .with_checkpoints(policy(&in_memory, 5))
            .with_step_limit(5)
            .train(&set, &mut |_| {})
            .unwrap();
        refused(
            resume(config(), &source, &options(), &in_memory),
            "Trainer::resume ",
        );

        // Other stream options would order the batches otherwise.
        let wider = StreamOptions {
            buffer_rows: 512,
            ..options()
        };
        refused(
            resume(config(), &source, &wider, &streamed),
            "stream options",
        );
        // Other rows: changed values in the same layout, a row fewer, other blocks.
        let mut edited = rows.clone();
        edited[dim * 300] += 0.5;
        let same_layout = ChunkedRows::new(&edited, dim, 50);
        refused(
            resume(config(), &same_layout, &options(), &streamed),
            "same rows",
        );
        let shorter = ChunkedRows::new(&rows[..(n - 1) * dim], dim, 50);
        refused(
            resume(config(), &shorter, &options(), &streamed),
            "same rows",
        );
        let reblocked = ChunkedRows::new(&rows, dim, 60);
        refused(
            resume(config(), &reblocked, &options(), &streamed),
            "same rows",
        );
        // Another width, another configuration.
        let wide = structured(n, dim + 1, 8, 5);
        assert!(matches!(
            resume(
                config(),
                &ChunkedRows::new(&wide, dim + 1, 50),
                &options(),
                &streamed
            ),
            Err(Error::DimensionMismatch {
                expected: 4,
                got: 5
            })
        ));
        let mut reseeded = config();
        reseeded.seed = 1;
        refused(
            resume(reseeded, &source, &options(), &streamed),
            "only epochs may change",
        );

        // A streamed checkpoint written before resumes existed has no fingerprint.
        let legacy = dir.path().join("legacy.safetensors");
        let mut w = SaeWeights::load(&streamed).unwrap();
        let state = TrainState::load(&state::state_path(&streamed), &w).unwrap();
        w.config.metadata.remove(PLAN_KEY);
        w.save(&legacy).unwrap();
        state.save(&state::state_path(&legacy), &w).unwrap();
        refused(
            resume(config(), &source, &options(), &legacy),
            "train again",
        );

        // The same stream with more epochs resumes.
        let mut longer = config();
        longer.epochs += 1;
        let out = resume(longer.clone(), &source, &options(), &streamed).unwrap();
        let steps_per_epoch = first.history[0].total_steps / config().epochs as u64;
        assert_eq!(out.state.step, steps_per_epoch * longer.epochs as u64);
        assert_eq!(out.summary.steps, out.state.step - 5);
    }
}
