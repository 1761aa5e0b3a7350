//! Scoring functions: lexical BM25, BM25 over latent activations, CL-SR and dot product.
//!
//! Every scorer factors a document's score as a sum over the query terms it contains:
//!
//! ```text
//! contribution(t, d) = (query_factor(q_t) * idf(t)) * doc_factor(w_td, len_d, avg_len)
//! score(q, d)        = sum of contributions in increasing term-id order, in f32
//! ```
//!
//! The factorisation is what makes exact dynamic pruning possible: the search engine asks
//! [`Scorer::doc_factor_upper_bound`] for a bound over a block of postings from the block's
//! largest weight and smallest document length, and multiplies it by the per-query term
//! factor. Fixing the multiplication and summation order makes the exhaustive path, the
//! pruned path and [`explain`](crate::Index::explain) produce bit-identical scores.

use crate::error::{IndexError, Result};

/// The per-document length a scorer normalises by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DocLength {
    /// Sum of the document's stored weights: the token count for term-frequency vectors,
    /// ‖z‖₁ for non-negative activations.
    SumOfWeights,
    /// Number of terms the document keeps (non-zero weights).
    TermCount,
    /// Σ round(weight × scale): the length stock BM25 sees after quantizing activations.
    /// Computed from the postings on first use and cached per scale.
    SumOfQuantizedWeights {
        /// Quantization scale.
        scale: f32,
    },
}

/// Collection-level statistics, global over all live documents of all segments.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CollectionStats {
    /// Number of live documents that have at least one term (Lucene's `docCount`).
    pub num_docs: u64,
    /// Mean [`DocLength`] over those documents.
    pub avg_doc_length: f32,
}

/// Statistics of one term, global over all live documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TermStats {
    /// Number of live documents containing the term.
    pub doc_freq: u64,
}

/// A scoring function. Implement it to add a scorer; the exhaustive and pruned search
/// paths, explanations and statistics all go through these methods.
///
/// Contract (required for exact pruning):
/// * `doc_factor` returns a finite value `>= 0` for weights `> 0`;
/// * `doc_factor_upper_bound(max_w, min_len, avg)` is `>=` `doc_factor(w, len, avg)` for
///   every `w <= max_w` and `len >= min_len`. The default implementation evaluates
///   `doc_factor(max_w, min_len, avg)`, which is correct when `doc_factor` is non-decreasing
///   in the weight and non-increasing in the length, as it is for every scorer here.
///   The engine adds a relative slack of 2⁻¹⁶ to each bound to absorb f32 rounding.
///
/// `query_factor * idf` may be negative (CL-SR's idf variants can be); pruning treats such
/// terms as contributing at most 0, which keeps results exact.
///
/// ```
/// use latent_terms_sparse_index::{CollectionStats, DocLength, Scorer, TermStats};
///
/// /// Binary independence: every matching term counts idf, weights ignored.
/// struct Binary;
/// impl Scorer for Binary {
///     fn doc_length(&self) -> DocLength { DocLength::TermCount }
///     fn idf(&self, t: &TermStats, c: &CollectionStats) -> f32 {
///         ((c.num_docs as f64 + 1.0) / (t.doc_freq as f64 + 1.0)).ln() as f32
///     }
///     fn query_factor(&self, _query_weight: f32) -> f32 { 1.0 }
///     fn doc_factor(&self, _weight: f32, _len: f32, _avg: f32) -> f32 { 1.0 }
/// }
/// ```
pub trait Scorer {
    /// Which document length [`doc_factor`](Self::doc_factor) receives.
    fn doc_length(&self) -> DocLength;
    /// Collection weight of a term (1 for scorers without idf).
    fn idf(&self, term: &TermStats, collection: &CollectionStats) -> f32;
    /// Query-side transform of a query weight (BM25: the query term frequency itself).
    fn query_factor(&self, query_weight: f32) -> f32;
    /// Document-side factor of one posting.
    fn doc_factor(&self, weight: f32, doc_length: f32, avg_doc_length: f32) -> f32;
    /// Upper bound of [`doc_factor`](Self::doc_factor) over postings with weight
    /// `<= max_weight` in documents with length `>= min_doc_length`.
    fn doc_factor_upper_bound(
        &self,
        max_weight: f32,
        min_doc_length: f32,
        avg_doc_length: f32,
    ) -> f32 {
        self.doc_factor(max_weight, min_doc_length, avg_doc_length)
    }
}

impl<S: Scorer + ?Sized> Scorer for &S {
    fn doc_length(&self) -> DocLength {
        (**self).doc_length()
    }
    fn idf(&self, term: &TermStats, collection: &CollectionStats) -> f32 {
        (**self).idf(term, collection)
    }
    fn query_factor(&self, query_weight: f32) -> f32 {
        (**self).query_factor(query_weight)
    }
    fn doc_factor(&self, weight: f32, doc_length: f32, avg_doc_length: f32) -> f32 {
        (**self).doc_factor(weight, doc_length, avg_doc_length)
    }
    fn doc_factor_upper_bound(&self, max_weight: f32, min_len: f32, avg: f32) -> f32 {
        (**self).doc_factor_upper_bound(max_weight, min_len, avg)
    }
}

/// `len / avg`, with an empty collection (avg 0) treated as "every document is average"
/// rather than dividing by zero.
fn length_ratio(doc_length: f32, avg_doc_length: f32) -> f32 {
    if avg_doc_length > 0.0 {
        doc_length / avg_doc_length
    } else {
        1.0
    }
}

/// `x.round()` for `x >= 0` (halves away from zero), without the libm call `f32::round`
/// compiles to on baseline x86-64; this sits in BM25's per-posting loop.
#[inline]
pub(crate) fn round_non_negative(x: f32) -> f32 {
    // Every f32 at or above 2^23 is already an integer; below, x + 0.5 is exact in f64 and
    // truncation is floor for non-negative values.
    if x >= 8_388_608.0 {
        x
    } else {
        (f64::from(x) + 0.5) as i64 as f32
    }
}

fn check(name: &'static str, value: f32, ok: bool, reason: &'static str) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(IndexError::InvalidParameter {
            name,
            value: f64::from(value),
            reason,
        })
    }
}

/// How BM25 reads a stored weight as a term frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TermFrequency {
    /// The stored weight itself: the integer tf of a lexical vector, or a real-valued
    /// activation used directly as tf.
    Raw,
    /// `round(weight × scale)`, with document length Σ round(weight × scale): what stock
    /// BM25 (Lucene/Pyserini) computes over activations quantized into integer
    /// pseudo-term counts. A posting whose tf rounds to 0 contributes 0.
    Quantized {
        /// Multiplier applied before rounding (> 0).
        scale: f32,
    },
}

/// Parameters of [`Bm25`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    /// Term-frequency saturation, `>= 0`. Lucene default 0.9.
    pub k1: f32,
    /// Length normalisation strength in `[0, 1]`. Lucene default 0.4.
    pub b: f32,
    /// How stored weights become term frequencies.
    pub tf: TermFrequency,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Self {
            k1: 0.9,
            b: 0.4,
            tf: TermFrequency::Raw,
        }
    }
}

/// BM25, Lucene variant (Anserini/Pyserini defaults k1 = 0.9, b = 0.4):
///
/// ```text
/// idf(t)  = ln(1 + (N − df + 0.5) / (df + 0.5))
/// s(q, d) = Σ_t qtf_t · idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·dl/avgdl))
/// ```
///
/// with `dl` the token count (sum of tfs). The query term frequency is the query weight,
/// so a repeated query word counts twice. Unlike Lucene, document lengths are exact rather
/// than stored in Lucene's lossy one-byte norm, so scores can differ from Lucene's in the
/// last digits and, rarely, in ties.
///
/// ```
/// use latent_terms_sparse_index::{Bm25, Bm25Params, TermFrequency};
///
/// let lexical = Bm25::default();
/// let latent = Bm25::new(Bm25Params { tf: TermFrequency::Quantized { scale: 100.0 }, ..Default::default() })?;
/// # let _ = (lexical, latent);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bm25 {
    params: Bm25Params,
}

impl Bm25 {
    /// Validates the parameters.
    pub fn new(params: Bm25Params) -> Result<Self> {
        check(
            "k1",
            params.k1,
            params.k1 >= 0.0,
            "k1 must be finite and >= 0",
        )?;
        check(
            "b",
            params.b,
            (0.0..=1.0).contains(&params.b),
            "b must be in [0, 1]",
        )?;
        if let TermFrequency::Quantized { scale } = params.tf {
            check("scale", scale, scale > 0.0, "scale must be finite and > 0")?;
        }
        Ok(Self { params })
    }

    /// The parameters.
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    fn tf(&self, weight: f32) -> f32 {
        match self.params.tf {
            TermFrequency::Raw => weight,
            TermFrequency::Quantized { scale } => round_non_negative(weight * scale),
        }
    }
}

impl Scorer for Bm25 {
    fn doc_length(&self) -> DocLength {
        match self.params.tf {
            TermFrequency::Raw => DocLength::SumOfWeights,
            TermFrequency::Quantized { scale } => DocLength::SumOfQuantizedWeights { scale },
        }
    }

    fn idf(&self, term: &TermStats, collection: &CollectionStats) -> f32 {
        let n = collection.num_docs as f64;
        let df = term.doc_freq as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
    }

    fn query_factor(&self, query_weight: f32) -> f32 {
        query_weight
    }

    fn doc_factor(&self, weight: f32, doc_length: f32, avg_doc_length: f32) -> f32 {
        let tf = self.tf(weight);
        if tf <= 0.0 {
            return 0.0;
        }
        let Bm25Params { k1, b, .. } = self.params;
        let norm = k1 * (1.0 - b + b * length_ratio(doc_length, avg_doc_length));
        tf * (k1 + 1.0) / (tf + norm)
    }
}

/// Which published form of CL-SR to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClSrVariant {
    /// Park et al. 2025, Eq. 5–6: idf = ln(|D| / (1 + df)), document length ‖z_d‖₁.
    Paper,
    /// The authors' released code: idf = ln((N − df + 0.5) / (df + 0.5)) (negative for
    /// terms in more than half the documents) and document length = number of latents kept.
    ReleasedCode,
}

/// Parameters of [`ClSr`].
///
/// Defaults k1 = 0.6, b = 0.75, k2 = 1.5 come from this project's prototype, where they
/// were a good middle ground across datasets; the paper tunes them per dataset (its
/// Table 10 sweeps b up to 3.0), so treat them as a starting point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClSrParams {
    /// Document activation saturation, `>= 0`.
    pub k1: f32,
    /// Length normalisation strength, `>= 0`. Values above 1 need `length_norm_floor`.
    pub b: f32,
    /// Query activation saturation, `>= 0`.
    pub k2: f32,
    /// Paper formulas or the released code's.
    pub variant: ClSrVariant,
    /// Lower clamp on the length normaliser `1 − b + b·len/avg`. With `b > 1` the
    /// normaliser is negative for documents shorter than `(b − 1)/b` of the average, which
    /// would make `f_d` negative or infinite; a positive floor keeps `f_d` in `(0, 1 + k1]`.
    /// Not in the paper, so `None` by default; required when `b > 1`.
    pub length_norm_floor: Option<f32>,
}

impl Default for ClSrParams {
    fn default() -> Self {
        Self {
            k1: 0.6,
            b: 0.75,
            k2: 1.5,
            variant: ClSrVariant::Paper,
            length_norm_floor: None,
        }
    }
}

/// CL-SR, Park et al. 2025 (Eq. 5–6), BM25 over sparse-autoencoder activations:
///
/// ```text
/// s(q, d) = Σ_{i ∈ q∩d} f_q(q, i) · f_d(d, i) · idf(i)
/// idf(i)  = ln(|D| / (1 + df_i))
/// f_q     = z_q (1 + k2) / (z_q + k2)
/// f_d     = z_d (1 + k1) / (z_d + k1 (1 − b + b ‖z_d‖₁ / avg_D ‖z‖₁))
/// ```
///
/// See [`ClSrVariant`] for the released-code variant and
/// [`ClSrParams::length_norm_floor`] for `b > 1`.
///
/// ```
/// use latent_terms_sparse_index::{ClSr, ClSrParams, ClSrVariant};
///
/// let paper = ClSr::default();
/// let code = ClSr::new(ClSrParams { variant: ClSrVariant::ReleasedCode, ..Default::default() })?;
/// let steep = ClSr::new(ClSrParams { b: 3.0, length_norm_floor: Some(0.1), ..Default::default() })?;
/// assert!(ClSr::new(ClSrParams { b: 3.0, ..Default::default() }).is_err());
/// # let _ = (paper, code, steep);
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClSr {
    params: ClSrParams,
}

impl ClSr {
    /// Validates the parameters.
    pub fn new(params: ClSrParams) -> Result<Self> {
        check(
            "k1",
            params.k1,
            params.k1 >= 0.0,
            "k1 must be finite and >= 0",
        )?;
        check(
            "k2",
            params.k2,
            params.k2 >= 0.0,
            "k2 must be finite and >= 0",
        )?;
        check("b", params.b, params.b >= 0.0, "b must be finite and >= 0")?;
        match params.length_norm_floor {
            Some(floor) => check(
                "length_norm_floor",
                floor,
                floor > 0.0,
                "the floor must be finite and > 0",
            )?,
            None if params.b > 1.0 => {
                return Err(IndexError::InvalidParameter {
                    name: "b",
                    value: f64::from(params.b),
                    reason: "b > 1 makes the length normaliser negative for short documents; set length_norm_floor (e.g. 0.1)",
                });
            }
            None => {}
        }
        Ok(Self { params })
    }

    /// The parameters.
    pub fn params(&self) -> ClSrParams {
        self.params
    }
}

impl Scorer for ClSr {
    fn doc_length(&self) -> DocLength {
        match self.params.variant {
            ClSrVariant::Paper => DocLength::SumOfWeights,
            ClSrVariant::ReleasedCode => DocLength::TermCount,
        }
    }

    fn idf(&self, term: &TermStats, collection: &CollectionStats) -> f32 {
        let n = collection.num_docs as f64;
        let df = term.doc_freq as f64;
        match self.params.variant {
            ClSrVariant::Paper => (n / (1.0 + df)).ln() as f32,
            ClSrVariant::ReleasedCode => ((n - df + 0.5) / (df + 0.5)).ln() as f32,
        }
    }

    fn query_factor(&self, query_weight: f32) -> f32 {
        let k2 = self.params.k2;
        query_weight * (1.0 + k2) / (query_weight + k2)
    }

    fn doc_factor(&self, weight: f32, doc_length: f32, avg_doc_length: f32) -> f32 {
        let ClSrParams { k1, b, .. } = self.params;
        let mut norm = 1.0 - b + b * length_ratio(doc_length, avg_doc_length);
        if let Some(floor) = self.params.length_norm_floor {
            norm = norm.max(floor);
        }
        weight * (1.0 + k1) / (weight + k1 * norm)
    }
}

/// Dot product `Σ q_i · d_i`: the paper's "w/o IDF" ablation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DotProduct;

impl Scorer for DotProduct {
    fn doc_length(&self) -> DocLength {
        DocLength::SumOfWeights
    }
    fn idf(&self, _term: &TermStats, _collection: &CollectionStats) -> f32 {
        1.0
    }
    fn query_factor(&self, query_weight: f32) -> f32 {
        query_weight
    }
    fn doc_factor(&self, weight: f32, _doc_length: f32, _avg_doc_length: f32) -> f32 {
        weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: u64, avg: f32) -> CollectionStats {
        CollectionStats {
            num_docs: n,
            avg_doc_length: avg,
        }
    }

    #[test]
    fn bm25_matches_lucene_formula() {
        let s = Bm25::default();
        let idf = s.idf(&TermStats { doc_freq: 10 }, &stats(1000, 50.0));
        let expected = (1.0f64 + (1000.0 - 10.0 + 0.5) / 10.5).ln() as f32;
        assert_eq!(idf, expected);
        let f = s.doc_factor(3.0, 100.0, 50.0);
        let want = 3.0 * 1.9 / (3.0 + 0.9 * (1.0 - 0.4 + 0.4 * 2.0));
        assert!((f - want).abs() < 1e-6);
        assert_eq!(s.query_factor(2.0), 2.0);
    }

    #[test]
    fn bm25_quantized_tf_rounds_and_changes_length() {
        let s = Bm25::new(Bm25Params {
            tf: TermFrequency::Quantized { scale: 10.0 },
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            s.doc_length(),
            DocLength::SumOfQuantizedWeights { scale: 10.0 }
        );
        assert_eq!(s.doc_factor(0.04, 5.0, 5.0), 0.0);
        let raw = Bm25::default();
        assert_eq!(s.doc_factor(0.26, 7.0, 5.0), raw.doc_factor(3.0, 7.0, 5.0));
    }

    #[test]
    fn clsr_paper_and_released_code() {
        let paper = ClSr::default();
        assert_eq!(paper.doc_length(), DocLength::SumOfWeights);
        let idf = paper.idf(&TermStats { doc_freq: 9 }, &stats(100, 1.0));
        assert!((idf - (10.0f32).ln()).abs() < 1e-6);
        let fq = paper.query_factor(1.0);
        assert!((fq - 2.5 / 2.5).abs() < 1e-6);
        let fd = paper.doc_factor(2.0, 3.0, 3.0);
        assert!((fd - 2.0 * 1.6 / (2.0 + 0.6)).abs() < 1e-6);

        let code = ClSr::new(ClSrParams {
            variant: ClSrVariant::ReleasedCode,
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(code.doc_length(), DocLength::TermCount);
        assert!(code.idf(&TermStats { doc_freq: 90 }, &stats(100, 1.0)) < 0.0);
    }

    #[test]
    fn clsr_floor_keeps_factor_positive_for_large_b() {
        let s = ClSr::new(ClSrParams {
            b: 3.0,
            length_norm_floor: Some(0.1),
            ..Default::default()
        })
        .expect("valid");
        let short = s.doc_factor(0.5, 0.1, 10.0);
        assert!(short > 0.0 && short <= 1.6);
        assert!(s.doc_factor(0.5, 0.1, 10.0) >= s.doc_factor(0.5, 20.0, 10.0));
    }

    #[test]
    fn fast_rounding_matches_f32_round() {
        let mut x = 0f32;
        while x < 1e9 {
            assert_eq!(round_non_negative(x), x.round(), "{x}");
            for d in [0.49999997f32, 0.5, 0.50000006, 1.5, 2.5] {
                assert_eq!(round_non_negative(x + d), (x + d).round(), "{}", x + d);
            }
            x = x * 1.37 + 0.01;
        }
        for x in [
            0.0f32,
            0.49999997,
            0.5,
            8_388_607.5,
            8_388_608.0,
            16_777_217.0,
            f32::MAX,
        ] {
            assert_eq!(round_non_negative(x), x.round(), "{x}");
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        for p in [
            Bm25Params {
                k1: -1.0,
                ..Default::default()
            },
            Bm25Params {
                b: 1.5,
                ..Default::default()
            },
            Bm25Params {
                tf: TermFrequency::Quantized { scale: 0.0 },
                ..Default::default()
            },
        ] {
            assert!(matches!(
                Bm25::new(p),
                Err(IndexError::InvalidParameter { .. })
            ));
        }
        assert!(
            ClSr::new(ClSrParams {
                k2: f32::NAN,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            ClSr::new(ClSrParams {
                length_norm_floor: Some(0.0),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn empty_collection_does_not_divide_by_zero() {
        assert!(Bm25::default().doc_factor(1.0, 0.0, 0.0).is_finite());
        assert!(ClSr::default().doc_factor(1.0, 0.0, 0.0).is_finite());
    }
}
