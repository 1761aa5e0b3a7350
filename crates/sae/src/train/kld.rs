//! The contrastive KL term of Kang et al. 2025: keep each query's distribution of scores
//! over the batch's documents, computed on reconstructions, close to the original one.
//!
//! For queries `q_i` and the documents `d_j` of a group (each query's own positives or
//! neighbours; every other query's documents act as its negatives), `p_i = softmax(q_i·D/τ)`
//! on the original embeddings and `p̂_i` the same on reconstructions; the term is
//! `mean_i KL(p_i ‖ p̂_i)`. Its gradient with respect to the reconstructed scores is
//! `(p̂ − p)/Q`, pushed back to the reconstructed queries and documents by hand.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::data::Rng;
use crate::error::{Error, Result};

/// Settings of the KL term.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KldConfig {
    /// Weight λ of the KL term against the reconstruction MSE.
    pub coef: f32,
    /// Softmax temperature τ: raw dot products of normalised embeddings are too flat
    /// without one.
    pub temperature: f32,
    /// Queries per step.
    pub queries_per_batch: usize,
    /// Documents drawn per query (fewer if it has fewer).
    pub docs_per_query: usize,
}

impl Default for KldConfig {
    fn default() -> Self {
        KldConfig {
            coef: 1.0,
            temperature: 0.05,
            queries_per_batch: 32,
            docs_per_query: 16,
        }
    }
}

impl KldConfig {
    pub(crate) fn check(&self) -> Result<()> {
        let ok = self.coef >= 0.0
            && self.coef.is_finite()
            && self.temperature > 0.0
            && self.queries_per_batch > 0
            && self.docs_per_query > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidConfig(
                "KLD: coef ≥ 0, temperature > 0 and positive queries/documents per batch".into(),
            ))
        }
    }
}

/// Where a sampled group sits in the step's rows: queries `start..start+queries`, then
/// documents `start+queries..start+queries+docs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) start: usize,
    pub(crate) queries: usize,
    pub(crate) docs: usize,
}

/// Samples queries and their documents and appends their rows to `rows`.
pub(crate) fn sample_group(
    pairs: &[(usize, Vec<usize>)],
    cfg: &KldConfig,
    rng: &mut Rng,
    rows: &mut Vec<usize>,
) -> Group {
    let start = rows.len();
    let q = cfg.queries_per_batch.min(pairs.len());
    let mut chosen: Vec<usize> = (0..pairs.len()).collect();
    for i in 0..q {
        let j = i + rng.below(pairs.len() - i);
        chosen.swap(i, j);
    }
    chosen.truncate(q);
    rows.extend(chosen.iter().map(|&p| pairs[p].0));
    let mut docs = 0;
    for &p in &chosen {
        let mut list = pairs[p].1.clone();
        let take = cfg.docs_per_query.min(list.len());
        for i in 0..take {
            let j = i + rng.below(list.len() - i);
            list.swap(i, j);
        }
        rows.extend_from_slice(&list[..take]);
        docs += take;
    }
    Group {
        start,
        queries: q,
        docs,
    }
}

/// The KL value and its gradient with respect to all `rows` reconstructions `[rows, d]`.
///
/// `x` and `x_hat` are in the SAE's units, `input_scale` times the caller's; the scores
/// are the caller's dot products over τ (`x·x'/(c²τ)`), so τ keeps its meaning whatever the
/// input scale.
pub(crate) fn loss_and_grad(
    group: &Group,
    x: &Tensor<2>,
    x_hat: &Tensor<2>,
    cfg: &KldConfig,
    input_scale: f32,
    rows: usize,
    device: &Device,
) -> Result<(f64, Tensor<2>)> {
    let d = x.dims()[1];
    let (s, q, n) = (group.start, group.queries, group.docs);
    let tau = f64::from(cfg.temperature) * f64::from(input_scale).powi(2);
    let xq = x.clone().narrow(0, s, q);
    let xd = x.clone().narrow(0, s + q, n);
    let hq = x_hat.clone().narrow(0, s, q);
    let hd = x_hat.clone().narrow(0, s + q, n);
    let target = xq.matmul(xd.transpose()).div_scalar(tau);
    let scores = hq.clone().matmul(hd.clone().transpose()).div_scalar(tau);
    let p = softmax(target.clone(), 1);
    let kl = (p.clone() * (log_softmax(target, 1) - log_softmax(scores.clone(), 1))).sum();
    let value = super::read(kl)?.first().copied().unwrap_or(f32::NAN) as f64 / q as f64;
    let d_scores = (softmax(scores, 1) - p).div_scalar(q as f64);
    let scale = f64::from(cfg.coef) / tau;
    let g_q = d_scores.clone().matmul(hd).mul_scalar(scale);
    let g_d = d_scores.transpose().matmul(hq).mul_scalar(scale);
    let mut parts = Vec::with_capacity(4);
    if s > 0 {
        parts.push(Tensor::<2>::zeros([s, d], device));
    }
    parts.push(g_q);
    parts.push(g_d);
    let tail = rows - s - q - n;
    if tail > 0 {
        parts.push(Tensor::<2>::zeros([tail, d], device));
    }
    Ok((value, Tensor::cat(parts, 0)))
}

#[cfg(test)]
mod tests {
    //! The hand-written KL gradient against burn's autodiff on the same loss.
    use super::*;
    use crate::train::test_support::{close, host, random, tensor2};

    #[test]
    fn kl_gradient_equals_autodiff() {
        let dev = crate::train::Backend::default_cpu()
            .unwrap()
            .device()
            .unwrap();
        let ad = dev.clone().autodiff();
        // Rows: one before the group, 2 queries, 5 documents, one after.
        let (rows, d) = (9, 4);
        let group = Group {
            start: 1,
            queries: 2,
            docs: 5,
        };
        let cfg = KldConfig {
            coef: 0.7,
            temperature: 0.5,
            ..KldConfig::default()
        };
        let scale = 1.3f32;
        let (x_host, h_host) = (random(rows * d, 11), random(rows * d, 12));
        let x = tensor2(x_host.clone(), [rows, d], &dev);
        let h = tensor2(h_host.clone(), [rows, d], &dev);
        let (value, grad) = loss_and_grad(&group, &x, &h, &cfg, scale, rows, &dev).unwrap();

        let tau = f64::from(cfg.temperature) * f64::from(scale).powi(2);
        let xa = tensor2(x_host, [rows, d], &ad);
        let ha = tensor2(h_host, [rows, d], &ad).require_grad();
        let target = xa
            .clone()
            .narrow(0, 1, 2)
            .matmul(xa.narrow(0, 3, 5).transpose())
            .div_scalar(tau);
        let scores = ha
            .clone()
            .narrow(0, 1, 2)
            .matmul(ha.clone().narrow(0, 3, 5).transpose())
            .div_scalar(tau);
        let p = softmax(target.clone(), 1);
        let kl = (p * (log_softmax(target, 1) - log_softmax(scores, 1)))
            .sum()
            .div_scalar(2.0);
        let kl_value = f64::from(host(kl.clone())[0]);
        assert!(
            (value - kl_value).abs() <= 1e-5 * kl_value.abs().max(1.0),
            "{value} vs {kl_value}"
        );
        let grads = kl.mul_scalar(f64::from(cfg.coef)).backward();
        close(
            &host(grad),
            &host(ha.grad(&grads).unwrap()),
            "d KL / d x_hat",
        );
    }
}
