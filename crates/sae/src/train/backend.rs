//! The burn backends a trainer can run on, chosen at run time among those compiled in.

use burn::tensor::Device;

use crate::error::{Error, Result};

/// A burn backend, enabled by the cargo feature of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// burn-flex: pure-Rust CPU backend (feature `flex`).
    Flex,
    /// burn-ndarray: CPU backend (feature `ndarray`; deprecated upstream).
    NdArray,
    /// CUDA GPU with this index (feature `cuda`).
    Cuda(usize),
}

impl Backend {
    /// The default: the faster CPU backend compiled in (flex, per `scripts/bench-sae`).
    pub fn default_cpu() -> Result<Self> {
        if cfg!(feature = "flex") {
            Ok(Backend::Flex)
        } else if cfg!(feature = "ndarray") {
            Ok(Backend::NdArray)
        } else {
            Err(Error::InvalidConfig(
                "no CPU backend compiled in: enable the `flex` or `ndarray` feature".into(),
            ))
        }
    }

    /// The backends compiled into this build, by name.
    pub fn available() -> Vec<&'static str> {
        let mut v = Vec::new();
        if cfg!(feature = "flex") {
            v.push("flex");
        }
        if cfg!(feature = "ndarray") {
            v.push("ndarray");
        }
        if cfg!(feature = "cuda") {
            v.push("cuda");
        }
        v
    }

    /// A burn device for this backend.
    pub fn device(self) -> Result<Device> {
        let missing = |name: &str| {
            Error::InvalidConfig(format!(
                "backend {name} is not compiled in (available: {}); enable its cargo feature",
                Self::available().join(", ")
            ))
        };
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // burn-ndarray is deprecated upstream but named in our package list
            Backend::NdArray => Ok(Device::ndarray()),
            #[cfg(feature = "cuda")]
            Backend::Cuda(i) => Ok(Device::cuda(i)),
            #[allow(unreachable_patterns)]
            other => Err(missing(&format!("{other:?}"))),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flex" => Ok(Backend::Flex),
            "ndarray" => Ok(Backend::NdArray),
            "cuda" => Ok(Backend::Cuda(0)),
            s if s.starts_with("cuda:") => s[5..]
                .parse()
                .map(Backend::Cuda)
                .map_err(|_| Error::InvalidConfig(format!("bad CUDA device {s:?}; use cuda:N"))),
            other => Err(Error::InvalidConfig(format!(
                "unknown backend {other:?}; expected flex, ndarray or cuda[:N]"
            ))),
        }
    }
}
