//! Pooling and the model-directory configuration files (sentence-transformers layout).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use crate::error::{Error, Result};

/// How token vectors are turned into one text vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// The vector of the first token (`[CLS]` for BERT).
    Cls,
    /// The mean of the vectors of all non-padding tokens (special tokens included,
    /// as in sentence-transformers).
    Mean,
    /// The vector of the last non-padding token (decoder-style embedders).
    LastToken,
}

impl Pooling {
    /// The name used in store metadata and on the command line: `cls`, `mean` or `last_token`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::LastToken => "last_token",
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pooling {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "last_token" | "lasttoken" | "last" => Ok(Pooling::LastToken),
            other => Err(Error::Config(format!(
                "unknown pooling {other:?} (expected cls, mean or last_token)"
            ))),
        }
    }
}

/// What the model directory says about itself (all optional; explicit builder
/// settings take precedence).
#[derive(Debug, Default)]
pub(crate) struct DirConfig {
    /// From `1_Pooling/config.json`.
    pub pooling: Option<Pooling>,
    /// From `1_Pooling/config.json` (`word_embedding_dimension`) or `config.json` (`hidden_size`).
    pub dim: Option<usize>,
    /// From `modules.json`: true when a `Normalize` module follows pooling.
    pub normalize: Option<bool>,
    /// From `sentence_bert_config.json` (`max_seq_length`).
    pub max_seq_length: Option<usize>,
    /// From `config.json` (`max_position_embeddings`).
    pub max_positions: Option<usize>,
    /// From `config.json` (`vocab_size`).
    pub vocab_size: Option<usize>,
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::invalid_model(path, format!("invalid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn get_usize(v: &Value, key: &str, path: &Path) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                Error::invalid_model(path, format!("{key} is not a non-negative integer"))
            }),
    }
}

/// Parses a sentence-transformers `1_Pooling/config.json`.
pub(crate) fn parse_pooling(v: &Value, path: &Path) -> Result<Pooling> {
    // Newer files may say `"pooling_mode": "mean"`.
    if let Some(mode) = v.get("pooling_mode").and_then(Value::as_str) {
        return mode
            .parse()
            .map_err(|_| Error::invalid_model(path, format!("unsupported pooling_mode {mode:?}")));
    }
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut chosen = Vec::new();
    if flag("pooling_mode_cls_token") {
        chosen.push(Pooling::Cls);
    }
    if flag("pooling_mode_mean_tokens") {
        chosen.push(Pooling::Mean);
    }
    if flag("pooling_mode_lasttoken") {
        chosen.push(Pooling::LastToken);
    }
    for unsupported in [
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
    ] {
        if flag(unsupported) {
            return Err(Error::invalid_model(
                path,
                format!("{unsupported} is not supported (cls, mean and last-token pooling are)"),
            ));
        }
    }
    match chosen.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::invalid_model(path, "no pooling mode is enabled")),
        _ => Err(Error::invalid_model(
            path,
            "several pooling modes are enabled; only one is supported",
        )),
    }
}

impl DirConfig {
    /// Reads whatever configuration files the directory has.
    pub(crate) fn read(dir: &Path) -> Result<DirConfig> {
        let mut out = DirConfig::default();

        let pooling_path = dir.join("1_Pooling").join("config.json");
        if let Some(v) = read_json(&pooling_path)? {
            out.pooling = Some(parse_pooling(&v, &pooling_path)?);
            out.dim = get_usize(&v, "word_embedding_dimension", &pooling_path)?;
        }

        let config_path = dir.join("config.json");
        if let Some(v) = read_json(&config_path)? {
            let hidden = get_usize(&v, "hidden_size", &config_path)?;
            if let (Some(d), Some(h)) = (out.dim, hidden)
                && d != h
            {
                return Err(Error::invalid_model(
                    &pooling_path,
                    format!(
                        "word_embedding_dimension {d} differs from hidden_size {h} in config.json"
                    ),
                ));
            }
            out.dim = out.dim.or(hidden);
            out.max_positions = get_usize(&v, "max_position_embeddings", &config_path)?;
            out.vocab_size = get_usize(&v, "vocab_size", &config_path)?;
        }

        let modules_path = dir.join("modules.json");
        if let Some(v) = read_json(&modules_path)? {
            let modules = v.as_array().ok_or_else(|| {
                Error::invalid_model(&modules_path, "expected a JSON array of modules")
            })?;
            let normalize = modules.iter().any(|m| {
                m.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with(".Normalize"))
            });
            out.normalize = Some(normalize);
        }

        let st_path = dir.join("sentence_bert_config.json");
        if let Some(v) = read_json(&st_path)? {
            out.max_seq_length = get_usize(&v, "max_seq_length", &st_path)?;
        }
        Ok(out)
    }
}

/// Finds the ONNX graph in a model directory: `model.onnx`, then `onnx/model.onnx`.
pub(crate) fn find_onnx(dir: &Path) -> Result<PathBuf> {
    let candidates = [dir.join("model.onnx"), dir.join("onnx").join("model.onnx")];
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(Error::MissingModelFile {
        path: candidates[0].clone(),
        what: "ONNX graph (model.onnx or onnx/model.onnx)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pooling_flags() {
        let p = Path::new("x");
        let mean = json!({"pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true});
        assert_eq!(parse_pooling(&mean, p).unwrap(), Pooling::Mean);
        let cls = json!({"pooling_mode_cls_token": true});
        assert_eq!(parse_pooling(&cls, p).unwrap(), Pooling::Cls);
        let last = json!({"pooling_mode_lasttoken": true});
        assert_eq!(parse_pooling(&last, p).unwrap(), Pooling::LastToken);
        let mode = json!({"pooling_mode": "cls"});
        assert_eq!(parse_pooling(&mode, p).unwrap(), Pooling::Cls);
        assert!(parse_pooling(&json!({"pooling_mode_max_tokens": true}), p).is_err());
        assert!(parse_pooling(&json!({}), p).is_err());
        let two = json!({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true});
        assert!(parse_pooling(&two, p).is_err());
    }

    #[test]
    fn pooling_names_round_trip() {
        for p in [Pooling::Cls, Pooling::Mean, Pooling::LastToken] {
            assert_eq!(p.as_str().parse::<Pooling>().unwrap(), p);
        }
        assert!("max".parse::<Pooling>().is_err());
    }

    #[test]
    fn reads_sentence_transformers_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        std::fs::write(
            dir.path().join("1_Pooling/config.json"),
            r#"{"word_embedding_dimension": 8, "pooling_mode_mean_tokens": true}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"hidden_size": 8, "max_position_embeddings": 64, "vocab_size": 100}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Normalize"}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sentence_bert_config.json"),
            r#"{"max_seq_length": 32}"#,
        )
        .unwrap();
        let c = DirConfig::read(dir.path()).unwrap();
        assert_eq!(c.pooling, Some(Pooling::Mean));
        assert_eq!(c.dim, Some(8));
        assert_eq!(c.normalize, Some(true));
        assert_eq!(c.max_seq_length, Some(32));
        assert_eq!(c.max_positions, Some(64));
        assert_eq!(c.vocab_size, Some(100));

        std::fs::write(dir.path().join("config.json"), r#"{"hidden_size": 16}"#).unwrap();
        assert!(matches!(
            DirConfig::read(dir.path()),
            Err(Error::InvalidModelFile { .. })
        ));
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        assert!(matches!(
            DirConfig::read(dir.path()),
            Err(Error::InvalidModelFile { .. })
        ));
    }

    #[test]
    fn empty_directory_has_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let c = DirConfig::read(dir.path()).unwrap();
        assert!(c.pooling.is_none() && c.dim.is_none() && c.normalize.is_none());
        assert!(matches!(
            find_onnx(dir.path()),
            Err(Error::MissingModelFile { .. })
        ));
    }
}
