//! Zipf analysis: document frequency by rank of latent terms against lexical terms on
//! the same corpus, with fitted exponents and a log-log plot.

use std::path::Path;

use latent_terms_sparse_index::IndexStats;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::plot::{LineChart, Scale};

/// Rank-frequency summary of one vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZipfCurve {
    /// Terms with document frequency > 0.
    pub terms_used: u64,
    /// Fitted `s` of `ln df(r) = c − s · ln r` over every rank (`None` below two terms).
    pub exponent: Option<f64>,
    /// Fitted over the top ranks only (the first 1,000 or all, whichever is fewer).
    pub exponent_head: Option<f64>,
    /// Largest document frequency, as a fraction of the documents.
    pub max_df_fraction: f64,
    /// Document frequency at ranks 1, 10, 100, 1000 (where present).
    pub df_at: Vec<(usize, u64)>,
}

/// The two curves of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZipfReport {
    /// Lexical terms (analysed words) of the corpus.
    pub lexical: ZipfCurve,
    /// Latent terms of the same corpus.
    pub latent: ZipfCurve,
}

/// Least-squares Zipf exponent of a decreasing rank-frequency list.
pub fn fit_exponent(dfs: &[u64]) -> Option<f64> {
    let points: Vec<(f64, f64)> = dfs
        .iter()
        .enumerate()
        .filter(|&(_, &df)| df > 0)
        .map(|(r, &df)| (((r + 1) as f64).ln(), (df as f64).ln()))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in &points {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    (sxx > 0.0).then(|| -sxy / sxx)
}

/// Summarises one index's statistics.
pub fn curve(stats: &IndexStats) -> ZipfCurve {
    let dfs = stats.rank_frequency();
    let head = &dfs[..dfs.len().min(1000)];
    ZipfCurve {
        terms_used: stats.vocabulary_used,
        exponent: fit_exponent(&dfs),
        exponent_head: fit_exponent(head),
        max_df_fraction: match (dfs.first(), stats.num_docs) {
            (Some(&df), n) if n > 0 => df as f64 / n as f64,
            _ => 0.0,
        },
        df_at: [1usize, 10, 100, 1000]
            .into_iter()
            .filter_map(|r| dfs.get(r - 1).map(|&df| (r, df)))
            .collect(),
    }
}

/// Both curves, and the log-log PNG at `png` (document frequency against rank).
pub fn zipf_report(
    lexical: &IndexStats,
    latent: &IndexStats,
    png: Option<&Path>,
) -> Result<ZipfReport> {
    let report = ZipfReport {
        lexical: curve(lexical),
        latent: curve(latent),
    };
    if let Some(path) = png {
        let series = |name: &str, stats: &IndexStats, s: Option<f64>| {
            let dfs = stats.rank_frequency();
            let xs = (1..=dfs.len()).map(|r| r as f64).collect();
            let ys = dfs.iter().map(|&d| d as f64).collect();
            let label = match s {
                Some(s) => format!("{name} (s = {s:.2})"),
                None => name.to_owned(),
            };
            (label, xs, ys)
        };
        LineChart {
            title: "Document frequency by rank",
            x_label: "rank",
            y_label: "document frequency",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            series: vec![
                series("lexical terms", lexical, report.lexical.exponent),
                series("latent terms", latent, report.latent.exponent),
            ],
        }
        .save(path)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_power_law_fits_its_exponent() {
        let dfs: Vec<u64> = (1..=200u64)
            .map(|r| (1_000_000.0 / (r as f64).powf(1.3)).round() as u64)
            .collect();
        let s = fit_exponent(&dfs).unwrap();
        assert!((s - 1.3).abs() < 0.01, "{s}");
        assert_eq!(fit_exponent(&[5]), None);
        assert_eq!(fit_exponent(&[3, 3, 3]), Some(-0.0));
    }
}
