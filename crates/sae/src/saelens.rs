//! SAELens' on-disk layout, both ways: a directory holding `cfg.json` and
//! `sae_weights.safetensors`, as `SAE.save_model` writes and `SAE.load_from_disk` reads
//! (SAELens 6).
//!
//! | architecture | weights | encode |
//! |---|---|---|
//! | `topk` | `W_enc`, `b_enc`, `W_dec`, `b_dec` | the `k` largest pre-activations, then ReLU |
//! | `jumprelu` | the same and `threshold` `[d_sae]` | `pre · (pre > threshold_i)`, then ReLU |
//! | `standard` | the same as `topk` | ReLU (a JumpReLU with zero thresholds) |
//!
//! **Writing** ([`SaeWeights::save_saelens`]) folds the input scale into the weights
//! (`W_enc·c`, `W_dec / c`, `b_dec / c`, as SAELens' `fold_activation_norm_scaling_factor`
//! does), so the files need no normalisation step, and writes a BatchTopK SAE with a stored
//! threshold as `jumprelu` (SAELens saves its BatchTopK SAEs that way for inference); every
//! other SAE is `topk` with its training k. The cfg's `metadata.latent_terms` keeps our
//! kind, k and threshold, and the safetensors header holds a CRC-32 over the tensors and
//! `cfg.json` (`latent_terms_crc32`), which the reader checks when present.
//!
//! **Reading** ([`SaeWeights::load_saelens`]) needs nothing of ours. What SAELens applies at
//! encode time is folded into the weights so that [`crate::SaeEncoder`] gives SAELens'
//! activations: `apply_b_dec_to_input = false` moves `W_encᵀ·b_dec` into `b_enc`, and
//! `rescale_acts_by_decoder_norm = true` scales each latent's encoder column and bias by its
//! decoder row's norm and divides the row by it. Per-latent thresholds are kept
//! ([`crate::SaeConfig::latent_thresholds`]) and the SAE reads as [`SaeKind::BatchTopK`],
//! whose inference rule is the stored threshold. `normalize_activations =
//! "expected_average_only_in"` is read as no normalisation, as SAELens' own disk loader does
//! (the factor is not in the files); other normalisations are refused. A JumpReLU SAE has no
//! k: `metadata.latent_terms.k` is used when present, else [`JUMPRELU_DEFAULT_K`], which only
//! matters when such an SAE is asked to encode by top-k. Tensors may be f32, f64, f16 or
//! bf16.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::weights::{SaeConfig, SaeKind, SaeWeights, bytes_f32, f32_bytes, write_atomic};

/// File name of the configuration in a SAELens directory.
pub const SAELENS_CFG: &str = "cfg.json";
/// File name of the weights in a SAELens directory.
pub const SAELENS_WEIGHTS: &str = "sae_weights.safetensors";
/// The `k` given to a JumpReLU or standard SAE whose files do not state one.
pub const JUMPRELU_DEFAULT_K: usize = 64;
/// The SAELens layout version our files follow; without it SAELens would treat the cfg as
/// a pre-6.0 one and rename its fields.
const LAYOUT_VERSION: &str = "6.0.0";
const CRC_KEY: &str = "latent_terms_crc32";
/// A cfg.json larger than this is not a SAELens configuration.
const MAX_CFG_BYTES: u64 = 16 << 20;

impl SaeWeights {
    /// The SAELens architecture [`SaeWeights::save_saelens`] writes: `jumprelu` for a
    /// BatchTopK SAE with a stored threshold, `topk` for every other.
    pub fn saelens_architecture(&self) -> &'static str {
        let c = &self.config;
        let thresholded = c.threshold.is_some() || c.latent_thresholds.is_some();
        if c.kind == SaeKind::BatchTopK && thresholded {
            "jumprelu"
        } else {
            "topk"
        }
    }

    /// Writes these weights as a SAELens directory (`cfg.json`, `sae_weights.safetensors`),
    /// each file atomically. See the [module docs](crate::saelens) for what is folded.
    ///
    /// ```
    /// use latent_terms_sae::{EncodeOptions, SaeConfig, SaeEncoder, SaeKind, SaeWeights};
    ///
    /// let mut config = SaeConfig::new(SaeKind::TopK, 2, 3, 1)?;
    /// config.set_input_scale(Some(2.0));
    /// let weights = SaeWeights {
    ///     config,
    ///     w_enc: vec![1.0, 0.0, 0.7, 0.0, 1.0, 0.7],
    ///     b_enc: vec![0.0; 3],
    ///     w_dec: vec![1.0, 0.0, 0.0, 1.0, 0.7071, 0.7071],
    ///     b_dec: vec![0.1, 0.0],
    /// };
    /// let dir = tempfile::tempdir()?;
    /// weights.save_saelens(dir.path())?;
    /// let back = SaeEncoder::load(dir.path())?; // a directory reads as SAELens' layout
    /// let rows = [0.9, 0.1, 0.0, 0.5];
    /// let ours = SaeEncoder::new(weights)?.encode(&rows, &EncodeOptions::top_k(1))?;
    /// let theirs = back.encode(&rows, &EncodeOptions::top_k(1))?;
    /// assert_eq!(ours[0].indices, theirs[0].indices);
    /// assert!((ours[0].values[0] - theirs[0].values[0]).abs() < 1e-6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_saelens(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        self.validate()?;
        let c = &self.config;
        let scale = c.input_scale.unwrap_or(1.0);
        let w_enc: Vec<f32> = self.w_enc.iter().map(|v| v * scale).collect();
        let w_dec: Vec<f32> = self.w_dec.iter().map(|v| v / scale).collect();
        let b_dec: Vec<f32> = self.b_dec.iter().map(|v| v / scale).collect();
        let jumprelu = self.saelens_architecture() == "jumprelu";
        let threshold = self.threshold_tensor();
        let mut cfg = json!({
            "architecture": self.saelens_architecture(),
            "d_in": c.d_in,
            "d_sae": c.d_sae,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": true,
            "normalize_activations": "none",
            "reshape_activations": "none",
            "metadata": {
                "sae_lens_version": LAYOUT_VERSION,
                "sae_lens_training_version": LAYOUT_VERSION,
                "model_name": "latent-terms",
                "latent_terms": {
                    "kind": c.kind.as_str(),
                    "k": c.k,
                    "threshold": c.threshold,
                    "folded_input_scale": c.input_scale,
                    "training": c.metadata,
                },
            },
        });
        if !jumprelu {
            cfg["k"] = json!(c.k);
            cfg["rescale_acts_by_decoder_norm"] = json!(false);
        }
        let cfg = serde_json::to_string_pretty(&cfg)
            .map_err(|e| Error::InvalidConfig(format!("cfg.json: {e}")))?;
        let mut tensors: Vec<(&str, Vec<u8>, Vec<usize>)> = vec![
            ("W_enc", f32_bytes(&w_enc), vec![c.d_in, c.d_sae]),
            ("b_enc", f32_bytes(&self.b_enc), vec![c.d_sae]),
            ("W_dec", f32_bytes(&w_dec), vec![c.d_sae, c.d_in]),
            ("b_dec", f32_bytes(&b_dec), vec![c.d_in]),
        ];
        if jumprelu {
            tensors.push(("threshold", f32_bytes(&threshold), vec![c.d_sae]));
        }
        let weights_path = dir.join(SAELENS_WEIGHTS);
        let mut crc = crc32fast::Hasher::new();
        tensors.iter().for_each(|(_, bytes, _)| crc.update(bytes));
        crc.update(cfg.as_bytes());
        let metadata = HashMap::from([
            (CRC_KEY.to_string(), format!("{:08x}", crc.finalize())),
            ("format".to_string(), "pt".to_string()),
        ]);
        let mut views = Vec::with_capacity(tensors.len());
        for (name, bytes, shape) in &tensors {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| Error::checkpoint(&weights_path, e.to_string()))?;
            views.push((*name, view));
        }
        let serialized = safetensors::serialize(views, Some(metadata))
            .map_err(|e| Error::checkpoint(&weights_path, e.to_string()))?;
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomic(&weights_path, &serialized)?;
        write_atomic(&dir.join(SAELENS_CFG), cfg.as_bytes())
    }

    /// Reads a SAELens directory (`cfg.json`, `sae_weights.safetensors`), written by SAELens
    /// or by [`SaeWeights::save_saelens`]. See the [module docs](crate::saelens) for the
    /// architectures read and what is folded; anything else is refused with
    /// [`Error::Checkpoint`] saying what.
    pub fn load_saelens(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join(SAELENS_CFG);
        let weights_path = dir.join(SAELENS_WEIGHTS);
        let size = fs::metadata(&cfg_path)
            .map_err(|e| Error::io(&cfg_path, e))?
            .len();
        if size > MAX_CFG_BYTES {
            return Err(Error::checkpoint(
                &cfg_path,
                format!("{size} bytes is too large for a SAELens cfg.json"),
            ));
        }
        let cfg_text = fs::read(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let bytes = fs::read(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        Self::from_saelens_bytes(&cfg_text, &bytes).map_err(|reason| Error::checkpoint(dir, reason))
    }

    /// Parses a SAELens directory's two files from memory (`cfg.json`'s bytes, then
    /// `sae_weights.safetensors`'); the error says what is wrong and in which file.
    pub fn from_saelens_bytes(cfg: &[u8], weights: &[u8]) -> std::result::Result<Self, String> {
        let cfg_text = std::str::from_utf8(cfg).map_err(|e| format!("{SAELENS_CFG}: {e}"))?;
        let tensors = read_tensors(weights, cfg_text)
            .map_err(|reason| format!("{SAELENS_WEIGHTS}: {reason}"))?;
        from_saelens(cfg_text, tensors).map_err(|reason| format!("{SAELENS_CFG}: {reason}"))
    }
}

/// Tensors by name: shape and values as f32.
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The tensors of a SAELens weights file as f32, checked against our CRC when present.
fn read_tensors(bytes: &[u8], cfg_text: &str) -> std::result::Result<Tensors, String> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let want_crc = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CRC_KEY).cloned());
    let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut crc = crc32fast::Hasher::new();
    let mut out = HashMap::new();
    for name in ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"] {
        let Ok(t) = tensors.tensor(name) else {
            continue;
        };
        crc.update(t.data());
        let values = to_f32(t.dtype(), t.data())
            .ok_or_else(|| format!("{name} is {:?}; expected F32, F64, F16 or BF16", t.dtype()))?;
        out.insert(name.to_string(), (t.shape().to_vec(), values));
    }
    if let Some(want) = want_crc {
        crc.update(cfg_text.as_bytes());
        let got = format!("{:08x}", crc.finalize());
        if got != want {
            return Err(format!(
                "checksum mismatch over the tensors and cfg.json (stored {want}, computed {got})"
            ));
        }
    }
    Ok(out)
}

fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(bytes_f32(data)),
        Dtype::F64 => Some(
            data.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
        ),
        Dtype::F16 => Some(
            data.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::BF16 => Some(
            data.chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        _ => None,
    }
}

fn from_saelens(cfg_text: &str, mut tensors: Tensors) -> std::result::Result<SaeWeights, String> {
    let cfg: Value = serde_json::from_str(cfg_text).map_err(|e| format!("cfg.json: {e}"))?;
    let usize_field =
        |v: &Value, name: &str| v.get(name).and_then(Value::as_u64).map(|n| n as usize);
    let d_in = usize_field(&cfg, "d_in").ok_or("cfg.json has no d_in")?;
    let d_sae = usize_field(&cfg, "d_sae").ok_or("cfg.json has no d_sae")?;
    let text = |name: &str, default: &'static str| {
        cfg.get(name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let flag =
        |name: &str, default: bool| cfg.get(name).and_then(Value::as_bool).unwrap_or(default);
    let architecture = text("architecture", "standard");
    let ours = cfg.pointer("/metadata/latent_terms");
    let stated_k = usize_field(&cfg, "k").or_else(|| ours.and_then(|o| usize_field(o, "k")));
    match text("normalize_activations", "none").as_str() {
        "none" | "expected_average_only_in" => {}
        other => {
            return Err(format!(
                "normalize_activations {other:?} is not supported (none or expected_average_only_in)"
            ));
        }
    }
    match text("reshape_activations", "none").as_str() {
        "none" => {}
        other => return Err(format!("reshape_activations {other:?} is not supported")),
    }
    let mut take = |name: &str, shape: &[usize]| -> std::result::Result<Vec<f32>, String> {
        let (got, values) = tensors
            .remove(name)
            .ok_or_else(|| format!("sae_weights.safetensors has no {name}"))?;
        if got != shape {
            return Err(format!("{name} has shape {got:?}, cfg.json says {shape:?}"));
        }
        Ok(values)
    };
    let mut w_enc = take("W_enc", &[d_in, d_sae])?;
    let mut b_enc = take("b_enc", &[d_sae])?;
    let mut w_dec = take("W_dec", &[d_sae, d_in])?;
    let b_dec = take("b_dec", &[d_in])?;
    let (kind, k, thresholds) = match architecture.as_str() {
        "topk" => {
            let k = stated_k.ok_or("a topk cfg.json needs k")?;
            (SaeKind::TopK, k, None)
        }
        "jumprelu" => (
            SaeKind::BatchTopK,
            stated_k.unwrap_or(JUMPRELU_DEFAULT_K),
            Some(take("threshold", &[d_sae])?),
        ),
        "standard" => (
            SaeKind::BatchTopK,
            stated_k.unwrap_or(JUMPRELU_DEFAULT_K),
            Some(vec![0.0; d_sae]),
        ),
        other => {
            return Err(format!(
                "architecture {other:?} is not supported (topk, jumprelu or standard)"
            ));
        }
    };
    if !flag("apply_b_dec_to_input", true) {
        // W_encᵀx + b_enc = W_encᵀ(x − b_dec) + (b_enc + W_encᵀ b_dec)
        for (j, b) in b_enc.iter_mut().enumerate() {
            let shift: f64 = (0..d_in)
                .map(|i| f64::from(w_enc[i * d_sae + j]) * f64::from(b_dec[i]))
                .sum();
            *b = (f64::from(*b) + shift) as f32;
        }
    }
    if architecture == "topk" && flag("rescale_acts_by_decoder_norm", false) {
        for j in 0..d_sae {
            let row = &mut w_dec[j * d_in..(j + 1) * d_in];
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-8);
            row.iter_mut().for_each(|v| *v /= norm);
            (0..d_in).for_each(|i| w_enc[i * d_sae + j] *= norm);
            b_enc[j] *= norm;
        }
    }
    let mut config = SaeConfig::new(kind, d_in, d_sae, k.min(d_sae.saturating_sub(1)).max(1))
        .map_err(|e| e.to_string())?;
    match thresholds {
        Some(t) if t.iter().all(|&v| v == t[0]) => config.threshold = t.first().copied(),
        t => config.latent_thresholds = t,
    }
    if let Some(Value::Object(meta)) = cfg.get("metadata") {
        config.metadata = meta.clone();
    }
    let weights = SaeWeights {
        config,
        w_enc,
        b_enc,
        w_dec,
        b_dec,
    };
    weights.validate().map_err(|e| e.to_string())?;
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{EncodeOptions, SaeEncoder, SparseCode};

    fn random_weights(kind: SaeKind, d: usize, m: usize, k: usize, seed: u32) -> SaeWeights {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32 - 0.5
        };
        let config = SaeConfig::new(kind, d, m, k).unwrap();
        SaeWeights {
            config,
            w_enc: (0..d * m).map(|_| next()).collect(),
            b_enc: (0..m).map(|_| next() * 0.1).collect(),
            w_dec: (0..d * m).map(|_| next()).collect(),
            b_dec: (0..d).map(|_| next() * 0.1).collect(),
        }
    }

    fn rows(d: usize, n: usize) -> Vec<f32> {
        (0..d * n)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0)
            .collect()
    }

    fn dense(codes: &[SparseCode], m: usize) -> Vec<f32> {
        let mut out = vec![0.0; codes.len() * m];
        for (r, code) in codes.iter().enumerate() {
            code.iter().for_each(|(i, v)| out[r * m + i as usize] = v);
        }
        out
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn topk_round_trip_folds_the_input_scale() {
        let mut w = random_weights(SaeKind::TopK, 8, 32, 4, 1);
        w.config.set_input_scale(Some(3.0));
        let dir = tempfile::tempdir().unwrap();
        w.save_saelens(dir.path()).unwrap();
        let back = SaeWeights::load(dir.path()).unwrap();
        assert_eq!(back.config.kind, SaeKind::TopK);
        assert_eq!(back.config.k, 4);
        assert_eq!(back.config.input_scale, None);
        let x = rows(8, 20);
        let opts = EncodeOptions::top_k(4);
        let ours = SaeEncoder::new(w).unwrap().encode(&x, &opts).unwrap();
        let theirs = SaeEncoder::new(back).unwrap().encode(&x, &opts).unwrap();
        assert!(max_diff(&dense(&ours, 32), &dense(&theirs, 32)) < 1e-5);
        let cfg: Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join(SAELENS_CFG)).unwrap())
                .unwrap();
        assert_eq!(cfg["architecture"], "topk");
        assert_eq!(cfg["k"], 4);
        assert_eq!(cfg["normalize_activations"], "none");
    }

    #[test]
    fn batchtopk_is_written_as_jumprelu_and_keeps_per_latent_thresholds() {
        let mut w = random_weights(SaeKind::BatchTopK, 8, 32, 4, 2);
        w.config.latent_thresholds = Some((0..32).map(|i| i as f32 * 0.01).collect());
        let dir = tempfile::tempdir().unwrap();
        w.save_saelens(dir.path()).unwrap();
        let back = SaeWeights::load_saelens(dir.path()).unwrap();
        assert_eq!(back.config.latent_thresholds, w.config.latent_thresholds);
        let x = rows(8, 20);
        let opts = EncodeOptions::stored_threshold(None);
        let ours = SaeEncoder::new(w.clone())
            .unwrap()
            .encode(&x, &opts)
            .unwrap();
        let theirs = SaeEncoder::new(back).unwrap().encode(&x, &opts).unwrap();
        assert_eq!(ours, theirs);
        // Per-latent thresholds also survive our own checkpoint format.
        let path = dir.path().join("ours.safetensors");
        w.save(&path).unwrap();
        assert_eq!(SaeWeights::load(&path).unwrap(), w);
    }

    #[test]
    fn saelens_encode_time_options_are_folded() {
        // apply_b_dec_to_input = false and rescale_acts_by_decoder_norm = true, computed the
        // way SAELens does, against the folded weights.
        let w = random_weights(SaeKind::TopK, 6, 16, 3, 3);
        let (d, m) = (6, 16);
        let dir = tempfile::tempdir().unwrap();
        w.save_saelens(dir.path()).unwrap();
        let cfg_path = dir.path().join(SAELENS_CFG);
        let mut cfg: Value = serde_json::from_str(&fs::read_to_string(&cfg_path).unwrap()).unwrap();
        cfg["apply_b_dec_to_input"] = json!(false);
        cfg["rescale_acts_by_decoder_norm"] = json!(true);
        fs::write(&cfg_path, cfg.to_string()).unwrap();
        // Our CRC covered the old cfg.json: the edited one is refused until it is removed.
        assert!(SaeWeights::load_saelens(dir.path()).is_err());
        drop_our_checksum(dir.path());
        let folded = SaeEncoder::new(SaeWeights::load_saelens(dir.path()).unwrap()).unwrap();
        let x = rows(d, 10);
        for (r, code) in folded
            .encode(&x, &EncodeOptions::top_k(3))
            .unwrap()
            .iter()
            .enumerate()
        {
            let mut pre: Vec<(usize, f32)> = (0..m)
                .map(|j| {
                    let dot: f32 = (0..d).map(|i| x[r * d + i] * w.w_enc[i * m + j]).sum();
                    let norm = w.w_dec[j * d..(j + 1) * d]
                        .iter()
                        .map(|v| v * v)
                        .sum::<f32>()
                        .sqrt();
                    (j, (dot + w.b_enc[j]) * norm)
                })
                .collect();
            pre.sort_by(|a, b| b.1.total_cmp(&a.1));
            let want: Vec<(u32, f32)> = pre[..3]
                .iter()
                .filter(|p| p.1 > 0.0)
                .map(|&(j, v)| (j as u32, v))
                .collect();
            let mut got: Vec<(u32, f32)> = code.iter().collect();
            got.sort_by(|a, b| b.1.total_cmp(&a.1));
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0);
                assert!((g.1 - w.1).abs() < 1e-4, "{g:?} vs {w:?}");
            }
        }
    }

    /// Rewrites the weights file without our checksum, as SAELens writes it.
    fn drop_our_checksum(dir: &Path) {
        let bytes = fs::read(dir.join(SAELENS_WEIGHTS)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let views: Vec<(String, TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| {
                (
                    n,
                    TensorView::new(t.dtype(), t.shape().to_vec(), t.data()).unwrap(),
                )
            })
            .collect();
        let plain = safetensors::serialize(views, None).unwrap();
        fs::write(dir.join(SAELENS_WEIGHTS), plain).unwrap();
    }

    #[test]
    fn unsupported_and_damaged_directories_are_refused() {
        let w = random_weights(SaeKind::TopK, 4, 8, 2, 4);
        let dir = tempfile::tempdir().unwrap();
        w.save_saelens(dir.path()).unwrap();
        let cfg_path = dir.path().join(SAELENS_CFG);
        let good = fs::read_to_string(&cfg_path).unwrap();
        let edited = good.replace("\"k\": 2", "\"k\": 3");
        fs::write(&cfg_path, &edited).unwrap();
        let err = SaeWeights::load_saelens(dir.path()).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        drop_our_checksum(dir.path());
        assert_eq!(SaeWeights::load_saelens(dir.path()).unwrap().config.k, 3);
        for (from, to, says) in [
            ("\"topk\"", "\"gated\"", "architecture"),
            (
                "\"normalize_activations\": \"none\"",
                "\"normalize_activations\": \"layer_norm\"",
                "layer_norm",
            ),
            ("\"d_sae\": 8", "\"d_sae\": 9", "shape"),
        ] {
            fs::write(&cfg_path, good.replace(from, to)).unwrap();
            let err = SaeWeights::load_saelens(dir.path()).unwrap_err();
            assert!(matches!(err, Error::Checkpoint { .. }), "{from}: {err}");
            assert!(err.to_string().contains(says), "{err}");
        }
        fs::write(&cfg_path, &good).unwrap();
        w.save_saelens(dir.path()).unwrap();
        let weights_path = dir.path().join(SAELENS_WEIGHTS);
        let mut bytes = fs::read(&weights_path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&weights_path, &bytes).unwrap();
        let err = SaeWeights::load_saelens(dir.path()).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        fs::remove_file(&weights_path).unwrap();
        assert!(matches!(
            SaeWeights::load_saelens(dir.path()),
            Err(Error::Io { .. })
        ));
    }
}
