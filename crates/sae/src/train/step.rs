//! One training step with analytic, sparsity-aware gradients.
//!
//! Forward: `pre = (x − b_dec)·W_encᵀ + b_enc` is the one dense GEMM. The code is sparse,
//! so decoding gathers the active rows of `W_dec` instead of multiplying by a dense
//! `[rows, m]` code, and every gradient below is a gather or a scatter-add over the
//! `rows × k` active entries. burn's autodiff would back-propagate a dense `[rows, m]`
//! gradient through the encoder GEMM (a second GEMM of the same size); the analytic form
//! avoids it. The tests below check these gradients against burn's autodiff.
//!
//! Parameters are kept on the device as `W_enc` rows (`[m, d]`, the transpose of the
//! checkpoint's `[d, m]`) so that a latent's encoder and decoder directions are both rows.
//!
//! [`upload`], [`decode`] and [`backward`] are the tensor form of the sparse passes; on
//! burn flex the trainer runs [`HostSparse`] instead, the same arithmetic over host memory
//! ([`Sparse`] chooses).

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use rayon::prelude::*;

use super::select::Pattern;

/// SAE parameters on a burn device.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    /// Encoder rows, `[m, d]`.
    pub(crate) w_enc: Tensor<2>,
    pub(crate) b_enc: Tensor<1>,
    /// Decoder rows, `[m, d]`, unit norm.
    pub(crate) w_dec: Tensor<2>,
    pub(crate) b_dec: Tensor<1>,
}

/// Gradients, in the shapes of [`Params`].
#[derive(Clone, Debug)]
pub(crate) struct Grads {
    pub(crate) w_enc: Tensor<2>,
    pub(crate) b_enc: Tensor<1>,
    pub(crate) w_dec: Tensor<2>,
    pub(crate) b_dec: Tensor<1>,
}

impl Grads {
    pub(crate) fn zeros(p: &Params) -> Self {
        Grads {
            w_enc: p.w_enc.zeros_like(),
            b_enc: p.b_enc.zeros_like(),
            w_dec: p.w_dec.zeros_like(),
            b_dec: p.b_dec.zeros_like(),
        }
    }

    /// Squared global L2 norm (one device read).
    pub(crate) fn norm_squared(&self) -> f64 {
        let total = self.w_enc.clone().square().sum()
            + self.b_enc.clone().square().sum()
            + self.w_dec.clone().square().sum()
            + self.b_dec.clone().square().sum();
        f64::from(total.into_scalar::<f32>())
    }

    pub(crate) fn scale(self, s: f64) -> Self {
        Grads {
            w_enc: self.w_enc.mul_scalar(s),
            b_enc: self.b_enc.mul_scalar(s),
            w_dec: self.w_dec.mul_scalar(s),
            b_dec: self.b_dec.mul_scalar(s),
        }
    }
}

/// A [`Pattern`] uploaded to the device, with the decoder rows it selects.
pub(crate) struct DevicePattern {
    rows: Tensor<1, Int>,
    latents: Tensor<1, Int>,
    /// `[n, 1]`
    values: Tensor<2>,
    /// `W_dec[latents]`, `[n, d]`
    dec_rows: Tensor<2>,
}

pub(crate) fn upload(p: &Pattern, params: &Params, device: &Device) -> Option<DevicePattern> {
    let n = p.len();
    if n == 0 {
        return None;
    }
    let rows = Tensor::<1, Int>::from_data(TensorData::new(p.rows.clone(), [n]), device);
    let latents = Tensor::<1, Int>::from_data(TensorData::new(p.latents.clone(), [n]), device);
    let values = Tensor::<2>::from_data(TensorData::new(p.values.clone(), [n, 1]), device);
    let dec_rows = params.w_dec.clone().select(0, latents.clone());
    Some(DevicePattern {
        rows,
        latents,
        values,
        dec_rows,
    })
}

/// `Σ_j v_j · W_dec[j]` per row, `[rows, d]`, without bias.
pub(crate) fn decode(p: &DevicePattern, rows: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::<2>::zeros([rows, d], device).select_assign(
        0,
        p.rows.clone(),
        p.dec_rows.clone() * p.values.clone(),
        IndexingUpdateOp::Add,
    )
}

/// `grads` plus the gradient of a loss whose gradient with respect to the pattern's
/// decoded output (`decode(p)`) is `g` (`[rows, d]`); `centred` is `x − b_dec`.
///
/// Takes `grads` by value so that each scatter-add writes into the one `[m, d]` buffer in
/// place (a shared tensor would be copied first).
pub(crate) fn backward(
    p: &DevicePattern,
    g: &Tensor<2>,
    centred: &Tensor<2>,
    params: &Params,
    grads: Grads,
) -> Grads {
    let Grads {
        w_enc,
        b_enc,
        w_dec,
        b_dec,
    } = grads;
    let n = p.values.dims()[0];
    let g_rows = g.clone().select(0, p.rows.clone());
    // ∂L/∂v_j = g_row · W_dec[j]; the selected values are positive, so ReLU passes it.
    let d_values = (p.dec_rows.clone() * g_rows.clone()).sum_dim(1);
    let w_dec = w_dec.select_assign(
        0,
        p.latents.clone(),
        g_rows * p.values.clone(),
        IndexingUpdateOp::Add,
    );
    let x_rows = centred.clone().select(0, p.rows.clone());
    let w_enc = w_enc.select_assign(
        0,
        p.latents.clone(),
        x_rows * d_values.clone(),
        IndexingUpdateOp::Add,
    );
    let b_enc = b_enc.select_assign(
        0,
        p.latents.clone(),
        d_values.clone().reshape([n]),
        IndexingUpdateOp::Add,
    );
    // b_dec enters the encoder through x − b_dec: ∂pre_j/∂b_dec = −W_enc[j].
    let enc_rows = params.w_enc.clone().select(0, p.latents.clone());
    let through_encoder = (enc_rows * d_values)
        .sum_dim(0)
        .reshape([centred.dims()[1]]);
    Grads {
        w_enc,
        b_enc,
        w_dec,
        b_dec: b_dec - through_encoder,
    }
}

/// The sparse passes of a step (decoding and the gathered/scattered gradients of
/// [`decode`] and [`backward`]) over host memory, for burn flex, whose tensors live there.
///
/// The tensor versions materialise a dozen `[n, d]` tensors per pattern (`n = rows × k`,
/// 32,768 × 384 floats = 50 MB each at the benchmark shape: gathered rows, their products,
/// their copies) and scatter-add them single-threaded. Here each gradient row is summed in
/// place, straight from the parameter rows, in parallel over independent outputs.
///
/// Bit for bit the tensor versions: every output element receives the same `f32` products
/// added in the same order (pattern order, starting from zero, as flex's `select_assign`
/// and first-dimension `sum_dim` add), and the one reduction whose order is flex's own
/// (the per-entry dot product `d_values`, a SIMD sum) is still done by flex's `sum_dim`
/// on the same products. The tests below check the agreement.
pub(crate) struct HostSparse {
    d: usize,
    /// `W_enc` and `W_dec` rows, moved out of [`Params`] until [`HostSparse::finish`].
    w_enc: Vec<f32>,
    w_dec: Vec<f32>,
    grad_w_enc: Vec<f32>,
    grad_w_dec: Vec<f32>,
    grad_b_enc: Vec<f32>,
}

/// Pattern entries per parallel task when a pass runs over entries.
const ENTRY_CHUNK: usize = 256;

impl HostSparse {
    /// Moves `W_enc` and `W_dec` out of `params` (flex reads uniquely owned tensors without
    /// a copy) and starts zero gradients for them and `b_enc`.
    pub(crate) fn take(params: &mut Params) -> crate::error::Result<Self> {
        use super::{read, take};
        let [m, d] = params.w_dec.dims();
        Ok(HostSparse {
            d,
            w_enc: read(take(&mut params.w_enc))?,
            w_dec: read(take(&mut params.w_dec))?,
            grad_w_enc: vec![0.0; m * d],
            grad_w_dec: vec![0.0; m * d],
            grad_b_enc: vec![0.0; m],
        })
    }

    /// [`decode`]: `Σ_j v_j · W_dec[j]` per row, `[rows, d]` row-major.
    pub(crate) fn decode(&self, p: &Pattern, rows: usize) -> Vec<f32> {
        let d = self.d;
        let mut out = vec![0.0f32; rows * d];
        let spans = row_spans(&p.rows, rows);
        out.par_chunks_mut(d)
            .zip(spans.par_iter())
            .for_each(|(acc, &(start, end))| {
                for e in start..end {
                    let v = p.values[e];
                    let w = self.row(&self.w_dec, p.latents[e]);
                    acc.iter_mut().zip(w).for_each(|(a, &w)| *a += w * v);
                }
            });
        out
    }

    /// [`backward`] for one pattern: adds its gradients of `W_enc`, `W_dec` and `b_enc`
    /// and returns `∂L/∂b_dec` through the encoder (`Σ_e W_enc[j_e]·∂L/∂v_e`, length
    /// `d`), which the caller subtracts as [`backward`] does. `g` and `centred` are
    /// `[rows, d]` row-major.
    pub(crate) fn backward(
        &mut self,
        p: &Pattern,
        g: &[f32],
        centred: &[f32],
        device: &Device,
    ) -> crate::error::Result<Vec<f32>> {
        let d = self.d;
        let n = p.len();
        // The range of batch row `r` in a `[rows, d]` buffer.
        let row = |r: i64| r as usize * d..(r as usize + 1) * d;
        // ∂L/∂v_e = g[r_e] · W_dec[j_e]: the products here, their sum by flex's `sum_dim`
        // (a SIMD reduction whose order is flex's), as in `backward`.
        let mut products = vec![0.0f32; n * d];
        products
            .par_chunks_mut(d * ENTRY_CHUNK)
            .enumerate()
            .for_each(|(c, out)| {
                for (i, out) in out.chunks_mut(d).enumerate() {
                    let e = c * ENTRY_CHUNK + i;
                    let w = self.row(&self.w_dec, p.latents[e]);
                    let g = &g[row(p.rows[e])];
                    out.iter_mut()
                        .zip(w.iter().zip(g))
                        .for_each(|(o, (&w, &g))| *o = w * g);
                }
            });
        let d_values = super::read(
            Tensor::<2>::from_data(TensorData::new(products, [n, d]), device).sum_dim(1),
        )?;
        // The scatter-adds into rows of W_dec, W_enc and b_enc: each latent's row receives
        // its entries in pattern order, so the latents are split among tasks instead.
        let by_latent = entries_by_latent(&p.latents, self.grad_b_enc.len());
        let values = &p.values;
        self.grad_w_dec
            .par_chunks_mut(d)
            .zip(self.grad_w_enc.par_chunks_mut(d))
            .zip(self.grad_b_enc.par_iter_mut())
            .enumerate()
            .filter(|(j, _)| by_latent.starts[*j] < by_latent.starts[*j + 1])
            .for_each(|(j, ((gw_dec, gw_enc), gb_enc))| {
                for &e in &by_latent.entries[by_latent.starts[j]..by_latent.starts[j + 1]] {
                    let (v, dv) = (values[e], d_values[e]);
                    let g = &g[row(p.rows[e])];
                    gw_dec.iter_mut().zip(g).for_each(|(a, &g)| *a += g * v);
                    let x = &centred[row(p.rows[e])];
                    gw_enc.iter_mut().zip(x).for_each(|(a, &x)| *a += x * dv);
                    *gb_enc += dv;
                }
            });
        // Σ_e W_enc[j_e]·∂L/∂v_e, each column summed in pattern order from zero (flex's
        // first-dimension `sum_dim`); columns are independent, so they are split.
        const COLUMNS: usize = 64;
        let mut through = vec![0.0f32; d];
        through
            .par_chunks_mut(COLUMNS)
            .enumerate()
            .for_each(|(c, acc)| {
                let lo = c * COLUMNS;
                for (&j, &dv) in p.latents.iter().zip(&d_values) {
                    let w = &self.row(&self.w_enc, j)[lo..lo + acc.len()];
                    acc.iter_mut().zip(w).for_each(|(a, &w)| *a += w * dv);
                }
            });
        Ok(through)
    }

    /// Puts `W_enc` and `W_dec` back into `params`; the gradients, with `b_dec`'s.
    pub(crate) fn finish(self, params: &mut Params, b_dec: Tensor<1>, device: &Device) -> Grads {
        let d = self.d;
        let m = self.grad_b_enc.len();
        let two = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [m, d]), device);
        params.w_enc = two(self.w_enc);
        params.w_dec = two(self.w_dec);
        Grads {
            w_enc: two(self.grad_w_enc),
            b_enc: Tensor::<1>::from_data(TensorData::new(self.grad_b_enc, [m]), device),
            w_dec: two(self.grad_w_dec),
            b_dec,
        }
    }

    fn row<'a>(&self, w: &'a [f32], j: i64) -> &'a [f32] {
        let j = j as usize;
        &w[j * self.d..(j + 1) * self.d]
    }
}

/// Where a step's sparse passes run: as tensor ops on the device, or over host memory.
// One value per step and pattern: the variants' size difference costs nothing, a box would.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Sparse {
    /// Tensor ops ([`upload`], [`decode`], [`backward`]), adding into these gradients.
    Device(Grads),
    /// [`HostSparse`] (burn flex), with the centred batch on the host and `b_dec`'s
    /// gradient.
    Host {
        passes: HostSparse,
        centred: Vec<f32>,
        b_dec: Option<Tensor<1>>,
    },
}

/// A pattern ready for [`Sparse::backward`]: on the device, its upload is reused.
#[allow(clippy::large_enum_variant)] // as for `Sparse`
pub(crate) enum Ready<'a> {
    Device(Option<DevicePattern>),
    Host(&'a Pattern),
}

impl Sparse {
    /// Host passes when `host` (the parameters' `W_enc` and `W_dec` move to them until
    /// [`Sparse::finish`]), tensor ops otherwise.
    pub(crate) fn new(
        host: bool,
        params: &mut Params,
        centred: &Tensor<2>,
    ) -> crate::error::Result<Self> {
        Ok(if host {
            Sparse::Host {
                passes: HostSparse::take(params)?,
                centred: super::read(centred.clone())?,
                b_dec: None,
            }
        } else {
            Sparse::Device(Grads::zeros(params))
        })
    }

    /// The decoded pattern without bias, `[rows, d]`, and the pattern for the backward
    /// pass. An empty pattern decodes to zeros.
    pub(crate) fn decode<'a>(
        &self,
        p: &'a Pattern,
        params: &Params,
        rows: usize,
        device: &Device,
    ) -> (Tensor<2>, Ready<'a>) {
        match self {
            Sparse::Host { passes, .. } => {
                let out = passes.decode(p, rows);
                let decoded = Tensor::from_data(TensorData::new(out, [rows, passes.d]), device);
                (decoded, Ready::Host(p))
            }
            Sparse::Device(_) => {
                let d = params.b_dec.dims()[0];
                let dp = upload(p, params, device);
                let decoded = match &dp {
                    Some(dp) => decode(dp, rows, d, device),
                    None => Tensor::<2>::zeros([rows, d], device),
                };
                (decoded, Ready::Device(dp))
            }
        }
    }

    /// Sets `b_dec`'s gradient before the patterns add theirs.
    pub(crate) fn set_b_dec(&mut self, grad: Tensor<1>) {
        match self {
            Sparse::Host { b_dec, .. } => *b_dec = Some(grad),
            Sparse::Device(grads) => grads.b_dec = grad,
        }
    }

    /// Adds the gradients of a pattern whose decoded output has gradient `g` ([`backward`]).
    pub(crate) fn backward(
        self,
        ready: Ready<'_>,
        g: &Tensor<2>,
        centred: &Tensor<2>,
        params: &Params,
        device: &Device,
    ) -> crate::error::Result<Self> {
        Ok(match (self, ready) {
            (Sparse::Device(grads), Ready::Device(Some(dp))) => {
                Sparse::Device(backward(&dp, g, centred, params, grads))
            }
            (
                Sparse::Host {
                    mut passes,
                    centred: host_centred,
                    b_dec,
                },
                Ready::Host(p),
            ) if p.len() > 0 => {
                let through =
                    passes.backward(p, &super::read(g.clone())?, &host_centred, device)?;
                let d = through.len();
                let through = Tensor::<1>::from_data(TensorData::new(through, [d]), device);
                Sparse::Host {
                    passes,
                    centred: host_centred,
                    b_dec: b_dec.map(|b| b - through),
                }
            }
            // An empty pattern adds nothing.
            (sparse, _) => sparse,
        })
    }

    /// The gradients; host passes give `W_enc` and `W_dec` back to `params`.
    pub(crate) fn finish(self, params: &mut Params, device: &Device) -> Grads {
        match self {
            Sparse::Device(grads) => grads,
            Sparse::Host { passes, b_dec, .. } => {
                let b_dec = b_dec.unwrap_or_else(|| params.b_dec.zeros_like());
                passes.finish(params, b_dec, device)
            }
        }
    }
}

/// For each of `rows` rows, the range of pattern entries that belong to it. The patterns
/// of `select.rs` list rows in ascending order, so each row's entries are contiguous.
fn row_spans(pattern_rows: &[i64], rows: usize) -> Vec<(usize, usize)> {
    debug_assert!(pattern_rows.is_sorted(), "pattern rows are ascending");
    let mut spans = Vec::with_capacity(rows);
    let mut start = 0;
    for r in 0..rows as i64 {
        let end = start + pattern_rows[start..].partition_point(|&x| x <= r);
        spans.push((start, end));
        start = end;
    }
    spans
}

/// Pattern entries grouped by latent, each group in pattern order (a counting sort).
struct EntriesByLatent {
    /// Latent `j`'s entries are `entries[starts[j]..starts[j + 1]]`.
    starts: Vec<usize>,
    entries: Vec<usize>,
}

fn entries_by_latent(latents: &[i64], m: usize) -> EntriesByLatent {
    let mut starts = vec![0usize; m + 1];
    for &j in latents {
        starts[j as usize + 1] += 1;
    }
    for j in 0..m {
        starts[j + 1] += starts[j];
    }
    let mut next = starts.clone();
    let mut entries = vec![0usize; latents.len()];
    for (e, &j) in latents.iter().enumerate() {
        entries[next[j as usize]] = e;
        next[j as usize] += 1;
    }
    EntriesByLatent { starts, entries }
}

/// Pre-activations `(x − b_dec)·W_encᵀ + b_enc` and the centred input.
pub(crate) fn pre_activations(params: &Params, x: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let centred = x.clone() - params.b_dec.clone().unsqueeze_dim(0);
    let pre = centred.clone().matmul(params.w_enc.clone().transpose())
        + params.b_enc.clone().unsqueeze_dim(0);
    (pre, centred)
}

/// Removes from each decoder-row gradient its component along the (unit) row, so a step
/// moves the row along the sphere it is renormalised to.
pub(crate) fn project_decoder_grad(w_dec: &Tensor<2>, g: Tensor<2>) -> Tensor<2> {
    let along = (g.clone() * w_dec.clone()).sum_dim(1);
    g - w_dec.clone() * along
}

/// Rows scaled to unit L2 norm (zero rows stay zero).
pub(crate) fn unit_rows(w: Tensor<2>) -> Tensor<2> {
    let norm = w.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    w / norm
}

#[cfg(test)]
mod tests {
    //! The analytic gradients against burn's autodiff on the same loss.
    use super::*;
    use crate::train::select;
    use crate::train::test_support::{close, host, random, tensor1, tensor2};

    #[test]
    fn analytic_gradients_equal_autodiff() {
        let dev = crate::train::Backend::default_cpu()
            .unwrap()
            .device()
            .unwrap();
        let ad = dev.clone().autodiff();
        let (r, d, m, k) = (6, 5, 12, 3);
        let (we, be, wd, bd) = (
            random(m * d, 1),
            random(m, 2),
            random(m * d, 3),
            random(d, 4),
        );
        let x_host = random(r * d, 5);
        let params = Params {
            w_enc: tensor2(we.clone(), [m, d], &dev),
            b_enc: tensor1(be.clone(), m, &dev),
            w_dec: tensor2(wd.clone(), [m, d], &dev),
            b_dec: tensor1(bd.clone(), d, &dev),
        };
        let x = tensor2(x_host.clone(), [r, d], &dev);
        let (pre, centred) = pre_activations(&params, &x);
        let pre_host = host(pre);
        let dead: Vec<bool> = (0..m).map(|j| j % 3 == 0).collect();
        let (main, aux) = select::top_k(&pre_host, m, k, Some((&dead, 2)));
        assert!(aux.len() > 0);

        // Analytic: L = Σ‖x̂ − x‖²/r + c·Σ‖ê − res‖² with res = x − x̂ held constant.
        let c = 0.3f64;
        let dp = upload(&main, &params, &dev).unwrap();
        let x_hat = decode(&dp, r, d, &dev) + params.b_dec.clone().unsqueeze_dim(0);
        let g = (x_hat.clone() - x.clone()).mul_scalar(2.0 / r as f64);
        let mut grads = Grads::zeros(&params);
        grads.b_dec = g.clone().sum_dim(0).reshape([d]);
        grads = backward(&dp, &g, &centred, &params, grads);
        let ap = upload(&aux, &params, &dev).unwrap();
        let residual = x.clone() - x_hat;
        let e_hat = decode(&ap, r, d, &dev);
        let g_aux = (e_hat - residual.clone()).mul_scalar(2.0 * c);
        grads = backward(&ap, &g_aux, &centred, &params, grads);

        // Autodiff on the same loss, with the selections as constant masks.
        let mask = |p: &select::Pattern| {
            let mut v = vec![0f32; r * m];
            for (&row, &j) in p.rows.iter().zip(&p.latents) {
                v[row as usize * m + j as usize] = 1.0;
            }
            tensor2(v, [r, m], &ad)
        };
        let w_enc = tensor2(we, [m, d], &ad).require_grad();
        let b_enc = tensor1(be, m, &ad).require_grad();
        let w_dec = tensor2(wd, [m, d], &ad).require_grad();
        let b_dec = tensor1(bd, d, &ad).require_grad();
        let xa = tensor2(x_host, [r, d], &ad);
        let pre = (xa.clone() - b_dec.clone().unsqueeze_dim(0)).matmul(w_enc.clone().transpose())
            + b_enc.clone().unsqueeze_dim(0);
        let code = pre.clone() * mask(&main);
        let xa_hat = code.matmul(w_dec.clone()) + b_dec.clone().unsqueeze_dim(0);
        let mse = (xa_hat - xa.clone()).square().sum().div_scalar(r as f64);
        let res = tensor2(host(residual), [r, d], &ad);
        let aux_code = pre * mask(&aux);
        let aux_loss = (aux_code.matmul(w_dec.clone()) - res)
            .square()
            .sum()
            .mul_scalar(c);
        let all = (mse + aux_loss).backward();
        close(
            &host(grads.w_enc),
            &host(w_enc.grad(&all).unwrap()),
            "w_enc",
        );
        close(
            &host(grads.b_enc),
            &host(b_enc.grad(&all).unwrap()),
            "b_enc",
        );
        close(
            &host(grads.w_dec),
            &host(w_dec.grad(&all).unwrap()),
            "w_dec",
        );
        close(
            &host(grads.b_dec),
            &host(b_dec.grad(&all).unwrap()),
            "b_dec",
        );
    }

    /// The host passes give the tensor ops' gradients bit for bit, for a main and an AuxK
    /// pattern added in turn, with latents that fire in several rows and rows with ties.
    #[test]
    fn host_sparse_passes_equal_the_tensor_ops_bit_for_bit() {
        let dev = crate::train::Backend::default_cpu()
            .unwrap()
            .device()
            .unwrap();
        let (r, d, m, k) = (37, 21, 50, 6);
        let params = || Params {
            w_enc: tensor2(random(m * d, 1), [m, d], &dev),
            b_enc: tensor1(random(m, 2), m, &dev),
            w_dec: unit_rows(tensor2(random(m * d, 3), [m, d], &dev)),
            b_dec: tensor1(random(d, 4), d, &dev),
        };
        let x = tensor2(random(r * d, 5), [r, d], &dev);
        let (pre, centred) = pre_activations(&params(), &x);
        let mut pre_host = host(pre);
        // Ties: a few rows repeat the same values.
        let first: Vec<f32> = pre_host[..m].to_vec();
        pre_host[m..2 * m].copy_from_slice(&first);
        let dead: Vec<bool> = (0..m).map(|j| j % 4 == 1).collect();
        let (main, aux) = select::top_k(&pre_host, m, k, Some((&dead, 3)));
        assert!(main.len() > 0 && aux.len() > 0);
        let g_main = tensor2(random(r * d, 6), [r, d], &dev);
        let g_aux = tensor2(random(r * d, 7), [r, d], &dev);
        let b_dec_grad = tensor1(random(d, 8), d, &dev);

        let run = |host_passes: bool| {
            let mut p = params();
            let mut sparse = Sparse::new(host_passes, &mut p, &centred).unwrap();
            let (decoded, ready) = sparse.decode(&main, &p, r, &dev);
            sparse.set_b_dec(b_dec_grad.clone());
            sparse = sparse.backward(ready, &g_main, &centred, &p, &dev).unwrap();
            let (aux_decoded, ready) = sparse.decode(&aux, &p, r, &dev);
            sparse = sparse.backward(ready, &g_aux, &centred, &p, &dev).unwrap();
            let grads = sparse.finish(&mut p, &dev);
            let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (
                bits(host(decoded)),
                bits(host(aux_decoded)),
                bits(host(grads.w_enc)),
                bits(host(grads.b_enc)),
                bits(host(grads.w_dec)),
                bits(host(grads.b_dec)),
                bits(host(p.w_enc)),
                bits(host(p.w_dec)),
            )
        };
        assert!(
            run(true) == run(false),
            "host passes differ from the tensor ops"
        );
    }

    #[test]
    fn decoder_projection_is_orthogonal_and_rows_unit() {
        let dev = crate::train::Backend::default_cpu()
            .unwrap()
            .device()
            .unwrap();
        let w = unit_rows(tensor2(random(4 * 3, 9), [4, 3], &dev));
        let norms = host(w.clone().square().sum_dim(1));
        norms.iter().for_each(|n| assert!((n - 1.0).abs() < 1e-5));
        let g = project_decoder_grad(&w, tensor2(random(12, 10), [4, 3], &dev));
        host((g * w).sum_dim(1))
            .iter()
            .for_each(|v| assert!(v.abs() < 1e-6));
    }
}
