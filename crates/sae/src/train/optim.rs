//! AdamW with linear warm-up then cosine or linear decay, and global-norm clipping.
//!
//! The warm-up lasts `warmup_steps`, but never more than [`MAX_WARMUP_FRACTION`] of the
//! run's steps, so a short run still reaches its peak rate and decays.
//!
//! Written over burn tensors rather than through `burn::optim` because the trainer computes
//! its gradients analytically (to exploit the sparsity of the code, see `step.rs`) and
//! edits them (decoder projection) before the update; `burn::optim` expects gradients from
//! burn's autodiff graph. On burn flex the trainer runs the same update as one host pass
//! ([`Moments::update_host`]).

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Learning-rate decay after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half-cosine from the peak rate down to `min_lr_fraction × peak`.
    Cosine,
    /// Straight line down to `min_lr_fraction × peak`.
    Linear,
    /// Constant at the peak rate.
    Constant,
}

/// The largest share of a run's steps the warm-up may take: a run of `total` steps warms
/// up for `min(warmup_steps, ⌊0.1·total⌋)` steps.
pub const MAX_WARMUP_FRACTION: f64 = 0.1;

/// Optimiser settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps from 0 to the peak, capped at [`MAX_WARMUP_FRACTION`] of the
    /// run's total steps (see [`OptimConfig::effective_warmup`]).
    pub warmup_steps: u64,
    /// Decay after warm-up.
    pub decay: Decay,
    /// Final rate as a fraction of the peak.
    pub min_lr_fraction: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value.
    pub clip_norm: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 5e-4,
            warmup_steps: 100,
            decay: Decay::Cosine,
            min_lr_fraction: 0.05,
            beta1: 0.9,
            beta2: 0.999,
            eps: 6.25e-10,
            weight_decay: 0.0,
            clip_norm: Some(1.0),
        }
    }
}

impl OptimConfig {
    /// The warm-up steps of a run of `total` steps: `warmup_steps`, capped at
    /// [`MAX_WARMUP_FRACTION`] of `total` (rounded down), so that the warm-up of a short
    /// run cannot outlast it.
    ///
    /// ```
    /// use latent_terms_sae::train::OptimConfig;
    ///
    /// let optim = OptimConfig { warmup_steps: 100, ..OptimConfig::default() };
    /// assert_eq!(optim.effective_warmup(30), 3);
    /// assert_eq!(optim.effective_warmup(5_000), 100);
    /// ```
    pub fn effective_warmup(&self, total: u64) -> u64 {
        let cap = (total as f64 * MAX_WARMUP_FRACTION).floor() as u64;
        self.warmup_steps.min(cap)
    }

    /// The learning rate at `step` (0-based) of `total` steps: linear warm-up over
    /// [`OptimConfig::effective_warmup`] steps to `lr`, then the decay.
    pub fn lr_at(&self, step: u64, total: u64) -> f64 {
        let warmup = self.effective_warmup(total);
        if step < warmup {
            return self.lr * (step + 1) as f64 / warmup as f64;
        }
        let span = total.saturating_sub(warmup).max(1) as f64;
        let t = ((step - warmup) as f64 / span).min(1.0);
        let floor = self.lr * self.min_lr_fraction;
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Linear => floor + (self.lr - floor) * (1.0 - t),
            Decay::Cosine => {
                floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Adam moments of one parameter.
#[derive(Clone, Debug)]
pub(crate) struct Moments<const D: usize> {
    pub(crate) m: Tensor<D>,
    pub(crate) v: Tensor<D>,
}

impl<const D: usize> Moments<D> {
    pub(crate) fn zeros_like(p: &Tensor<D>) -> Self {
        Moments {
            m: p.zeros_like(),
            v: p.zeros_like(),
        }
    }

    /// One AdamW update of `param` with gradient `grad` at 1-based step `t`: the new
    /// moments and the new parameter. The moments are taken by value so their updates run
    /// in place (a shared tensor would be copied first).
    pub(crate) fn update(
        self,
        cfg: &OptimConfig,
        lr: f64,
        t: u64,
        param: Tensor<D>,
        grad: Tensor<D>,
    ) -> (Self, Tensor<D>) {
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let m = self.m.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
        let v = self.v.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2);
        let bias1 = 1.0 - b1.powi(t as i32);
        let bias2 = 1.0 - b2.powi(t as i32);
        // lr·m̂/(√v̂ + ε) with the bias corrections folded into two scalars.
        let step = m
            .clone()
            .div(v.clone().sqrt().add_scalar(cfg.eps * bias2.sqrt()));
        let step_size = lr * bias2.sqrt() / bias1;
        let param = if cfg.weight_decay > 0.0 {
            param.mul_scalar(1.0 - lr * cfg.weight_decay)
        } else {
            param
        };
        (Moments { m, v }, param - step.mul_scalar(step_size))
    }

    /// [`Moments::update`] as one pass over host memory, for a device whose memory is the
    /// host's (burn flex): the tensor version makes about a dozen passes over each
    /// `[m, d]` parameter, allocating for several. The result is bit for bit the same: the
    /// same `f32` operations in the same order (see [`AdamScalars`]), each rounded as the
    /// tensor ops round them; flex reads and rebuilds uniquely owned tensors without a copy.
    pub(crate) fn update_host(
        self,
        cfg: &OptimConfig,
        lr: f64,
        t: u64,
        param: Tensor<D>,
        grad: Tensor<D>,
    ) -> Result<(Self, Tensor<D>)> {
        use super::read;
        let (shape, device) = (param.shape(), param.device());
        let mut p = read(param)?;
        let g = read(grad)?;
        let mut m = read(self.m)?;
        let mut v = read(self.v)?;
        AdamScalars::new(cfg, lr, t).apply(&mut p, &g, &mut m, &mut v);
        let back = |x: Vec<f32>| Tensor::<D>::from_data(TensorData::new(x, shape.clone()), &device);
        Ok((
            Moments {
                m: back(m),
                v: back(v),
            },
            back(p),
        ))
    }
}

/// The scalars of one AdamW step, converted to `f32` as burn's scalar ops convert them
/// (`f64 as f32`), so that [`AdamScalars::apply`] repeats [`Moments::update`] exactly.
#[derive(Clone, Copy, Debug)]
struct AdamScalars {
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    eps: f32,
    decay: Option<f32>,
    step_size: f32,
}

/// Elements per parallel task of [`AdamScalars::apply`].
const ADAM_CHUNK: usize = 1 << 14;

impl AdamScalars {
    fn new(cfg: &OptimConfig, lr: f64, t: u64) -> Self {
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let bias1 = 1.0 - b1.powi(t as i32);
        let bias2 = 1.0 - b2.powi(t as i32);
        AdamScalars {
            b1: b1 as f32,
            one_minus_b1: (1.0 - b1) as f32,
            b2: b2 as f32,
            one_minus_b2: (1.0 - b2) as f32,
            eps: (cfg.eps * bias2.sqrt()) as f32,
            decay: (cfg.weight_decay > 0.0).then_some((1.0 - lr * cfg.weight_decay) as f32),
            step_size: (lr * bias2.sqrt() / bias1) as f32,
        }
    }

    /// In place: `m`, `v` and `p` become the updated moments and parameter.
    fn apply(self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let s = self;
        p.par_chunks_mut(ADAM_CHUNK)
            .zip(g.par_chunks(ADAM_CHUNK))
            .zip(m.par_chunks_mut(ADAM_CHUNK))
            .zip(v.par_chunks_mut(ADAM_CHUNK))
            .for_each(|(((p, g), m), v)| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                    // Each line is one tensor op of `Moments::update`, in its order.
                    *m = *m * s.b1 + g * s.one_minus_b1;
                    *v = *v * s.b2 + (g * g) * s.one_minus_b2;
                    let step = *m / (v.sqrt() + s.eps);
                    if let Some(decay) = s.decay {
                        *p *= decay;
                    }
                    *p -= step * s.step_size;
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::test_support::{host, random, tensor2};

    /// The host pass is bit for bit the tensor update, over several steps (bias
    /// corrections change), with and without weight decay, on gradients that include
    /// zeros (latents that did not fire) and large values.
    #[test]
    fn host_update_is_bit_identical_to_the_tensor_update() {
        let dev = crate::train::Backend::default_cpu()
            .unwrap()
            .device()
            .unwrap();
        let (rows, cols) = (37, 1000);
        let n = rows * cols;
        for weight_decay in [0.0, 0.01] {
            let cfg = OptimConfig {
                weight_decay,
                ..OptimConfig::default()
            };
            let mut param = tensor2(random(n, 1), [rows, cols], &dev);
            let mut tensor = Moments::zeros_like(&param);
            let mut host_param = param.clone();
            let mut on_host = Moments::zeros_like(&param);
            for t in 1..=4u64 {
                let mut g = random(n, 10 + t);
                g.iter_mut().step_by(3).for_each(|x| *x = 0.0);
                g.iter_mut().step_by(7).for_each(|x| *x *= 1e4);
                let grad = tensor2(g, [rows, cols], &dev);
                let lr = cfg.lr_at(t - 1, 10);
                let (m, p) = tensor.update(&cfg, lr, t, param, grad.clone());
                let (hm, hp) = on_host.update_host(&cfg, lr, t, host_param, grad).unwrap();
                let bits =
                    |x: Tensor<2>| -> Vec<u32> { host(x).iter().map(|v| v.to_bits()).collect() };
                assert_eq!(bits(p.clone()), bits(hp.clone()), "param, step {t}");
                assert_eq!(bits(m.m.clone()), bits(hm.m.clone()), "m, step {t}");
                assert_eq!(bits(m.v.clone()), bits(hm.v.clone()), "v, step {t}");
                (param, tensor, host_param, on_host) = (p, m, hp, hm);
            }
        }
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let cfg = OptimConfig {
            warmup_steps: 10,
            ..OptimConfig::default()
        };
        assert!((cfg.lr_at(0, 100) - cfg.lr / 10.0).abs() < 1e-12);
        assert!((cfg.lr_at(9, 100) - cfg.lr).abs() < 1e-12);
        assert!((cfg.lr_at(10, 100) - cfg.lr).abs() < 1e-12);
        let end = cfg.lr_at(100, 100);
        assert!((end - cfg.lr * cfg.min_lr_fraction).abs() < 1e-12);
        let mid = cfg.lr_at(55, 100);
        assert!(mid < cfg.lr && mid > end);
        let lin = OptimConfig {
            decay: Decay::Linear,
            ..cfg.clone()
        };
        assert!((lin.lr_at(55, 100) - (end + (cfg.lr - end) * 0.5)).abs() < 1e-9);
    }

    /// With the default 100-step warm-up, a 30-step run still reaches the peak rate
    /// (after ⌊0.1·30⌋ = 3 steps) and then decays to the end.
    #[test]
    fn a_short_run_reaches_its_peak_and_decays() {
        let cfg = OptimConfig::default();
        assert!(cfg.warmup_steps >= 30);
        let lrs: Vec<f64> = (0..30).map(|s| cfg.lr_at(s, 30)).collect();
        let peak = lrs.iter().position(|&lr| (lr - cfg.lr).abs() < 1e-15);
        assert_eq!(peak, Some(2), "{lrs:?}");
        assert!(lrs[..3].windows(2).all(|w| w[0] < w[1]), "{lrs:?}");
        assert!(lrs[3..].windows(2).all(|w| w[1] < w[0]), "{lrs:?}");
        assert!(lrs[29] < 0.1 * cfg.lr, "{lrs:?}");
        // Long runs keep the configured warm-up; tiny ones start at the peak.
        assert_eq!(cfg.effective_warmup(10_000), 100);
        assert_eq!(cfg.effective_warmup(9), 0);
        assert!((cfg.lr_at(0, 9) - cfg.lr).abs() < 1e-15);
    }
}
