//! The resume state: optimiser moments, step, dead-latent counters, threshold estimate.
//!
//! Saved beside the checkpoint as `<stem>.state.safetensors`: tensors `{w_enc,b_enc,
//! w_dec,b_dec}.{m,v}` (in the trainer's device layout: encoder as `[d_sae, d_in]` rows)
//! and `since_fired` (`[d_sae]`, as F32), with `__metadata__` holding `step`, the
//! threshold accumulators and a CRC-32 of the tensor bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};

use super::optim::Moments;
use crate::error::{Error, Result};
use crate::weights::{SaeWeights, bytes_f32, f32_bytes, write_atomic};

/// Host copy of the optimiser and bookkeeping state of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Steps done.
    pub step: u64,
    /// Steps since each latent last fired.
    pub since_fired: Vec<u32>,
    threshold_sum: f64,
    threshold_count: u64,
    /// Host Adam moments in `NAMES` order, `(m, v)`; empty when fresh.
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    shapes: Vec<Vec<usize>>,
}

const NAMES: [&str; 4] = ["w_enc", "b_enc", "w_dec", "b_dec"];

/// Device moments of the four parameters.
pub(crate) struct DeviceMoments {
    pub(crate) w_enc: Moments<2>,
    pub(crate) b_enc: Moments<1>,
    pub(crate) w_dec: Moments<2>,
    pub(crate) b_dec: Moments<1>,
}

/// `<dir>/<stem>.state.safetensors` beside a checkpoint.
pub(crate) fn state_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}.state.safetensors"))
}

impl TrainState {
    pub(crate) fn fresh(w: &SaeWeights) -> Self {
        let (d, m) = (w.config.d_in, w.config.d_sae);
        TrainState {
            step: 0,
            since_fired: vec![0; m],
            threshold_sum: 0.0,
            threshold_count: 0,
            moments: Vec::new(),
            shapes: vec![vec![m, d], vec![m], vec![m, d], vec![d]],
        }
    }

    /// Estimated inference threshold: the mean over steps of each batch's smallest kept
    /// activation (BatchTopK), `None` before any.
    pub fn threshold(&self) -> Option<f32> {
        (self.threshold_count > 0)
            .then(|| (self.threshold_sum / self.threshold_count as f64) as f32)
    }

    pub(crate) fn observe_threshold(&mut self, cut: f32) {
        self.threshold_sum += f64::from(cut);
        self.threshold_count += 1;
    }

    pub(crate) fn dead_mask(&self, after: u32) -> Vec<bool> {
        self.since_fired.iter().map(|&s| s >= after).collect()
    }

    pub(crate) fn mark_fired(&mut self, latents: &[i64]) {
        self.since_fired
            .iter_mut()
            .for_each(|s| *s = s.saturating_add(1));
        for &j in latents {
            self.since_fired[j as usize] = 0;
        }
    }

    pub(crate) fn moments_on(&self, dev: &Device) -> DeviceMoments {
        let s = &self.shapes;
        let two = |i: usize| -> Moments<2> {
            match self.moments.get(i) {
                Some((m, v)) => Moments {
                    m: Tensor::from_data(TensorData::new(m.clone(), [s[i][0], s[i][1]]), dev),
                    v: Tensor::from_data(TensorData::new(v.clone(), [s[i][0], s[i][1]]), dev),
                },
                None => Moments::zeros_like(&Tensor::<2>::zeros([s[i][0], s[i][1]], dev)),
            }
        };
        let one = |i: usize| -> Moments<1> {
            match self.moments.get(i) {
                Some((m, v)) => Moments {
                    m: Tensor::from_data(TensorData::new(m.clone(), [s[i][0]]), dev),
                    v: Tensor::from_data(TensorData::new(v.clone(), [s[i][0]]), dev),
                },
                None => Moments::zeros_like(&Tensor::<1>::zeros([s[i][0]], dev)),
            }
        };
        DeviceMoments {
            w_enc: two(0),
            b_enc: one(1),
            w_dec: two(2),
            b_dec: one(3),
        }
    }

    pub(crate) fn sync_moments(&mut self, dm: &DeviceMoments) -> Result<()> {
        use super::read;
        self.moments = vec![
            (read(dm.w_enc.m.clone())?, read(dm.w_enc.v.clone())?),
            (read(dm.b_enc.m.clone())?, read(dm.b_enc.v.clone())?),
            (read(dm.w_dec.m.clone())?, read(dm.w_dec.v.clone())?),
            (read(dm.b_dec.m.clone())?, read(dm.b_dec.v.clone())?),
        ];
        Ok(())
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for ((name, (m, v)), shape) in NAMES.iter().zip(&self.moments).zip(&self.shapes) {
            blobs.push((format!("{name}.m"), shape.clone(), f32_bytes(m)));
            blobs.push((format!("{name}.v"), shape.clone(), f32_bytes(v)));
        }
        let since: Vec<f32> = self.since_fired.iter().map(|&s| s as f32).collect();
        blobs.push(("since_fired".into(), vec![since.len()], f32_bytes(&since)));
        let mut crc = crc32fast::Hasher::new();
        let mut views = Vec::new();
        for (name, shape, bytes) in &blobs {
            crc.update(bytes);
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| Error::checkpoint(path, e.to_string()))?;
            views.push((name.clone(), view));
        }
        let meta = HashMap::from([
            ("step".to_string(), self.step.to_string()),
            ("threshold_sum".to_string(), self.threshold_sum.to_string()),
            (
                "threshold_count".to_string(),
                self.threshold_count.to_string(),
            ),
            ("crc32".to_string(), format!("{:08x}", crc.finalize())),
        ]);
        let bytes = safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::checkpoint(path, e.to_string()))?;
        write_atomic(path, &bytes)
    }

    pub(crate) fn load(path: &Path, w: &SaeWeights) -> Result<Self> {
        let bad = |r: String| Error::checkpoint(path, r);
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let num = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("no {k} in metadata")))
        };
        let t = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut fresh = Self::fresh(w);
        let mut crc = crc32fast::Hasher::new();
        let mut get = |name: String, shape: &[usize]| -> Result<Vec<f32>> {
            let v = t.tensor(&name).map_err(|e| bad(format!("{name}: {e}")))?;
            if v.dtype() != Dtype::F32 || v.shape() != shape {
                return Err(bad(format!("{name} has the wrong type or shape")));
            }
            crc.update(v.data());
            Ok(bytes_f32(v.data()))
        };
        let mut moments = Vec::new();
        for (name, shape) in NAMES.iter().zip(fresh.shapes.clone()) {
            moments.push((
                get(format!("{name}.m"), &shape)?,
                get(format!("{name}.v"), &shape)?,
            ));
        }
        let since = get("since_fired".into(), &[w.config.d_sae])?;
        if format!("{:08x}", crc.finalize()) != num("crc32")? {
            return Err(bad("checksum mismatch".into()));
        }
        let parse_err = |k: &str| bad(format!("{k} is not a number"));
        fresh.step = num("step")?.parse().map_err(|_| parse_err("step"))?;
        fresh.threshold_sum = num("threshold_sum")?
            .parse()
            .map_err(|_| parse_err("threshold_sum"))?;
        fresh.threshold_count = num("threshold_count")?
            .parse()
            .map_err(|_| parse_err("threshold_count"))?;
        fresh.since_fired = since.into_iter().map(|s| s as u32).collect();
        fresh.moments = moments;
        Ok(fresh)
    }
}
