//! The resume state in the trainer: bookkeeping during a run, its file, and the Adam moments
//! as device tensors.
//!
//! The state itself and its bytes are in `crate::resume`, which needs no backend.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use super::optim::Moments;
use crate::error::{Error, Result};
use crate::resume::TrainState;
use crate::weights::{SaeWeights, write_atomic};

/// Device moments of the four parameters.
pub(crate) struct DeviceMoments {
    pub(crate) w_enc: Moments<2>,
    pub(crate) b_enc: Moments<1>,
    pub(crate) w_dec: Moments<2>,
    pub(crate) b_dec: Moments<1>,
}

/// The resume state written beside a checkpoint: `<dir>/<stem>.state.safetensors`.
pub fn state_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}.state.safetensors"))
}

impl TrainState {
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

    pub(crate) fn save(&self, path: &Path, weights: &SaeWeights) -> Result<()> {
        let bytes = self
            .to_bytes(weights)
            .map_err(|r| Error::checkpoint(path, r))?;
        write_atomic(path, &bytes)
    }

    pub(crate) fn load(path: &Path, w: &SaeWeights) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let state = Self::from_bytes(&bytes, w).map_err(|r| Error::checkpoint(path, r))?;
        state
            .check_paired(w)
            .map_err(|r| Error::checkpoint(path, r))?;
        Ok(state)
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
}
