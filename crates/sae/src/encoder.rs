//! `SaeEncoder`: embeddings → sparse latent codes and back, without burn.

use std::path::Path;

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result, check_rows};
use crate::weights::{SaeConfig, SaeWeights};

/// Rows encoded per GEMM call: large enough for an efficient GEMM, small enough that
/// the `[rows, d_sae]` pre-activation block stays in cache-friendly memory per thread.
const BLOCK_ROWS: usize = 128;

/// The active latents of one vector, sorted by latent id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseCode {
    /// Latent ids, ascending.
    pub indices: Vec<u32>,
    /// Activations (positive), aligned with `indices`.
    pub values: Vec<f32>,
}

impl SparseCode {
    /// A code from `(latent, activation)` pairs in any order (a latent given twice keeps
    /// its last activation).
    ///
    /// ```
    /// use latent_terms_sae::SparseCode;
    ///
    /// let code = SparseCode::from_pairs(&[(9, 0.5), (2, 1.0)]);
    /// assert_eq!(code.indices, vec![2, 9]);
    /// assert_eq!(code.values, vec![1.0, 0.5]);
    /// ```
    pub fn from_pairs(pairs: &[(u32, f32)]) -> Self {
        let sorted: std::collections::BTreeMap<u32, f32> = pairs.iter().copied().collect();
        SparseCode {
            indices: sorted.keys().copied().collect(),
            values: sorted.values().copied().collect(),
        }
    }

    /// Number of active latents.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when no latent is active.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// `(latent, activation)` pairs in latent order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.indices
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }
}

/// Which latents count as active at inference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// The `k` largest positive pre-activations of each vector. `k` is independent of the
    /// training k: encoding with a larger k than trained with is a common choice.
    TopK(usize),
    /// Every pre-activation above the SAE's stored threshold (BatchTopK inference).
    StoredThreshold,
    /// Every pre-activation above this threshold.
    Threshold(f32),
}

/// How to encode: the activation rule and an optional cap on active latents per vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncodeOptions {
    /// The activation rule.
    pub activation: Activation,
    /// Keep at most this many (the largest) active latents per vector.
    pub cap: Option<usize>,
}

impl EncodeOptions {
    /// Top-`k` encoding without a cap.
    pub fn top_k(k: usize) -> Self {
        EncodeOptions {
            activation: Activation::TopK(k),
            cap: None,
        }
    }

    /// Threshold encoding with the SAE's stored threshold, capped at `cap` latents if given.
    pub fn stored_threshold(cap: Option<usize>) -> Self {
        EncodeOptions {
            activation: Activation::StoredThreshold,
            cap,
        }
    }
}

/// A trained sparse autoencoder ready to encode and decode, on plain CPU code.
///
/// When the SAE was trained on scaled inputs ([`crate::SaeConfig::input_scale`] `= Some(c)`),
/// [`SaeEncoder::encode`] and [`SaeEncoder::pre_activations`] multiply each input row by
/// `c` before subtracting `b_dec`, and [`SaeEncoder::decode`] divides the reconstruction by
/// `c`: inputs and reconstructions are in the caller's units, activations (and thresholds)
/// in the SAE's scaled units.
///
/// ```
/// use latent_terms_sae::{EncodeOptions, SaeConfig, SaeEncoder, SaeKind, SaeWeights};
///
/// // A 2-d input, 3-latent SAE whose latents read the axes and their sum.
/// let config = SaeConfig::new(SaeKind::TopK, 2, 3, 1)?;
/// let weights = SaeWeights {
///     config,
///     w_enc: vec![1.0, 0.0, 0.7, 0.0, 1.0, 0.7],
///     b_enc: vec![0.0; 3],
///     w_dec: vec![1.0, 0.0, 0.0, 1.0, 0.7071, 0.7071],
///     b_dec: vec![0.0; 2],
/// };
/// let sae = SaeEncoder::new(weights)?;
/// let codes = sae.encode(&[0.9, 0.1, 0.0, 0.5], &EncodeOptions::top_k(1))?;
/// assert_eq!(codes[0].indices, vec![0]);
/// assert_eq!(codes[1].indices, vec![1]);
/// let back = sae.decode(&codes);
/// assert!((back[0] - 0.9).abs() < 1e-6);
/// # Ok::<(), latent_terms_sae::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SaeEncoder {
    weights: SaeWeights,
}

impl SaeEncoder {
    /// Wraps validated weights.
    pub fn new(weights: SaeWeights) -> Result<Self> {
        weights.validate()?;
        Ok(SaeEncoder { weights })
    }

    /// Loads a checkpoint (see [`SaeWeights::load`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::new(SaeWeights::load(path)?)
    }

    /// The weights.
    pub fn weights(&self) -> &SaeWeights {
        &self.weights
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.weights.config.d_in
    }

    /// Number of latents.
    pub fn d_sae(&self) -> usize {
        self.weights.config.d_sae
    }

    /// The constant input rows are multiplied by before encoding
    /// ([`crate::SaeConfig::input_scale`]; 1.0 when the SAE has none).
    pub fn input_scale(&self) -> f32 {
        self.weights.config.input_scale.unwrap_or(1.0)
    }

    /// Checks that rows of `dim` values are what this SAE reads. The encode methods take
    /// flat row-major data and can only check that its length is a multiple of `d_in`
    /// (16-d rows would pass an 8-d SAE as twice as many 8-d rows), so callers that know
    /// their rows' dimension check it here first.
    ///
    /// ```
    /// # use latent_terms_sae::{SaeConfig, SaeEncoder, SaeKind, SaeWeights};
    /// let config = SaeConfig::new(SaeKind::TopK, 8, 16, 2)?;
    /// let sae = SaeEncoder::new(SaeWeights {
    ///     config,
    ///     w_enc: vec![0.0; 8 * 16],
    ///     b_enc: vec![0.0; 16],
    ///     w_dec: vec![0.0; 16 * 8],
    ///     b_dec: vec![0.0; 8],
    /// })?;
    /// assert!(sae.check_dim(8).is_ok());
    /// assert!(sae.check_dim(16).is_err());
    /// # Ok::<(), latent_terms_sae::Error>(())
    /// ```
    pub fn check_dim(&self, dim: usize) -> Result<()> {
        if dim != self.d_in() {
            return Err(Error::DimensionMismatch {
                expected: self.d_in(),
                got: dim,
            });
        }
        Ok(())
    }

    fn check_input(&self, rows: &[f32]) -> Result<()> {
        let d = self.d_in();
        if !rows.len().is_multiple_of(d) {
            return Err(Error::DimensionMismatch {
                expected: d,
                got: rows.len() % d,
            });
        }
        check_rows("the embeddings", rows, d)
    }

    /// Pre-activations `W_encᵀ(c·x − b_dec) + b_enc` of row-major `rows`, `[n, d_sae]`,
    /// with `c` the [input scale](SaeEncoder::input_scale).
    pub fn pre_activations(&self, rows: &[f32]) -> Result<Vec<f32>> {
        self.check_input(rows)?;
        let m = self.d_sae();
        let mut out = vec![0.0; rows.len() / self.d_in() * m];
        out.par_chunks_mut(BLOCK_ROWS * m)
            .zip(rows.par_chunks(BLOCK_ROWS * self.d_in()))
            .for_each(|(out, rows)| self.pre_block(rows, out));
        Ok(out)
    }

    fn pre_block(&self, rows: &[f32], out: &mut [f32]) {
        let (d, m) = (self.d_in(), self.d_sae());
        let n = rows.len() / d;
        let w = &self.weights;
        let scale = self.input_scale();
        let mut centred = ndarray::Array2::<f32>::zeros((n, d));
        for (mut dst, src) in centred.axis_iter_mut(Axis(0)).zip(rows.chunks_exact(d)) {
            for ((o, x), b) in dst.iter_mut().zip(src).zip(&w.b_dec) {
                *o = x * scale - b;
            }
        }
        let w_enc = ArrayView2::from_shape((d, m), &w.w_enc).expect("validated shape");
        let mut pre = ndarray::ArrayViewMut2::from_shape((n, m), out).expect("block shape");
        for mut row in pre.axis_iter_mut(Axis(0)) {
            row.assign(&ndarray::ArrayView1::from(&w.b_enc));
        }
        ndarray::linalg::general_mat_mul(1.0, &centred, &w_enc, 1.0, &mut pre);
    }

    /// Encodes row-major `rows` (`n × d_in`, in the caller's units: the
    /// [input scale](SaeEncoder::input_scale) is applied here) into `n` sparse codes.
    ///
    /// Errors on a width that is not a multiple of `d_in`, on NaN/Inf, on `TopK(0)` or a
    /// k above the latent count, and on `StoredThreshold` for an SAE without a threshold.
    pub fn encode(&self, rows: &[f32], options: &EncodeOptions) -> Result<Vec<SparseCode>> {
        self.check_input(rows)?;
        let rule = self.rule(options)?;
        let (d, m) = (self.d_in(), self.d_sae());
        let blocks: Vec<Vec<SparseCode>> = rows
            .par_chunks(BLOCK_ROWS * d)
            .map(|block| {
                let mut pre = vec![0.0; block.len() / d * m];
                self.pre_block(block, &mut pre);
                pre.chunks_exact(m).map(|row| rule.select(row)).collect()
            })
            .collect();
        Ok(blocks.into_iter().flatten().collect())
    }

    fn rule(&self, options: &EncodeOptions) -> Result<Rule<'_>> {
        let m = self.d_sae();
        let cap = match options.cap {
            Some(0) => {
                return Err(Error::InvalidConfig(
                    "the per-vector cap must be positive".into(),
                ));
            }
            Some(c) => c.min(m),
            None => m,
        };
        match options.activation {
            Activation::TopK(k) if k == 0 || k > m => Err(Error::InvalidConfig(format!(
                "inference k must be in 1..={m}, got {k}"
            ))),
            Activation::TopK(k) => Ok(Rule {
                keep: k.min(cap),
                threshold: 0.0,
                per_latent: None,
            }),
            Activation::Threshold(t) if !t.is_finite() => {
                Err(Error::InvalidConfig("the threshold is not finite".into()))
            }
            Activation::Threshold(t) => Ok(Rule {
                keep: cap,
                threshold: t.max(0.0),
                per_latent: None,
            }),
            Activation::StoredThreshold => match &self.weights.config {
                c if c.latent_thresholds.is_some() => Ok(Rule {
                    keep: cap,
                    threshold: 0.0,
                    per_latent: c.latent_thresholds.as_deref(),
                }),
                SaeConfig {
                    threshold: Some(t), ..
                } => Ok(Rule {
                    keep: cap,
                    threshold: t.max(0.0),
                    per_latent: None,
                }),
                _ => Err(Error::InvalidConfig(
                    "this SAE has no stored threshold (train it as batchtopk); use top-k".into(),
                )),
            },
        }
    }

    /// Decodes sparse codes back to row-major dense vectors `(W_decᵀ·h + b_dec) / c`, in
    /// the caller's units (`c` the [input scale](SaeEncoder::input_scale)).
    ///
    /// Latent ids at or above `d_sae` are ignored.
    pub fn decode(&self, codes: &[SparseCode]) -> Vec<f32> {
        let d = self.d_in();
        let w = &self.weights;
        let scale = self.input_scale();
        let mut out = vec![0.0; codes.len() * d];
        out.par_chunks_mut(d)
            .zip(codes.par_iter())
            .for_each(|(row, code)| {
                row.copy_from_slice(&w.b_dec);
                for (i, v) in code.iter() {
                    if let Some(dir) = w.w_dec.get(i as usize * d..(i as usize + 1) * d) {
                        row.iter_mut().zip(dir).for_each(|(o, x)| *o += v * x);
                    }
                }
                if scale != 1.0 {
                    row.iter_mut().for_each(|o| *o /= scale);
                }
            });
        out
    }
}

/// Keep the `keep` largest pre-activations above `threshold`, or above each latent's own
/// threshold and 0 (JumpReLU) when `per_latent` is set; ties go to the lower latent id.
struct Rule<'a> {
    keep: usize,
    threshold: f32,
    per_latent: Option<&'a [f32]>,
}

impl Rule<'_> {
    fn select(&self, pre: &[f32]) -> SparseCode {
        let above = |i: usize, v: f32| match self.per_latent {
            Some(t) => v > 0.0 && v > t[i],
            None => v > self.threshold,
        };
        let mut active: Vec<(u32, f32)> = pre
            .iter()
            .enumerate()
            .filter(|&(i, &v)| above(i, v))
            .map(|(i, &v)| (i as u32, v))
            .collect();
        if active.len() > self.keep {
            let by_value = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            active.select_nth_unstable_by(self.keep - 1, by_value);
            active.truncate(self.keep);
        }
        active.sort_unstable_by_key(|&(i, _)| i);
        let (indices, values) = active.into_iter().unzip();
        SparseCode { indices, values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::{SaeConfig, SaeKind};

    fn random_sae(d: usize, m: usize, seed: u64) -> SaeWeights {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        SaeWeights {
            config: SaeConfig::new(SaeKind::TopK, d, m, 4).unwrap(),
            w_enc: (0..d * m).map(|_| next()).collect(),
            b_enc: (0..m).map(|_| next() * 0.1).collect(),
            w_dec: (0..d * m).map(|_| next()).collect(),
            b_dec: (0..d).map(|_| next() * 0.1).collect(),
        }
    }

    fn naive_pre(w: &SaeWeights, x: &[f32]) -> Vec<f32> {
        let (d, m) = (w.config.d_in, w.config.d_sae);
        (0..m)
            .map(|j| {
                w.b_enc[j]
                    + (0..d)
                        .map(|i| (x[i] - w.b_dec[i]) * w.w_enc[i * m + j])
                        .sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn encoding_matches_a_naive_implementation() {
        let w = random_sae(7, 300, 1);
        let sae = SaeEncoder::new(w.clone()).unwrap();
        let rows: Vec<f32> = (0..7 * 301)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let codes = sae.encode(&rows, &EncodeOptions::top_k(5)).unwrap();
        assert_eq!(codes.len(), 301);
        for (x, code) in rows.chunks(7).zip(&codes) {
            let pre = naive_pre(&w, x);
            let mut order: Vec<usize> = (0..pre.len()).filter(|&j| pre[j] > 0.0).collect();
            order.sort_by(|&a, &b| pre[b].total_cmp(&pre[a]));
            let mut want: Vec<u32> = order.iter().take(5).map(|&j| j as u32).collect();
            want.sort();
            assert_eq!(code.indices, want);
            for (j, v) in code.iter() {
                assert!((v - pre[j as usize]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn threshold_and_cap() {
        let mut w = random_sae(5, 64, 2);
        w.config.threshold = Some(0.2);
        let sae = SaeEncoder::new(w).unwrap();
        let rows: Vec<f32> = (0..5 * 10)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let all = sae
            .encode(&rows, &EncodeOptions::stored_threshold(None))
            .unwrap();
        let capped = sae
            .encode(&rows, &EncodeOptions::stored_threshold(Some(3)))
            .unwrap();
        let pre = sae.pre_activations(&rows).unwrap();
        for ((a, c), p) in all.iter().zip(&capped).zip(pre.chunks(64)) {
            assert_eq!(a.len(), p.iter().filter(|&&v| v > 0.2).count());
            assert_eq!(c.len(), a.len().min(3));
            let min_kept = c.values.iter().copied().fold(f32::INFINITY, f32::min);
            let dropped_max = a
                .iter()
                .filter(|(i, _)| !c.indices.contains(i))
                .map(|(_, v)| v)
                .fold(f32::NEG_INFINITY, f32::max);
            assert!(min_kept >= dropped_max);
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let sae = SaeEncoder::new(random_sae(4, 16, 3)).unwrap();
        assert!(matches!(
            sae.encode(&[0.0; 6], &EncodeOptions::top_k(2)),
            Err(Error::DimensionMismatch { expected: 4, .. })
        ));
        let mut rows = vec![0.5; 8];
        rows[5] = f32::NAN;
        assert!(matches!(
            sae.encode(&rows, &EncodeOptions::top_k(2)),
            Err(Error::NonFinite { row: 1, col: 1, .. })
        ));
        assert!(sae.encode(&[0.0; 4], &EncodeOptions::top_k(0)).is_err());
        assert!(sae.encode(&[0.0; 4], &EncodeOptions::top_k(17)).is_err());
        assert!(
            sae.encode(&[0.0; 4], &EncodeOptions::stored_threshold(None))
                .is_err()
        );
    }

    /// An SAE with input scale `c` encodes `x` exactly as the same weights without a
    /// scale encode `c·x`, and decodes to the unscaled SAE's output divided by `c`.
    #[test]
    fn input_scale_is_applied_on_the_way_in_and_out() {
        let plain = random_sae(7, 50, 5);
        let mut scaled = plain.clone();
        let c = 0.37f32;
        scaled.config.set_input_scale(Some(c));
        let plain = SaeEncoder::new(plain).unwrap();
        let scaled = SaeEncoder::new(scaled).unwrap();
        assert_eq!(plain.input_scale(), 1.0);
        assert_eq!(scaled.input_scale(), c);
        let rows: Vec<f32> = (0..7 * 200)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.9)
            .collect();
        let pre_scaled_input: Vec<f32> = rows.iter().map(|v| v * c).collect();
        let options = EncodeOptions::top_k(6);
        let codes = scaled.encode(&rows, &options).unwrap();
        assert_eq!(codes, plain.encode(&pre_scaled_input, &options).unwrap());
        assert_eq!(
            scaled.pre_activations(&rows).unwrap(),
            plain.pre_activations(&pre_scaled_input).unwrap()
        );
        let ours = scaled.decode(&codes);
        let theirs = plain.decode(&codes);
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                (a - b / c).abs() <= 1e-5 * (1.0 + a.abs()),
                "{a} vs {}",
                b / c
            );
        }
    }

    /// encode → decode is in the caller's units: an SAE that reconstructs its (scaled)
    /// inputs exactly gives back the caller's vectors, not the scaled ones.
    #[test]
    fn decode_returns_the_callers_units() {
        let mut config = SaeConfig::new(SaeKind::TopK, 2, 4, 1).unwrap();
        config.set_input_scale(Some(0.25));
        let sae = SaeEncoder::new(SaeWeights {
            config,
            w_enc: vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0],
            b_enc: vec![0.0; 4],
            w_dec: vec![1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0],
            b_dec: vec![0.0; 2],
        })
        .unwrap();
        let rows = [0.0, -8.0, 12.0, 0.0];
        let codes = sae.encode(&rows, &EncodeOptions::top_k(1)).unwrap();
        assert_eq!(codes[0], SparseCode::from_pairs(&[(3, 2.0)]));
        assert_eq!(codes[1], SparseCode::from_pairs(&[(0, 3.0)]));
        assert_eq!(sae.decode(&codes), rows.to_vec());
    }

    #[test]
    fn decode_is_the_decoder_affine_map() {
        let w = random_sae(6, 20, 4);
        let sae = SaeEncoder::new(w.clone()).unwrap();
        let code = SparseCode {
            indices: vec![2, 9],
            values: vec![0.5, 2.0],
        };
        let out = sae.decode(std::slice::from_ref(&code));
        for (i, got) in out.iter().enumerate() {
            let want = w.b_dec[i] + 0.5 * w.w_dec[2 * 6 + i] + 2.0 * w.w_dec[9 * 6 + i];
            assert!((got - want).abs() < 1e-6);
        }
    }
}
