//! Run fusion for hybrid retrieval: reciprocal-rank fusion and normalised
//! linear combination.

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::run::Run;

/// How scores are normalised per query before a linear combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// (s − min) / (max − min); a constant ranking maps to 1.
    MinMax,
    /// (s − mean) / std; a constant ranking maps to 0.
    ZScore,
    /// Scores are used as they are.
    None,
}

/// Reciprocal-rank fusion (Cormack et al. 2009): score(d) = Σ_runs 1 / (k + rank(d)),
/// ranks from 1 in each run's trec_eval order, over each run's top `depth`.
/// The conventional `k` is 60.
///
/// ```
/// use latent_terms_eval::{Run, fusion::reciprocal_rank_fusion};
/// let a = Run::from_str("q Q0 x 1 2 a\nq Q0 y 2 1 a\n")?;
/// let b = Run::from_str("q Q0 y 1 9 b\nq Q0 z 2 8 b\n")?;
/// let fused = reciprocal_rank_fusion(&[&a, &b], 60.0, 1000, "rrf")?;
/// let top: Vec<_> = fused.get("q").unwrap().ranked().map(|(d, _)| d).collect();
/// assert_eq!(top, ["y", "x", "z"]);
/// # Ok::<(), latent_terms_eval::Error>(())
/// ```
pub fn reciprocal_rank_fusion(runs: &[&Run], k: f64, depth: usize, tag: &str) -> Result<Run> {
    if !(k.is_finite() && k >= 0.0) {
        return Err(Error::InvalidInput(format!(
            "the RRF constant k must be a finite non-negative number, got {k}"
        )));
    }
    fuse(runs, tag, |_, ranked| {
        ranked
            .iter()
            .take(depth)
            .enumerate()
            .map(|(i, &(d, _))| (d, 1.0 / (k + (i + 1) as f64)))
            .collect()
    })
}

/// Weighted sum of per-query normalised scores over each run's top `depth`;
/// a document missing from a run contributes 0 from that run. `weights` has
/// one entry per run.
pub fn linear_fusion(
    runs: &[&Run],
    weights: &[f64],
    normalization: Normalization,
    depth: usize,
    tag: &str,
) -> Result<Run> {
    if let Some(w) = weights.iter().find(|w| !w.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "fusion weight {w} is not finite"
        )));
    }
    if weights.len() != runs.len() {
        return Err(Error::InvalidInput(format!(
            "linear fusion needs one weight per run: {} runs, {} weights",
            runs.len(),
            weights.len()
        )));
    }
    fuse(runs, tag, |run_idx, ranked| {
        let top = &ranked[..ranked.len().min(depth)];
        let scores: Vec<f64> = top.iter().map(|&(_, s)| s).collect();
        let normalised = normalise(&scores, normalization);
        top.iter()
            .zip(normalised)
            .map(|(&(d, _), s)| (d, weights[run_idx] * s))
            .collect()
    })
}

fn normalise(scores: &[f64], how: Normalization) -> Vec<f64> {
    if scores.is_empty() {
        return Vec::new();
    }
    match how {
        Normalization::None => scores.to_vec(),
        Normalization::MinMax => {
            let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let range = max - min;
            scores
                .iter()
                .map(|s| if range > 0.0 { (s - min) / range } else { 1.0 })
                .collect()
        }
        Normalization::ZScore => {
            let n = scores.len() as f64;
            let mean = scores.iter().sum::<f64>() / n;
            let std = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
            scores
                .iter()
                .map(|s| if std > 0.0 { (s - mean) / std } else { 0.0 })
                .collect()
        }
    }
}

/// Sums per-run contributions per query and document. `contributions` gets
/// the run index and that run's ranking of the query in trec_eval order.
fn fuse<'r>(
    runs: &[&'r Run],
    tag: &str,
    contributions: impl Fn(usize, &[(&'r str, f64)]) -> Vec<(&'r str, f64)>,
) -> Result<Run> {
    let qids: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.iter().map(|q| q.qid()))
        .collect();
    let mut fused = Run::new(tag);
    for qid in qids {
        let mut totals: HashMap<&str, f64> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let Some(query) = run.get(qid) else { continue };
            let ranked: Vec<(&str, f64)> = query.ranked().collect();
            for (doc, s) in contributions(i, &ranked) {
                let slot = totals.entry(doc).or_insert_with(|| {
                    order.push(doc);
                    0.0
                });
                *slot += s;
            }
        }
        fused.extend_query(qid, order.iter().map(|d| (*d, totals[d])))?;
    }
    Ok(fused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_fusion_combines_normalised_scores() {
        let a = Run::from_str("q Q0 x 1 10 a\nq Q0 y 2 0 a\n").unwrap();
        let b = Run::from_str("q Q0 y 1 5 b\nq Q0 z 2 1 b\n").unwrap();
        let fused =
            linear_fusion(&[&a, &b], &[0.5, 0.5], Normalization::MinMax, 100, "lin").unwrap();
        let q = fused.get("q").unwrap();
        let scores: HashMap<&str, f64> = q.iter().collect();
        assert_eq!(scores["x"], 0.5);
        assert_eq!(scores["y"], 0.5);
        assert_eq!(scores["z"], 0.0);
        assert!(linear_fusion(&[&a], &[1.0, 2.0], Normalization::None, 10, "x").is_err());
    }

    #[test]
    fn z_score_of_constant_ranking_is_zero() {
        assert_eq!(normalise(&[3.0, 3.0], Normalization::ZScore), [0.0, 0.0]);
        assert_eq!(normalise(&[3.0, 3.0], Normalization::MinMax), [1.0, 1.0]);
    }
}
