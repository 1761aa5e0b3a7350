//! The resume state on a burn device: the Adam moments as tensors.
//!
//! The host state and its file are in `crate::resume`, which needs no backend.

use burn::tensor::{Device, Tensor, TensorData};

use super::optim::Moments;
use crate::error::Result;
use crate::resume::TrainState;

/// Device moments of the four parameters.
pub(crate) struct DeviceMoments {
    pub(crate) w_enc: Moments<2>,
    pub(crate) b_enc: Moments<1>,
    pub(crate) w_dec: Moments<2>,
    pub(crate) b_dec: Moments<1>,
}

impl TrainState {
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
