//! SAE weights, their configuration, and the checkpoint file format.
//!
//! A checkpoint is one safetensors file with SAELens' tensor names and shapes:
//!
//! | tensor      | shape          | meaning                                         |
//! |-------------|----------------|-------------------------------------------------|
//! | `W_enc`     | [d_in, d_sae]  | encoder                                         |
//! | `b_enc`     | [d_sae]        | encoder bias                                    |
//! | `W_dec`     | [d_sae, d_in]  | decoder, one unit-norm row per latent           |
//! | `b_dec`     | [d_in]         | pre-encoder / decoder bias                      |
//! | `threshold` | [d_sae]        | activation threshold (BatchTopK inference)      |
//!
//! The safetensors header's `__metadata__` holds `cfg` (the [`SaeConfig`] as JSON,
//! SAELens field names), `format` and `crc32`, so a truncated, bit-flipped or edited file
//! is refused instead of silently misbehaving:
//!
//! * `latent-terms-sae/2` (written since input scaling): the CRC-32 covers the tensor bytes
//!   in the order above, then the bytes of the `cfg` string exactly as stored, so an edit
//!   to the configuration (shapes, k, threshold, `input_scale`, …) fails the check too.
//! * `latent-terms-sae/1` (or no `format`, older files): the CRC-32 covers the tensors
//!   only; such files still load, and their cfg is trusted as it stands.
//!
//! [`SaeWeights::save`] also writes the same JSON next to the file as `<stem>.cfg.json`
//! for Python users (`safetensors.torch.load_file` + `json.load`).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a trained SAE chose its active latents during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaeKind {
    /// The k largest pre-activations of each vector.
    TopK,
    /// The `batch × k` largest pre-activations of the whole batch (Bussmann et al. 2024).
    BatchTopK,
    /// TopK trained with MSE plus a contrastive KL term (Kang et al. 2025).
    Kld,
}

impl SaeKind {
    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            SaeKind::TopK => "topk",
            SaeKind::BatchTopK => "batchtopk",
            SaeKind::Kld => "kld",
        }
    }
}

impl std::str::FromStr for SaeKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "topk" => Ok(SaeKind::TopK),
            "batchtopk" => Ok(SaeKind::BatchTopK),
            "kld" => Ok(SaeKind::Kld),
            other => Err(Error::InvalidConfig(format!(
                "unknown SAE kind {other:?}; expected topk, batchtopk or kld"
            ))),
        }
    }
}

/// The configuration stored with every checkpoint (`cfg`), with SAELens' field names
/// where SAELens has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeConfig {
    /// SAELens architecture: `topk` for TopK and KLD SAEs, `jumprelu` for BatchTopK
    /// (whose inference rule is a threshold, which SAELens' JumpReLU applies).
    pub architecture: String,
    /// Input (embedding) width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Element type of the tensors (always `float32`).
    pub dtype: String,
    /// SAELens: subtract `b_dec` from the input before encoding (always true here).
    pub apply_b_dec_to_input: bool,
    /// SAELens: input normalisation: `none` (inputs used as given) or, when
    /// [`SaeConfig::input_scale`] is set, `expected_average_only_in`.
    pub normalize_activations: String,
    /// Training k (active latents per vector).
    pub k: usize,
    /// How the SAE was trained.
    pub kind: SaeKind,
    /// Global inference threshold (mean k-th activation over training), if estimated.
    /// In the SAE's (scaled) units, like the activations.
    pub threshold: Option<f32>,
    /// The constant `c` every input row is multiplied by before `x − b_dec` (and every
    /// reconstruction divided by), chosen at training so that the training rows' mean
    /// squared L2 norm is `d_in` (SAELens' `expected_average_only_in`); `None` means 1.
    ///
    /// [`crate::SaeEncoder`] applies it, so callers pass and get back vectors in their own
    /// units; activations and the threshold are in the scaled units. Set it with
    /// [`SaeConfig::set_input_scale`], which keeps `normalize_activations` in step.
    /// Absent from older checkpoints, which load as `None`.
    #[serde(default)]
    pub input_scale: Option<f32>,
    /// Per-latent thresholds (`[d_sae]`), as SAELens' JumpReLU SAEs have them; when set
    /// they replace [`SaeConfig::threshold`] in the stored-threshold rule. Kept in the
    /// checkpoint's `threshold` tensor, not in the cfg JSON.
    #[serde(skip)]
    pub latent_thresholds: Option<Vec<f32>>,
    /// Free-form provenance: training settings, data, steps.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl SaeConfig {
    /// A configuration for a new SAE.
    pub fn new(kind: SaeKind, d_in: usize, d_sae: usize, k: usize) -> Result<Self> {
        if d_in == 0 || d_sae == 0 {
            return Err(Error::InvalidConfig(
                "d_in and the latent count must be positive".into(),
            ));
        }
        if k == 0 || k >= d_sae {
            return Err(Error::InvalidConfig(format!(
                "k must be in 1..{d_sae} (fewer than the latent count), got {k}"
            )));
        }
        let architecture = match kind {
            SaeKind::BatchTopK => "jumprelu",
            SaeKind::TopK | SaeKind::Kld => "topk",
        };
        Ok(SaeConfig {
            architecture: architecture.into(),
            d_in,
            d_sae,
            dtype: "float32".into(),
            apply_b_dec_to_input: true,
            normalize_activations: "none".into(),
            k,
            kind,
            threshold: None,
            input_scale: None,
            latent_thresholds: None,
            metadata: serde_json::Map::new(),
        })
    }

    /// Sets [`SaeConfig::input_scale`] and `normalize_activations` with it
    /// (`expected_average_only_in` when `Some`, `none` otherwise).
    pub fn set_input_scale(&mut self, scale: Option<f32>) {
        self.input_scale = scale;
        self.normalize_activations = match scale {
            Some(_) => "expected_average_only_in",
            None => "none",
        }
        .into();
    }

    /// The cfg JSON, with SAELens' `activation_fn_kwargs` spelled out for its loaders.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "activation_fn_kwargs".into(),
                serde_json::json!({ "k": self.k }),
            );
            obj.insert("model_name".into(), serde_json::json!("latent-terms"));
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// The parameters of a sparse autoencoder, as plain row-major `f32` arrays.
///
/// `h = act(W_encᵀ·(x − b_dec) + b_enc)`, `x̂ = W_decᵀ·h + b_dec`.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeWeights {
    /// Configuration (shapes, kind, threshold).
    pub config: SaeConfig,
    /// Encoder, `[d_in, d_sae]` row-major.
    pub w_enc: Vec<f32>,
    /// Encoder bias, `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// Decoder, `[d_sae, d_in]` row-major: row `i` is latent `i`'s direction.
    pub w_dec: Vec<f32>,
    /// Pre-encoder and decoder bias, `[d_in]`.
    pub b_dec: Vec<f32>,
}

const TENSORS: [&str; 5] = ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"];

/// Format whose CRC-32 covers the tensors and then the cfg string.
const FORMAT_CFG_CHECKED: &str = "latent-terms-sae/2";
/// Older format whose CRC-32 covers the tensors only.
const FORMAT_TENSORS_ONLY: &str = "latent-terms-sae/1";

impl SaeWeights {
    /// Checks that every array has the shape its configuration says and holds finite values.
    pub fn validate(&self) -> Result<()> {
        let c = &self.config;
        if c.d_in == 0 || c.d_sae == 0 {
            return Err(Error::InvalidConfig(
                "d_in and d_sae must be positive".into(),
            ));
        }
        let matrix = c.d_in.checked_mul(c.d_sae).ok_or_else(|| {
            Error::InvalidConfig(format!("d_in {} × d_sae {} overflows", c.d_in, c.d_sae))
        })?;
        let shapes = [
            ("W_enc", self.w_enc.len(), matrix),
            ("b_enc", self.b_enc.len(), c.d_sae),
            ("W_dec", self.w_dec.len(), matrix),
            ("b_dec", self.b_dec.len(), c.d_in),
        ];
        for (name, got, want) in shapes {
            if got != want {
                return Err(Error::InvalidConfig(format!(
                    "{name} has {got} values, expected {want} for d_in {} and d_sae {}",
                    c.d_in, c.d_sae
                )));
            }
        }
        if c.k == 0 || c.k >= c.d_sae {
            return Err(Error::InvalidConfig(format!(
                "k {} is not below d_sae {}",
                c.k, c.d_sae
            )));
        }
        for (name, data) in [
            ("W_enc", &self.w_enc),
            ("b_enc", &self.b_enc),
            ("W_dec", &self.w_dec),
            ("b_dec", &self.b_dec),
        ] {
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::InvalidConfig(format!("{name}[{i}] is not finite")));
            }
        }
        if c.threshold.is_some_and(|t| !t.is_finite()) {
            return Err(Error::InvalidConfig("the threshold is not finite".into()));
        }
        if let Some(t) = &c.latent_thresholds {
            if t.len() != c.d_sae {
                return Err(Error::InvalidConfig(format!(
                    "{} per-latent thresholds for {} latents",
                    t.len(),
                    c.d_sae
                )));
            }
            if let Some(i) = t.iter().position(|v| !v.is_finite()) {
                return Err(Error::InvalidConfig(format!(
                    "threshold[{i}] is not finite"
                )));
            }
        }
        if let Some(s) = c.input_scale
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::InvalidConfig(format!(
                "the input scale must be finite and positive, got {s}"
            )));
        }
        Ok(())
    }

    /// The `threshold` tensor: the per-latent thresholds, or the global one repeated.
    pub(crate) fn threshold_tensor(&self) -> Vec<f32> {
        match &self.config.latent_thresholds {
            Some(t) => t.clone(),
            None => vec![self.config.threshold.unwrap_or(0.0); self.config.d_sae],
        }
    }

    /// Writes the checkpoint atomically to `path`, and the cfg JSON to `<stem>.cfg.json`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.validate()?;
        let c = &self.config;
        let threshold = self.threshold_tensor();
        let arrays: [(&[f32], Vec<usize>); 5] = [
            (&self.w_enc, vec![c.d_in, c.d_sae]),
            (&self.b_enc, vec![c.d_sae]),
            (&self.w_dec, vec![c.d_sae, c.d_in]),
            (&self.b_dec, vec![c.d_in]),
            (&threshold, vec![c.d_sae]),
        ];
        let bytes: Vec<Vec<u8>> = arrays.iter().map(|(a, _)| f32_bytes(a)).collect();
        let cfg = c.to_json();
        let metadata = HashMap::from([
            ("cfg".to_string(), cfg.clone()),
            ("crc32".to_string(), content_crc(&bytes, &cfg)),
            ("format".to_string(), FORMAT_CFG_CHECKED.to_string()),
        ]);
        let mut views = Vec::with_capacity(5);
        for ((name, (_, shape)), data) in TENSORS.iter().zip(&arrays).zip(&bytes) {
            let view = TensorView::new(Dtype::F32, shape.clone(), data)
                .map_err(|e| Error::checkpoint(path, e.to_string()))?;
            views.push((*name, view));
        }
        let serialized = safetensors::serialize(views, Some(metadata))
            .map_err(|e| Error::checkpoint(path, e.to_string()))?;
        write_atomic(path, &serialized)?;
        write_atomic(&cfg_path(path), cfg.as_bytes())
    }

    /// The checkpoint's content checksum: the CRC-32 [`SaeWeights::save`] stores, over the
    /// tensors and the cfg. A resume state records it to name the weights it belongs to.
    pub fn content_crc(&self) -> String {
        let c = &self.config;
        let threshold = self.threshold_tensor();
        let bytes: Vec<Vec<u8>> = [
            &self.w_enc[..],
            &self.b_enc,
            &self.w_dec,
            &self.b_dec,
            &threshold,
        ]
        .iter()
        .map(|a| f32_bytes(a))
        .collect();
        content_crc(&bytes, &c.to_json())
    }

    /// Reads and verifies a checkpoint written by [`SaeWeights::save`].
    ///
    /// Refuses, with [`Error::Checkpoint`], a file that is truncated, fails its checksum
    /// (which covers the cfg too, except in files written before format
    /// `latent-terms-sae/2`), or whose tensors do not have the shapes its configuration
    /// states.
    ///
    /// A directory is read as SAELens' layout ([`SaeWeights::load_saelens`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            return Self::load_saelens(path);
        }
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|reason| Error::checkpoint(path, reason))
    }

    /// Parses a checkpoint from memory; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or("no __metadata__ (cfg, crc32)")?;
        let cfg_json = meta.get("cfg").ok_or("no cfg in __metadata__")?;
        let config: SaeConfig =
            serde_json::from_str(cfg_json).map_err(|e| format!("cfg JSON: {e}"))?;
        let want_crc = meta.get("crc32").ok_or("no crc32 in __metadata__")?.clone();
        let covers_cfg = match meta.get("format").map(String::as_str) {
            Some(FORMAT_CFG_CHECKED) => true,
            None | Some(FORMAT_TENSORS_ONLY) => false,
            Some(other) => return Err(format!("unknown checkpoint format {other:?}")),
        };
        let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let (d_in, d_sae) = (config.d_in, config.d_sae);
        let shapes = [
            vec![d_in, d_sae],
            vec![d_sae],
            vec![d_sae, d_in],
            vec![d_in],
            vec![d_sae],
        ];
        let mut crc = crc32fast::Hasher::new();
        let mut arrays = Vec::with_capacity(5);
        for (name, shape) in TENSORS.iter().zip(shapes) {
            let t = tensors.tensor(name).map_err(|e| format!("{name}: {e}"))?;
            if t.dtype() != Dtype::F32 {
                return Err(format!("{name} is {:?}, expected F32", t.dtype()));
            }
            if t.shape() != shape.as_slice() {
                return Err(format!(
                    "{name} has shape {:?}, cfg says {shape:?}",
                    t.shape()
                ));
            }
            crc.update(t.data());
            arrays.push(bytes_f32(t.data()));
        }
        if covers_cfg {
            crc.update(cfg_json.as_bytes());
        }
        let got_crc = format!("{:08x}", crc.finalize());
        if got_crc != want_crc {
            return Err(format!(
                "checksum mismatch (stored {want_crc}, computed {got_crc})"
            ));
        }
        let mut it = arrays.into_iter();
        let mut next = || it.next().unwrap_or_default();
        let mut weights = SaeWeights {
            config,
            w_enc: next(),
            b_enc: next(),
            w_dec: next(),
            b_dec: next(),
        };
        let threshold = next();
        if threshold != weights.threshold_tensor() {
            weights.config.latent_thresholds = Some(threshold);
        }
        weights.validate().map_err(|e| e.to_string())?;
        Ok(weights)
    }
}

/// `<dir>/<stem>.cfg.json` for a checkpoint at `<dir>/<stem>.safetensors`.
pub fn cfg_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}.cfg.json"))
}

pub(crate) fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn bytes_f32(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Writes `bytes` atomically (`latent_terms_io`), with this crate's error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    latent_terms_io::write_bytes(path, bytes).map_err(|e| Error::io(path, e))
}

/// CRC-32 over the five tensors' bytes in file order, then the cfg JSON.
fn content_crc(tensors: &[Vec<u8>], cfg: &str) -> String {
    let mut crc = crc32fast::Hasher::new();
    tensors.iter().for_each(|b| crc.update(b));
    crc.update(cfg.as_bytes());
    format!("{:08x}", crc.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny(kind: SaeKind) -> SaeWeights {
        let config = SaeConfig::new(kind, 3, 4, 2).unwrap();
        SaeWeights {
            config,
            w_enc: (0..12).map(|i| i as f32 * 0.1 - 0.5).collect(),
            b_enc: vec![0.0, 0.1, -0.1, 0.2],
            w_dec: (0..12).map(|i| (i as f32 * 0.37).sin()).collect(),
            b_dec: vec![0.01, -0.02, 0.03],
        }
    }

    #[test]
    fn save_then_load_is_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        let mut w = tiny(SaeKind::BatchTopK);
        w.config.threshold = Some(0.25);
        w.save(&path).unwrap();
        assert_eq!(SaeWeights::load(&path).unwrap(), w);
        let cfg: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join("sae.cfg.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["architecture"], "jumprelu");
        assert_eq!(cfg["d_sae"], 4);
        assert_eq!(cfg["activation_fn_kwargs"]["k"], 2);
    }

    #[test]
    fn corrupted_and_truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        tiny(SaeKind::TopK).save(&path).unwrap();
        let good = fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        let err = SaeWeights::from_bytes(&flipped).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        for cut in [0, 7, 100, good.len() - 1] {
            assert!(
                SaeWeights::from_bytes(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(matches!(
            SaeWeights::load(&path),
            Err(Error::Checkpoint { .. })
        ));
    }

    /// `bytes` re-serialised with `edit` applied to its `__metadata__`.
    fn with_metadata(bytes: &[u8], edit: impl FnOnce(&mut HashMap<String, String>)) -> Vec<u8> {
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
        let mut meta = header.metadata().clone().unwrap();
        edit(&mut meta);
        let tensors = safetensors::SafeTensors::deserialize(bytes).unwrap();
        let views: Vec<(&str, TensorView<'_>)> = TENSORS
            .iter()
            .map(|&n| (n, tensors.tensor(n).unwrap()))
            .collect();
        safetensors::serialize(views, Some(meta)).unwrap()
    }

    #[test]
    fn input_scale_survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        let mut w = tiny(SaeKind::TopK);
        w.config.set_input_scale(Some(0.125));
        w.save(&path).unwrap();
        let back = SaeWeights::load(&path).unwrap();
        assert_eq!(back.config.input_scale, Some(0.125));
        assert_eq!(
            back.config.normalize_activations,
            "expected_average_only_in"
        );
        assert_eq!(back, w);
        let cfg: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join("sae.cfg.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["input_scale"], 0.125);
        assert_eq!(cfg["normalize_activations"], "expected_average_only_in");
        w.config.set_input_scale(None);
        assert_eq!(w.config.normalize_activations, "none");
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            w.config.input_scale = Some(bad);
            assert!(w.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_edited_cfg_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        let mut w = tiny(SaeKind::TopK);
        w.config.set_input_scale(Some(0.5));
        w.save(&path).unwrap();
        let good = fs::read(&path).unwrap();
        assert!(SaeWeights::from_bytes(&good).is_ok());
        let edited = with_metadata(&good, |m| {
            let cfg = m["cfg"].replace("\"input_scale\": 0.5", "\"input_scale\": 2.0");
            assert_ne!(cfg, m["cfg"]);
            m.insert("cfg".into(), cfg);
        });
        let err = SaeWeights::from_bytes(&edited).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        let edited = with_metadata(&good, |m| {
            m.insert("cfg".into(), m["cfg"].replace("\"k\": 2", "\"k\": 1"));
        });
        assert!(SaeWeights::from_bytes(&edited).is_err());
        let unknown = with_metadata(&good, |m| {
            m.insert("format".into(), "latent-terms-sae/9".into());
        });
        let err = SaeWeights::from_bytes(&unknown).unwrap_err();
        assert!(err.contains("format"), "{err}");
    }

    /// Files of format 1 (CRC over the tensors only, no `input_scale` in cfg) still load.
    #[test]
    fn format_1_checkpoints_still_load() {
        let w = tiny(SaeKind::BatchTopK);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        w.save(&path).unwrap();
        let v2 = fs::read(&path).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&v2).unwrap();
        let mut crc = crc32fast::Hasher::new();
        for n in TENSORS {
            crc.update(tensors.tensor(n).unwrap().data());
        }
        let tensor_crc = format!("{:08x}", crc.finalize());
        let mut cfg: serde_json::Value = serde_json::from_str(&w.config.to_json()).unwrap();
        cfg.as_object_mut().unwrap().remove("input_scale");
        let old_cfg = serde_json::to_string(&cfg).unwrap();
        for format in [Some(FORMAT_TENSORS_ONLY), None] {
            let v1 = with_metadata(&v2, |m| {
                m.insert("cfg".into(), old_cfg.clone());
                m.insert("crc32".into(), tensor_crc.clone());
                match format {
                    Some(f) => m.insert("format".into(), f.into()),
                    None => m.remove("format"),
                };
            });
            let loaded = SaeWeights::from_bytes(&v1).unwrap();
            assert_eq!(loaded, w);
            assert_eq!(loaded.config.input_scale, None);
        }
        // The same tensors-only CRC under format 2 fails: there it must cover the cfg.
        let mislabelled = with_metadata(&v2, |m| {
            m.insert("crc32".into(), tensor_crc.clone());
        });
        assert!(SaeWeights::from_bytes(&mislabelled).is_err());
    }

    #[test]
    fn configs_out_of_range_are_refused() {
        assert!(SaeConfig::new(SaeKind::TopK, 8, 16, 16).is_err());
        assert!(SaeConfig::new(SaeKind::TopK, 8, 16, 0).is_err());
        assert!(SaeConfig::new(SaeKind::TopK, 0, 16, 4).is_err());
        let mut w = tiny(SaeKind::TopK);
        w.w_dec[3] = f32::NAN;
        assert!(w.validate().is_err());
    }
}
