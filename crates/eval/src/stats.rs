//! Statistics the papers report: Spearman correlation between rankings and
//! the paired t-test between runs.

use crate::error::{Error, Result};
use crate::evaluate::Evaluation;
use crate::measures::Measure;
use crate::run::Run;

/// Mean and (population) standard deviation over queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    /// Mean over queries.
    pub mean: f64,
    /// Standard deviation over queries (divides by n).
    pub std: f64,
    /// Number of queries.
    pub n: usize,
}

impl MeanStd {
    fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(MeanStd {
            mean,
            std: var.sqrt(),
            n: values.len(),
        })
    }
}

/// Spearman rank correlation between two runs' rankings of the same queries.
///
/// For each query in both runs, the documents in both of the top-`depth`
/// rankings are ranked by each run's score (ties get their average rank) and
/// the Pearson correlation of the two rank vectors is taken. Queries with
/// fewer than two shared documents, or where one ranking is constant, are
/// skipped. Returns mean ± std over the remaining queries.
///
/// ```
/// use latent_terms_eval::{Run, stats::spearman};
/// let a = Run::from_str("q Q0 x 1 3 a\nq Q0 y 2 2 a\nq Q0 z 3 1 a\n")?;
/// let b = Run::from_str("q Q0 x 1 30 b\nq Q0 y 2 10 b\nq Q0 z 3 20 b\n")?;
/// let rho = spearman(&a, &b, 100).unwrap();
/// assert!((rho.mean - 0.5).abs() < 1e-12);
/// # Ok::<(), latent_terms_eval::Error>(())
/// ```
pub fn spearman(a: &Run, b: &Run, depth: usize) -> Option<MeanStd> {
    let mut per_query = Vec::new();
    for qa in a.iter() {
        let Some(qb) = b.get(qa.qid()) else { continue };
        let top_b: std::collections::HashMap<&str, f64> = qb.ranked().take(depth).collect();
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (doc, score) in qa.ranked().take(depth) {
            if let Some(&sb) = top_b.get(doc) {
                xs.push(score);
                ys.push(sb);
            }
        }
        if xs.len() < 2 {
            continue;
        }
        if let Some(rho) = pearson(&average_ranks(&xs), &average_ranks(&ys)) {
            per_query.push(rho);
        }
    }
    MeanStd::of(&per_query)
}

fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let avg = (start + end - 1) as f64 / 2.0 + 1.0;
        for &i in &order[start..end] {
            ranks[i] = avg;
        }
        start = end;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Result of a paired t-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// Mean of the per-query differences (a − b).
    pub mean_difference: f64,
    /// The t statistic.
    pub t: f64,
    /// Degrees of freedom (n − 1).
    pub degrees_of_freedom: usize,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Two-sided paired t-test between two evaluations on `measure`, over the
/// queries evaluated in both (as `scipy.stats.ttest_rel`).
///
/// Fails when fewer than two queries are shared or the measure is missing.
pub fn paired_t_test(a: &Evaluation, b: &Evaluation, measure: Measure) -> Result<TTest> {
    let b_values: std::collections::HashMap<&str, f64> = b.per_query(measure).collect();
    let diffs: Vec<f64> = a
        .per_query(measure)
        .filter_map(|(q, va)| b_values.get(q).map(|vb| va - vb))
        .collect();
    if diffs.len() < 2 {
        return Err(Error::InvalidInput(format!(
            "a paired t-test on {measure} needs at least two queries evaluated in both runs, found {}",
            diffs.len()
        )));
    }
    let n = diffs.len() as f64;
    let mean = diffs.iter().sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let df = diffs.len() - 1;
    let (t, p) = if var == 0.0 {
        if mean == 0.0 {
            (0.0, 1.0)
        } else {
            (f64::INFINITY.copysign(mean), 0.0)
        }
    } else {
        let t = mean / (var / n).sqrt();
        (t, student_t_two_sided_p(t, df as f64))
    };
    Ok(TTest {
        mean_difference: mean,
        t,
        degrees_of_freedom: df,
        p_value: p,
    })
}

/// P(|T| > |t|) for Student's t with `df` degrees of freedom:
/// I_{df/(df+t²)}(df/2, 1/2).
fn student_t_two_sided_p(t: f64, df: f64) -> f64 {
    regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// I_x(a, b) by Lentz's continued fraction (Numerical Recipes §6.4).
fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Evaluator, Qrels};

    #[test]
    fn t_distribution_matches_known_quantiles() {
        // Two-sided p for t = 2.228 with 10 df is 0.05; t = 1.96 with huge df ≈ 0.05.
        assert!((student_t_two_sided_p(2.228_138_85, 10.0) - 0.05).abs() < 1e-6);
        assert!((student_t_two_sided_p(1.959_963_98, 1e7) - 0.05).abs() < 1e-5);
        assert!((student_t_two_sided_p(0.0, 5.0) - 1.0).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn paired_t_test_matches_scipy() {
        // scipy.stats.ttest_rel([0.5,1,0,1],[0,0.5,0,0.25]) -> t=2.781517949836592, p=0.06890350891195708
        let qrels =
            Qrels::from_str("1 0 a 1\n2 0 a 1\n3 0 a 1\n4 0 a 1\n4 0 b 1\n4 0 c 1\n4 0 d 1\n")
                .unwrap();
        let run_a = Run::from_str(
            "1 Q0 x 1 2 a\n1 Q0 a 2 1 a\n2 Q0 a 1 1 a\n3 Q0 x 1 1 a\n4 Q0 a 1 4 a\n4 Q0 b 2 3 a\n4 Q0 c 3 2 a\n4 Q0 d 4 1 a\n",
        )
        .unwrap();
        let run_b = Run::from_str(
            "1 Q0 x 1 2 b\n2 Q0 x 1 2 b\n2 Q0 a 2 1 b\n3 Q0 x 1 1 b\n4 Q0 a 1 4 b\n4 Q0 x 2 3 b\n",
        )
        .unwrap();
        let ev = Evaluator::new([Measure::Map]);
        let (a, b) = (ev.evaluate(&qrels, &run_a), ev.evaluate(&qrels, &run_b));
        let t = paired_t_test(&a, &b, Measure::Map).unwrap();
        assert!((t.mean_difference - 0.4375).abs() < 1e-12);
        assert!((t.t - 2.781_517_949_836_592).abs() < 1e-9, "{t:?}");
        assert!((t.p_value - 0.068_903_508_911_957).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn spearman_of_identical_and_reversed_rankings() {
        let a = Run::from_str("q Q0 x 1 3 a\nq Q0 y 2 2 a\nq Q0 z 3 1 a\n").unwrap();
        let r = Run::from_str("q Q0 x 1 1 b\nq Q0 y 2 2 b\nq Q0 z 3 3 b\n").unwrap();
        assert_eq!(spearman(&a, &a, 10).unwrap().mean, 1.0);
        assert_eq!(spearman(&a, &r, 10).unwrap().mean, -1.0);
    }
}
