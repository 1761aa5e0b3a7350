//! Finding and loading the ONNX Runtime shared library (ort's `load-dynamic`).
//!
//! ort allows one ONNX Runtime environment per process, so the first successful
//! load is kept for the life of the process and shared by every encoder. A failed
//! load is not remembered: after running `scripts/setup-assets` a later attempt can
//! succeed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use crate::error::{Error, Result};

/// The library file name searched for on Linux (`libonnxruntime.so`).
pub const ORT_LIBRARY_NAME: &str = "libonnxruntime.so";

/// The environment variable that names the ONNX Runtime library to load.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

struct Loaded {
    env: Environment,
    path: PathBuf,
}

static RUNTIME: Mutex<Option<Loaded>> = Mutex::new(None);

/// Where the library may be, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// A file that must exist (explicit setting, `ORT_DYLIB_PATH`, or the assets layout).
    File(PathBuf),
    /// A bare name left to the system's dynamic loader (`LD_LIBRARY_PATH`, ld.so.cache).
    System(PathBuf),
}

/// Resolves the library to load.
///
/// Order: the explicit path given to the builder; `ORT_DYLIB_PATH`; the assets
/// layout written by `scripts/setup-assets` (`DIR/onnxruntime/libonnxruntime.so`
/// where the model is `DIR/models/NAME`); finally `libonnxruntime.so` through the
/// system loader.
pub(crate) fn resolve(explicit: Option<&Path>, model_dir: Option<&Path>) -> Result<Candidate> {
    if let Some(p) = explicit {
        return existing(p, "the path given to the encoder builder");
    }
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV).filter(|v| !v.is_empty()) {
        return existing(Path::new(&p), ORT_DYLIB_ENV);
    }
    if let Some(dir) = model_dir
        && let Some(assets) = dir.parent().and_then(Path::parent)
    {
        let p = assets.join("onnxruntime").join(ORT_LIBRARY_NAME);
        if p.is_file() {
            return Ok(Candidate::File(absolute(&p)));
        }
    }
    Ok(Candidate::System(PathBuf::from(ORT_LIBRARY_NAME)))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn existing(p: &Path, source: &str) -> Result<Candidate> {
    if p.is_file() {
        Ok(Candidate::File(absolute(p)))
    } else {
        Err(Error::OrtLibraryNotFound {
            looked_for: format!("{} from {source}, which does not exist", p.display()),
        })
    }
}

/// Returns the process-wide ONNX Runtime environment, loading the library on first use.
///
/// Returns the environment and the path of the library actually in use (which is
/// the first one loaded in this process, whatever `candidate` says later).
pub(crate) fn environment(candidate: &Candidate) -> Result<(Environment, PathBuf)> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(loaded) = guard.as_ref() {
        return Ok((loaded.env.clone(), loaded.path.clone()));
    }
    let path = match candidate {
        Candidate::File(p) | Candidate::System(p) => p.clone(),
    };
    let builder = ort::init_from(&path).map_err(|e| match candidate {
        Candidate::System(_) => Error::OrtLibraryNotFound {
            looked_for: format!(
                "{ORT_DYLIB_ENV} (unset), DIR/onnxruntime next to DIR/models, and {ORT_LIBRARY_NAME} \
                 on the system library path ({e})"
            ),
        },
        Candidate::File(_) => Error::OrtLoad {
            path: path.clone(),
            message: e.to_string(),
        },
    })?;
    let env = builder
        .with_name("latent-terms")
        .build()
        .map_err(|e| Error::ort("creating the ONNX Runtime environment", e))?;
    *guard = Some(Loaded {
        env: env.clone(),
        path: path.clone(),
    });
    Ok((env, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_must_exist() {
        let err = resolve(Some(Path::new("/nonexistent/libonnxruntime.so")), None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::OrtLibraryNotFound { .. }));
        assert!(msg.contains("scripts/setup-assets"), "{msg}");
        assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
    }

    #[test]
    fn assets_layout_is_found_next_to_models() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("models").join("m");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::create_dir_all(dir.path().join("onnxruntime")).unwrap();
        let lib = dir.path().join("onnxruntime").join(ORT_LIBRARY_NAME);
        std::fs::write(&lib, b"").unwrap();
        // ORT_DYLIB_PATH takes precedence when set; only check the layout when it is not.
        if std::env::var_os(ORT_DYLIB_ENV).is_none() {
            assert_eq!(
                resolve(None, Some(&model)).unwrap(),
                Candidate::File(absolute(&lib))
            );
        }
        let explicit = resolve(Some(&lib), Some(&model)).unwrap();
        assert_eq!(explicit, Candidate::File(absolute(&lib)));
    }
}
