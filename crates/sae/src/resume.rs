//! The resume state of a training run: optimiser moments, step, dead-latent counters and
//! the threshold estimate, as host vectors and as a file.
//!
//! Saved beside the checkpoint as `<stem>.state.safetensors`: tensors `{w_enc,b_enc,
//! w_dec,b_dec}.{m,v}` (in the trainer's device layout: encoder as `[d_sae, d_in]` rows)
//! and `since_fired` (`[d_sae]`, as F32), with `__metadata__` holding `format`
//! (`latent-terms-sae-state/2`), `step`, the threshold accumulators, `weights` (the content
//! checksum of the checkpoint saved with it, [`SaeWeights::content_crc`]) and a CRC-32 that
//! seals the tensors and all of that metadata (`crate::seal`).
//!
//! Checkpoint and state are two files renamed one after the other, so a crash between the
//! renames could pair new weights with an old state; `weights` catches that on resume.
//!
//! Burn-free, so the loader can be fuzzed without building a backend.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};

use crate::seal;
use crate::weights::{SaeWeights, bytes_f32, f32_bytes};

/// The state format: sealed metadata and the checkpoint's content checksum.
const FORMAT: &str = "latent-terms-sae-state/2";

/// Host copy of the optimiser and bookkeeping state of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Steps done.
    pub step: u64,
    /// Steps since each latent last fired.
    pub since_fired: Vec<u32>,
    pub(crate) threshold_sum: f64,
    pub(crate) threshold_count: u64,
    /// Host Adam moments in `NAMES` order, `(m, v)`; empty when fresh.
    pub(crate) moments: Vec<(Vec<f32>, Vec<f32>)>,
    pub(crate) shapes: Vec<Vec<usize>>,
    /// The content checksum of the weights this state was saved with; `None` when fresh.
    pub(crate) saved_with: Option<String>,
}

pub(crate) const NAMES: [&str; 4] = ["w_enc", "b_enc", "w_dec", "b_dec"];

impl TrainState {
    /// The state of a run that has not started, for the shapes of `w`.
    pub fn fresh(w: &SaeWeights) -> Self {
        let (d, m) = (w.config.d_in, w.config.d_sae);
        TrainState {
            step: 0,
            since_fired: vec![0; m],
            threshold_sum: 0.0,
            threshold_count: 0,
            moments: Vec::new(),
            shapes: vec![vec![m, d], vec![m], vec![m, d], vec![d]],
            saved_with: None,
        }
    }

    /// Estimated inference threshold: the mean over the steps after warm-up of each batch's
    /// smallest kept activation (BatchTopK), `None` before any.
    pub fn threshold(&self) -> Option<f32> {
        (self.threshold_count > 0)
            .then(|| (self.threshold_sum / self.threshold_count as f64) as f32)
    }

    /// The state file's bytes, to be saved beside the checkpoint of `weights`.
    pub fn to_bytes(&self, weights: &SaeWeights) -> std::result::Result<Vec<u8>, String> {
        let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for ((name, (m, v)), shape) in NAMES.iter().zip(&self.moments).zip(&self.shapes) {
            blobs.push((format!("{name}.m"), shape.clone(), f32_bytes(m)));
            blobs.push((format!("{name}.v"), shape.clone(), f32_bytes(v)));
        }
        let since: Vec<f32> = self.since_fired.iter().map(|&s| s as f32).collect();
        blobs.push(("since_fired".into(), vec![since.len()], f32_bytes(&since)));
        let mut views = Vec::new();
        for (name, shape, bytes) in &blobs {
            let view =
                TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| e.to_string())?;
            views.push((name.clone(), view));
        }
        let mut meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("weights".to_string(), weights.content_crc()),
            ("step".to_string(), self.step.to_string()),
            ("threshold_sum".to_string(), self.threshold_sum.to_string()),
            (
                "threshold_count".to_string(),
                self.threshold_count.to_string(),
            ),
        ]);
        let sealed = seal::seal(blobs.iter().map(|(_, _, b)| b.as_slice()), &meta);
        meta.insert(seal::CRC_KEY.to_string(), sealed);
        safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())
    }

    /// Parses a state file for the SAE whose weights are `w`; the reason on failure.
    ///
    /// The moments must be all present or all absent (a run saved before its first step).
    /// Whether the state belongs to `w`'s exact weights is checked by
    /// [`TrainState::check_paired`], not here: `w` only gives the shapes.
    pub fn from_bytes(bytes: &[u8], w: &SaeWeights) -> std::result::Result<Self, String> {
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let meta = header.metadata().clone().unwrap_or_default();
        match meta.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            None => {
                return Err(
                    "a resume state from an older version (no format tag): it cannot \
                            be checked against its checkpoint; train again without --resume"
                        .into(),
                );
            }
            Some(other) => return Err(format!("unknown resume-state format {other:?}")),
        }
        let num = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| format!("no {k} in metadata"))
        };
        let t = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let mut fresh = Self::fresh(w);
        let mut sealed: Vec<&[u8]> = Vec::new();
        let mut get = |name: &str, shape: &[usize]| -> std::result::Result<Vec<f32>, String> {
            let v = t.tensor(name).map_err(|e| format!("{name}: {e}"))?;
            if v.dtype() != Dtype::F32 || v.shape() != shape {
                return Err(format!("{name} has the wrong type or shape"));
            }
            sealed.push(v.data());
            Ok(bytes_f32(v.data()))
        };
        let mut moments = Vec::new();
        if t.names()
            .iter()
            .any(|n| n.ends_with(".m") || n.ends_with(".v"))
        {
            for (name, shape) in NAMES.iter().zip(fresh.shapes.clone()) {
                moments.push((
                    get(&format!("{name}.m"), &shape)?,
                    get(&format!("{name}.v"), &shape)?,
                ));
            }
        }
        let since = get("since_fired", &[w.config.d_sae])?;
        seal::check(sealed, &meta)?;
        fresh.saved_with = Some(num("weights")?);
        let parse_err = |k: &str| format!("{k} is not a number");
        fresh.step = num("step")?.parse().map_err(|_| parse_err("step"))?;
        fresh.threshold_sum = num("threshold_sum")?
            .parse()
            .map_err(|_| parse_err("threshold_sum"))?;
        fresh.threshold_count = num("threshold_count")?
            .parse()
            .map_err(|_| parse_err("threshold_count"))?;
        if since.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err("since_fired holds a negative or non-finite count".into());
        }
        fresh.since_fired = since.into_iter().map(|s| s as u32).collect();
        fresh.moments = moments;
        Ok(fresh)
    }

    /// Checks that this state was saved with exactly the weights `w` (the checkpoint
    /// beside it); the reason on failure.
    pub fn check_paired(&self, w: &SaeWeights) -> std::result::Result<(), String> {
        match &self.saved_with {
            Some(id) if *id == w.content_crc() => Ok(()),
            Some(id) => Err(format!(
                "the resume state was saved with other weights (checksum {id}, the checkpoint's is \
                 {}): checkpoint and state do not belong together (a crash between their writes?); \
                 resume from a matching pair or train again without --resume",
                w.content_crc()
            )),
            None => Err("the resume state names no checkpoint".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SaeConfig, SaeKind};

    fn weights() -> SaeWeights {
        let config = SaeConfig::new(SaeKind::BatchTopK, 3, 4, 2).unwrap();
        SaeWeights {
            config,
            w_enc: vec![0.5; 12],
            b_enc: vec![0.0; 4],
            w_dec: vec![0.5; 12],
            b_dec: vec![0.0; 3],
        }
    }

    fn started(w: &SaeWeights) -> TrainState {
        let mut s = TrainState::fresh(w);
        s.step = 7;
        s.since_fired = vec![0, 3, 1, 20];
        s.threshold_sum = 1.0;
        s.threshold_count = 2;
        s.moments = s
            .shapes
            .iter()
            .map(|sh| {
                let n = sh.iter().product::<usize>();
                ((0..n).map(|i| i as f32).collect(), vec![0.5; n])
            })
            .collect();
        s
    }

    #[test]
    fn round_trips_fresh_and_started_states() {
        let w = weights();
        for s in [TrainState::fresh(&w), started(&w)] {
            let back = TrainState::from_bytes(&s.to_bytes(&w).unwrap(), &w).unwrap();
            back.check_paired(&w).unwrap();
            assert_eq!(
                TrainState {
                    saved_with: None,
                    ..back
                },
                s
            );
        }
        assert_eq!(started(&w).threshold(), Some(0.5));
    }

    #[test]
    fn reads_the_fuzz_seed_writer_s_files() {
        // Written by `fuzz/seed-sae-resume-state.py` (its 3x5-step1 seed without the shape
        // byte): the seeds must get past the parser, or the fuzzer starts from nothing.
        let bytes = include_bytes!("../testdata/resume-3x5-step1.safetensors");
        let config = SaeConfig::new(SaeKind::TopK, 3, 5, 1).unwrap();
        let w = SaeWeights {
            config,
            w_enc: vec![0.0; 15],
            b_enc: vec![0.0; 5],
            w_dec: vec![0.0; 15],
            b_dec: vec![0.0; 3],
        };
        let s = TrainState::from_bytes(bytes, &w).unwrap();
        assert_eq!(s.step, 1);
        assert_eq!(s.threshold(), Some(0.25));
        assert_eq!(s.moments.len(), 4);
    }

    #[test]
    fn a_flipped_byte_or_another_sae_is_refused() {
        let w = weights();
        let mut bytes = started(&w).to_bytes(&w).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let err = TrainState::from_bytes(&bytes, &w).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        let other = SaeWeights {
            config: SaeConfig::new(SaeKind::BatchTopK, 3, 5, 2).unwrap(),
            w_enc: vec![0.5; 15],
            b_enc: vec![0.0; 5],
            w_dec: vec![0.5; 15],
            b_dec: vec![0.0; 3],
        };
        let err = TrainState::from_bytes(&started(&w).to_bytes(&w).unwrap(), &other).unwrap_err();
        assert!(err.contains("shape"), "{err}");
    }

    #[test]
    fn edited_step_or_weights_of_another_save_are_refused() {
        let w = weights();
        let bytes = started(&w).to_bytes(&w).unwrap();
        // "step":"7" -> "step":"8": same length, so only the seal can notice.
        let pos = bytes.windows(9).position(|x| x == b"\"step\":\"7").unwrap() + 8;
        let mut edited = bytes.clone();
        edited[pos] = b'8';
        let err = TrainState::from_bytes(&edited, &w).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        // Weights of a later step beside this state: same shapes, other content.
        let mut later = w.clone();
        later.w_enc[0] += 0.25;
        let state = TrainState::from_bytes(&bytes, &later).unwrap();
        let err = state.check_paired(&later).unwrap_err();
        assert!(err.contains("do not belong together"), "{err}");
    }
}
