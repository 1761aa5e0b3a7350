//! Bags of latent terms: the latents that fire on a text's tokens, aggregated into one
//! sparse vector with real term frequencies (the *Latent Terms* paper's document).
//!
//! Every token of a text is encoded by the SAE into a few active latents. A latent's term
//! frequency in the text is either the sum of its activations over the tokens
//! ([`TokenTf::Activation`], divided by a collection constant so that one "typical"
//! firing counts about 1), or the number of tokens it fires on ([`TokenTf::Count`]).
//! BM25 then sees a document length `Σ tf` and saturates repeated firings like repeated
//! words.
//!
//! ```
//! use latent_terms::bag::{ActivationMean, BagOptions, TokenTf, bag_of_latents};
//! use latent_terms::sae::SparseCode;
//!
//! // Two tokens: latent 3 fires on both, latent 7 on the second only.
//! let tokens = [
//!     SparseCode::from_pairs(&[(3, 2.0)]),
//!     SparseCode::from_pairs(&[(3, 1.0), (7, 3.0)]),
//! ];
//! let mut mean = ActivationMean::default();
//! tokens.iter().for_each(|t| mean.add(t));
//! assert_eq!(mean.mean(), 2.0);
//!
//! let by_activation = bag_of_latents(&tokens, &BagOptions { tf: TokenTf::Activation, scale: mean.mean() });
//! assert_eq!(by_activation.indices, vec![3, 7]);
//! assert_eq!(by_activation.values, vec![1.5, 1.5]); // (2 + 1) / 2 and 3 / 2
//!
//! let by_count = bag_of_latents(&tokens, &BagOptions { tf: TokenTf::Count, scale: 1.0 });
//! assert_eq!(by_count.values, vec![2.0, 1.0]);
//! ```

use std::collections::BTreeMap;

use latent_terms_sae::SparseCode;
use serde::{Deserialize, Serialize};

/// How a latent's term frequency in a text is counted from its tokens' codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenTf {
    /// Sum of the latent's activations over the text's tokens, divided by
    /// [`BagOptions::scale`].
    #[default]
    Activation,
    /// Number of tokens the latent fires on.
    Count,
}

/// How a query's bag weighs its latents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryWeights {
    /// The query's own term frequencies (BM25's query term frequency).
    #[default]
    Tf,
    /// Every latent of the query weighs 1.
    Binary,
}

/// How a text's token codes become one bag.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BagOptions {
    /// The term-frequency rule.
    pub tf: TokenTf,
    /// Activations are divided by this (the collection's mean non-zero activation, from
    /// [`ActivationMean`]); ignored by [`TokenTf::Count`]. Must be positive.
    pub scale: f64,
}

/// Aggregates one text's token codes into its bag of latent terms, sorted by latent id.
/// Latents whose term frequency is not positive are left out.
pub fn bag_of_latents(tokens: &[SparseCode], options: &BagOptions) -> SparseCode {
    let mut tf: BTreeMap<u32, f64> = BTreeMap::new();
    for code in tokens {
        for (latent, value) in code.iter() {
            let add = match options.tf {
                TokenTf::Activation => f64::from(value),
                TokenTf::Count => 1.0,
            };
            *tf.entry(latent).or_default() += add;
        }
    }
    let scale = match options.tf {
        TokenTf::Activation if options.scale > 0.0 && options.scale.is_finite() => options.scale,
        _ => 1.0,
    };
    let (indices, values) = tf
        .into_iter()
        .map(|(l, v)| (l, (v / scale) as f32))
        .filter(|&(_, v)| v > 0.0 && v.is_finite())
        .unzip();
    SparseCode { indices, values }
}

/// The same query as binary weights: every latent of the bag weighs 1.
pub fn binary(bag: &SparseCode) -> SparseCode {
    SparseCode {
        indices: bag.indices.clone(),
        values: vec![1.0; bag.len()],
    }
}

/// Running mean of the non-zero activations of many codes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ActivationMean {
    sum: f64,
    count: u64,
}

impl ActivationMean {
    /// Adds every non-zero activation of `code`.
    pub fn add(&mut self, code: &SparseCode) {
        for &v in &code.values {
            if v != 0.0 && v.is_finite() {
                self.sum += f64::from(v);
                self.count += 1;
            }
        }
    }

    /// The mean (1 when nothing was added, so dividing by it is harmless).
    pub fn mean(&self) -> f64 {
        if self.count == 0 || self.sum <= 0.0 {
            1.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// Activations added.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The `n` latents of a bag with the largest `tf · idf`, sorted by latent id (static
/// pruning). `idf(latent)` must come from the *full* index: recomputing idf and lengths
/// on the pruned index loses most of the gain.
pub fn top_by_tf_idf(bag: &SparseCode, n: usize, idf: impl Fn(u32) -> f32) -> SparseCode {
    if bag.len() <= n {
        return bag.clone();
    }
    let mut scored: Vec<(u32, f32, f32)> = bag.iter().map(|(l, v)| (l, v, v * idf(l))).collect();
    scored.sort_unstable_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    scored.truncate(n);
    scored.sort_unstable_by_key(|s| s.0);
    SparseCode {
        indices: scored.iter().map(|s| s.0).collect(),
        values: scored.iter().map(|s| s.1).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> Vec<SparseCode> {
        vec![
            SparseCode::from_pairs(&[(1, 0.5), (4, 2.0)]),
            SparseCode::from_pairs(&[(1, 1.5)]),
            SparseCode::default(),
            SparseCode::from_pairs(&[(4, 1.0), (9, 0.25)]),
        ]
    }

    #[test]
    fn activation_tf_sums_and_divides_by_the_scale() {
        let bag = bag_of_latents(
            &codes(),
            &BagOptions {
                tf: TokenTf::Activation,
                scale: 0.5,
            },
        );
        assert_eq!(bag.indices, vec![1, 4, 9]);
        assert_eq!(bag.values, vec![4.0, 6.0, 0.5]);
    }

    #[test]
    fn count_tf_counts_tokens_and_ignores_the_scale() {
        let bag = bag_of_latents(
            &codes(),
            &BagOptions {
                tf: TokenTf::Count,
                scale: 123.0,
            },
        );
        assert_eq!(bag.values, vec![2.0, 2.0, 1.0]);
        assert_eq!(binary(&bag).values, vec![1.0; 3]);
    }

    #[test]
    fn empty_text_gives_an_empty_bag_and_bad_scales_count_as_one() {
        let none = bag_of_latents(
            &[],
            &BagOptions {
                tf: TokenTf::Activation,
                scale: 2.0,
            },
        );
        assert!(none.is_empty());
        for scale in [0.0, -1.0, f64::NAN] {
            let bag = bag_of_latents(
                &codes()[..1],
                &BagOptions {
                    tf: TokenTf::Activation,
                    scale,
                },
            );
            assert_eq!(bag.values, vec![0.5, 2.0]);
        }
    }

    #[test]
    fn mean_of_non_zero_activations() {
        let mut m = ActivationMean::default();
        assert_eq!(m.mean(), 1.0);
        codes().iter().for_each(|c| m.add(c));
        assert_eq!(m.count(), 5);
        assert!((m.mean() - 5.25 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn static_pruning_keeps_the_largest_tf_idf() {
        let bag = SparseCode::from_pairs(&[(1, 4.0), (2, 1.0), (3, 2.0)]);
        // idf favours latent 2: 1·10 > 4·1 > 2·1.
        let idf = |l: u32| if l == 2 { 10.0 } else { 1.0 };
        let top = top_by_tf_idf(&bag, 2, idf);
        assert_eq!(top.indices, vec![1, 2]);
        assert_eq!(top.values, vec![4.0, 1.0]);
        assert_eq!(top_by_tf_idf(&bag, 5, idf), bag);
    }
}
