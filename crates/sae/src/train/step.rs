//! One training step with analytic, sparsity-aware gradients.
//!
//! Forward: `pre = (x − b_dec)·W_encᵀ + b_enc` is the one dense GEMM. The code is sparse,
//! so decoding gathers the active rows of `W_dec` instead of multiplying by a dense
//! `[rows, m]` code, and every gradient below is a gather or a scatter-add over the
//! `rows × k` active entries. burn's autodiff would back-propagate a dense `[rows, m]`
//! gradient through the encoder GEMM (a second GEMM of the same size); the analytic form
//! avoids it. `tests/gradients.rs` checks these gradients against burn's autodiff.
//!
//! Parameters are kept on the device as `W_enc` rows (`[m, d]`, the transpose of the
//! checkpoint's `[d, m]`) so that a latent's encoder and decoder directions are both rows.

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

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
