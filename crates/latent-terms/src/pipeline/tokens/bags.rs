//! Stage 3: every text's tokens encoded into latents and summed into its bag.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use latent_terms_encoders::TokenStore;
use latent_terms_sae::{EncodeOptions, SaeEncoder, SparseCode};
use latent_terms_sparse_index::Query;
use serde::{Deserialize, Serialize};

use crate::bag::{ActivationMean, BagOptions, QueryWeights, bag_of_latents, binary};
use crate::error::{Error, Result};
use crate::pipeline::Progress;
use crate::pipeline::config::TokenSettings;
use crate::pipeline::latent_index::code_to_query;

/// Texts read from a token store and encoded into latents together.
const TEXTS_PER_BLOCK: usize = 64;

/// Bags of latent terms of the texts of a store (stage 3).
pub(crate) struct Bags {
    pub(crate) ids: Vec<String>,
    pub(crate) bags: Vec<SparseCode>,
    /// Mean non-zero token activation (the corpus's, from which `tf` is scaled).
    pub(crate) mean_activation: f64,
}

/// Stage 3: encodes every token of the texts of `store` (only `wanted` ones, when given)
/// into its top-k latents and sums each text's into its bag. `scale` divides activation
/// term frequencies; `None` uses the mean non-zero activation of these very texts (the
/// corpus), which is returned so queries can share it.
pub(crate) fn bags(
    sae: &SaeEncoder,
    store_path: &Path,
    wanted: Option<&HashSet<&str>>,
    t: &TokenSettings,
    scale: Option<f64>,
    progress: &dyn Progress,
) -> Result<Bags> {
    let store = TokenStore::open(store_path)?;
    if store.dim() != sae.d_in() {
        return Err(Error::Invalid(format!(
            "token store {} has dimension {}, the token SAE takes {}",
            store_path.display(),
            store.dim(),
            sae.d_in()
        )));
    }
    let k = t.k.unwrap_or(sae.weights().config.k).min(sae.d_sae());
    let dim = store.dim();
    let texts: Vec<usize> = (0..store.texts())
        .filter(|&i| wanted.is_none_or(|w| w.contains(store.ids()[i].as_str())))
        .collect();
    let mut ids = Vec::with_capacity(texts.len());
    let mut raw = Vec::with_capacity(texts.len());
    let mut mean = ActivationMean::default();
    let unscaled = BagOptions {
        tf: t.tf,
        scale: 1.0,
    };
    progress.begin("encoding token latents", Some(texts.len() as u64));
    for block in texts.chunks(TEXTS_PER_BLOCK) {
        let first = store.text_range(block[0]).start;
        let contiguous = block
            .windows(2)
            .all(|w| store.text_range(w[0]).end == store.text_range(w[1]).start);
        let (rows, offset) = if contiguous {
            let end = store.text_range(block[block.len() - 1]).end;
            (store.read_rows(first..end)?, first)
        } else {
            let mut rows = Vec::new();
            for &i in block {
                rows.extend(store.read_rows(store.text_range(i))?);
            }
            (rows, usize::MAX)
        };
        let codes = sae.encode(&rows, &EncodeOptions::top_k(k))?;
        let mut at = 0;
        for &i in block {
            let range = store.text_range(i);
            let start = if offset == usize::MAX {
                at
            } else {
                range.start - offset
            };
            let text_codes = &codes[start..start + range.len()];
            at += range.len();
            text_codes.iter().for_each(|c| mean.add(c));
            raw.push(bag_of_latents(text_codes, &unscaled));
            ids.push(store.ids()[i].clone());
        }
        progress.advance(block.len() as u64);
    }
    progress.end();
    let _ = dim;
    let mean_activation = scale.unwrap_or_else(|| mean.mean());
    if t.tf == crate::bag::TokenTf::Activation {
        let inv = 1.0 / mean_activation;
        for bag in &mut raw {
            bag.values
                .iter_mut()
                .for_each(|v| *v = (f64::from(*v) * inv) as f32);
        }
    }
    Ok(Bags {
        ids,
        bags: raw,
        mean_activation,
    })
}

/// What the token index stage keeps beside the index.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct IndexMeta {
    /// The corpus's mean non-zero activation (queries' tf is divided by it too).
    pub(super) mean_activation: f64,
    /// Latents left out of documents and queries (`tokens.stop_df`), sorted.
    pub(super) stop_latents: Vec<u32>,
}

/// Latents in more than `fraction` of the bags (the Zipf head: "stop latents"), sorted.
pub(crate) fn stop_latents(bags: &[SparseCode], fraction: f64) -> Vec<u32> {
    let mut df: HashMap<u32, usize> = HashMap::new();
    for bag in bags {
        for &l in &bag.indices {
            *df.entry(l).or_default() += 1;
        }
    }
    let limit = fraction * bags.len() as f64;
    let mut stop: Vec<u32> = df
        .into_iter()
        .filter(|&(_, n)| n as f64 > limit)
        .map(|(l, _)| l)
        .collect();
    stop.sort_unstable();
    stop
}

/// Removes the sorted `latents` from every bag.
pub(crate) fn remove_latents(bags: &mut [SparseCode], latents: &[u32]) {
    if latents.is_empty() {
        return;
    }
    for bag in bags {
        let keep: Vec<bool> = bag
            .indices
            .iter()
            .map(|l| latents.binary_search(l).is_err())
            .collect();
        let mut k = keep.iter();
        bag.indices.retain(|_| *k.next().unwrap_or(&true));
        let mut k = keep.iter();
        bag.values.retain(|_| *k.next().unwrap_or(&true));
    }
}

/// A bag as a query, weighted as the settings say.
pub(crate) fn to_query(bag: &SparseCode, weights: QueryWeights) -> Result<Query> {
    match weights {
        QueryWeights::Tf => code_to_query(bag, None),
        QueryWeights::Binary => code_to_query(&binary(bag), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_latents_are_the_ones_in_too_many_documents_and_are_removed() {
        let mut bags = vec![
            SparseCode::from_pairs(&[(1, 1.0), (2, 2.0), (3, 1.0)]),
            SparseCode::from_pairs(&[(1, 1.0), (3, 0.5)]),
            SparseCode::from_pairs(&[(1, 4.0), (4, 1.0)]),
        ];
        // Latent 1 is in 3/3 documents, latent 3 in 2/3.
        assert_eq!(stop_latents(&bags, 0.9), vec![1]);
        assert_eq!(stop_latents(&bags, 0.5), vec![1, 3]);
        remove_latents(&mut bags, &[1, 3]);
        assert_eq!(bags[0], SparseCode::from_pairs(&[(2, 2.0)]));
        assert!(bags[1].is_empty());
        assert_eq!(bags[2], SparseCode::from_pairs(&[(4, 1.0)]));
    }
}
