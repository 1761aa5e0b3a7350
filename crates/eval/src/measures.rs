//! Measure names in trec_eval's spelling, and their computation for one query.

use std::fmt;

use crate::error::{Error, Result};

/// One evaluation measure, with its cutoff where it has one.
///
/// Variants are declared in trec_eval's output order, so sorting a list of
/// measures reproduces the order in which trec_eval prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Measure {
    /// Number of queries evaluated (aggregate only).
    NumQ,
    /// Number of documents retrieved (summed in the aggregate).
    NumRet,
    /// Number of relevant documents (summed in the aggregate).
    NumRel,
    /// Number of relevant documents retrieved (summed in the aggregate).
    NumRelRet,
    /// Mean average precision.
    Map,
    /// Precision after R documents, R = number of relevant documents.
    Rprec,
    /// Reciprocal rank of the first relevant document (MRR@k with `-M k`).
    RecipRank,
    /// Precision at a cutoff.
    P(u32),
    /// Recall at a cutoff.
    Recall(u32),
    /// nDCG over the whole ranking, gain = relevance level.
    Ndcg,
    /// nDCG at a cutoff.
    NdcgCut(u32),
    /// Average precision at a cutoff.
    MapCut(u32),
    /// 1 if a relevant document is in the top k, else 0.
    Success(u32),
}

const STANDARD_CUTOFFS: &[u32] = &[5, 10, 15, 20, 30, 100, 200, 500, 1000];
const SUCCESS_CUTOFFS: &[u32] = &[1, 5, 10];

/// Base names accepted by [`Measure::parse_list`], in trec_eval's order.
pub const SUPPORTED: &[&str] = &[
    "num_q",
    "num_ret",
    "num_rel",
    "num_rel_ret",
    "map",
    "Rprec",
    "recip_rank",
    "P",
    "recall",
    "ndcg",
    "ndcg_cut",
    "map_cut",
    "success",
];

/// trec_eval's `official` nickname restricted to the measures supported here.
const OFFICIAL: &[&str] = &[
    "num_q",
    "num_ret",
    "num_rel",
    "num_rel_ret",
    "map",
    "Rprec",
    "recip_rank",
    "P",
];

impl Measure {
    /// Parses one `-m` argument in trec_eval's syntax: a base name, optional
    /// comma-separated cutoffs after a dot (`P.5,10`), or a nickname
    /// (`all_trec`, `official`). Returns the measures it stands for.
    ///
    /// `all_trec` expands to every measure this crate supports (trec_eval's
    /// `all_trec` also includes measures such as `bpref` that are not
    /// implemented here).
    ///
    /// ```
    /// use latent_terms_eval::Measure;
    /// let ms = Measure::parse("P.5,10")?;
    /// assert_eq!(ms, [Measure::P(5), Measure::P(10)]);
    /// assert_eq!(ms[0].to_string(), "P_5");
    /// # Ok::<(), latent_terms_eval::Error>(())
    /// ```
    pub fn parse(spec: &str) -> Result<Vec<Measure>> {
        match spec {
            "all_trec" => return expand(SUPPORTED),
            "official" => return expand(OFFICIAL),
            _ => {}
        }
        let (base, params) = match spec.split_once('.') {
            Some((b, p)) => (b, Some(p)),
            None => (spec, None),
        };
        let cutoffs = |defaults: &[u32]| -> Result<Vec<u32>> {
            match params {
                None => Ok(defaults.to_vec()),
                Some(p) => parse_cutoffs(base, p),
            }
        };
        let single = |m: Measure| -> Result<Vec<Measure>> {
            match params {
                None => Ok(vec![m]),
                Some(p) => Err(Error::InvalidMeasureParams {
                    measure: base.to_owned(),
                    params: p.to_owned(),
                }),
            }
        };
        match base {
            "num_q" => single(Measure::NumQ),
            "num_ret" => single(Measure::NumRet),
            "num_rel" => single(Measure::NumRel),
            "num_rel_ret" => single(Measure::NumRelRet),
            "map" => single(Measure::Map),
            "Rprec" => single(Measure::Rprec),
            "recip_rank" => single(Measure::RecipRank),
            "ndcg" => single(Measure::Ndcg),
            "P" => Ok(cutoffs(STANDARD_CUTOFFS)?
                .into_iter()
                .map(Measure::P)
                .collect()),
            "recall" => Ok(cutoffs(STANDARD_CUTOFFS)?
                .into_iter()
                .map(Measure::Recall)
                .collect()),
            "ndcg_cut" => Ok(cutoffs(STANDARD_CUTOFFS)?
                .into_iter()
                .map(Measure::NdcgCut)
                .collect()),
            "map_cut" => Ok(cutoffs(STANDARD_CUTOFFS)?
                .into_iter()
                .map(Measure::MapCut)
                .collect()),
            "success" => Ok(cutoffs(SUCCESS_CUTOFFS)?
                .into_iter()
                .map(Measure::Success)
                .collect()),
            _ => Err(Error::UnknownMeasure {
                name: spec.to_owned(),
                supported: SUPPORTED.join(", ") + ", all_trec, official",
            }),
        }
    }

    /// Parses several `-m` arguments into trec_eval's output order.
    ///
    /// As in trec_eval, the first argument that names a measure decides its
    /// cutoffs: `-m P.5 -m P.10` gives only `P_5`, and `-m all_trec -m P.5`
    /// gives P at the default cutoffs.
    pub fn parse_list<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Measure>> {
        let mut families_seen = Vec::new();
        let mut all = Vec::new();
        for spec in specs {
            let expanded = Measure::parse(spec.as_ref())?;
            let mut new_families = Vec::new();
            for m in expanded {
                let family = m.family();
                if families_seen.contains(&family) {
                    continue;
                }
                if !new_families.contains(&family) {
                    new_families.push(family);
                }
                all.push(m);
            }
            families_seen.extend(new_families);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// The measure's base name, shared by all its cutoffs (`P` for `P_5`).
    pub fn base_name(self) -> &'static str {
        match self {
            Measure::NumQ => "num_q",
            Measure::NumRet => "num_ret",
            Measure::NumRel => "num_rel",
            Measure::NumRelRet => "num_rel_ret",
            Measure::Map => "map",
            Measure::Rprec => "Rprec",
            Measure::RecipRank => "recip_rank",
            Measure::P(_) => "P",
            Measure::Recall(_) => "recall",
            Measure::Ndcg => "ndcg",
            Measure::NdcgCut(_) => "ndcg_cut",
            Measure::MapCut(_) => "map_cut",
            Measure::Success(_) => "success",
        }
    }

    fn family(self) -> &'static str {
        self.base_name()
    }

    /// True for the counting measures that trec_eval prints as integers and
    /// sums (rather than averages) over queries.
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Measure::NumQ | Measure::NumRet | Measure::NumRel | Measure::NumRelRet
        )
    }
}

fn expand(names: &[&str]) -> Result<Vec<Measure>> {
    let mut out = Vec::new();
    for name in names {
        out.extend(Measure::parse(name)?);
    }
    Ok(out)
}

fn parse_cutoffs(measure: &str, params: &str) -> Result<Vec<u32>> {
    let invalid = || Error::InvalidMeasureParams {
        measure: measure.to_owned(),
        params: params.to_owned(),
    };
    let mut cutoffs = params
        .split(',')
        .map(|c| {
            c.trim()
                .parse::<u32>()
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(invalid)
        })
        .collect::<Result<Vec<u32>>>()?;
    // trec_eval sorts cutoffs and prints them in increasing order.
    cutoffs.sort_unstable();
    cutoffs.dedup();
    Ok(cutoffs)
}

impl fmt::Display for Measure {
    /// The name trec_eval prints, e.g. `ndcg_cut_10`, `P_5`, `recip_rank`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::NumQ => f.write_str("num_q"),
            Measure::NumRet => f.write_str("num_ret"),
            Measure::NumRel => f.write_str("num_rel"),
            Measure::NumRelRet => f.write_str("num_rel_ret"),
            Measure::Map => f.write_str("map"),
            Measure::Rprec => f.write_str("Rprec"),
            Measure::RecipRank => f.write_str("recip_rank"),
            Measure::P(k) => write!(f, "P_{k}"),
            Measure::Recall(k) => write!(f, "recall_{k}"),
            Measure::Ndcg => f.write_str("ndcg"),
            Measure::NdcgCut(k) => write!(f, "ndcg_cut_{k}"),
            Measure::MapCut(k) => write!(f, "map_cut_{k}"),
            Measure::Success(k) => write!(f, "success_{k}"),
        }
    }
}

/// What one query's ranking looks like to the measures: the relevance of each
/// retrieved document in rank order, and the judged relevance levels.
pub(crate) struct JudgedRanking<'a> {
    /// Relevance per rank; `None` for unjudged documents and for judgments
    /// below zero (trec_eval's "in pool but unjudged").
    pub ranked: &'a [Option<u32>],
    /// Non-negative judgment levels of every judged document, sorted descending.
    pub judged_levels_desc: &'a [u32],
    /// Minimum level counted as relevant (trec_eval's `-l`).
    pub relevance_level: i64,
}

impl JudgedRanking<'_> {
    fn is_relevant(&self, rel: Option<u32>) -> bool {
        rel.is_some_and(|r| i64::from(r) >= self.relevance_level)
    }

    fn num_rel(&self) -> usize {
        self.judged_levels_desc
            .iter()
            .filter(|&&r| i64::from(r) >= self.relevance_level)
            .count()
    }

    /// Computes `measures` into `out` (same length), with trec_eval's semantics.
    pub(crate) fn compute(&self, measures: &[Measure], out: &mut [f64]) {
        let num_rel = self.num_rel();
        let num_ret = self.ranked.len();
        // rel_at[i] = number of relevant documents in the top i+1.
        let mut rel_so_far = 0usize;
        let mut first_rel: Option<usize> = None;
        let mut ap_terms: Vec<f64> = Vec::new();
        let mut rel_cum: Vec<u32> = Vec::with_capacity(num_ret);
        for (i, &rel) in self.ranked.iter().enumerate() {
            if self.is_relevant(rel) {
                rel_so_far += 1;
                first_rel.get_or_insert(i);
                ap_terms.push(rel_so_far as f64 / (i + 1) as f64);
            } else {
                ap_terms.push(0.0);
            }
            rel_cum.push(rel_so_far as u32);
        }
        let rel_in_top = |k: usize| -> usize {
            if k == 0 || num_ret == 0 {
                0
            } else {
                rel_cum[k.min(num_ret) - 1] as usize
            }
        };
        let ratio = |num: f64, den: usize| if den > 0 { num / den as f64 } else { 0.0 };
        for (m, slot) in measures.iter().zip(out.iter_mut()) {
            *slot = match *m {
                Measure::NumQ => 1.0,
                Measure::NumRet => num_ret as f64,
                Measure::NumRel => num_rel as f64,
                Measure::NumRelRet => rel_so_far as f64,
                Measure::Map => ratio(ap_terms.iter().sum(), num_rel),
                Measure::MapCut(k) => {
                    let k = (k as usize).min(num_ret);
                    ratio(ap_terms[..k].iter().sum(), num_rel)
                }
                Measure::Rprec => ratio(rel_in_top(num_rel) as f64, num_rel),
                Measure::RecipRank => first_rel.map_or(0.0, |i| 1.0 / (i + 1) as f64),
                Measure::P(k) => rel_in_top(k as usize) as f64 / f64::from(k),
                Measure::Recall(k) => ratio(rel_in_top(k as usize) as f64, num_rel),
                Measure::Success(k) => {
                    if rel_in_top(k as usize) > 0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                Measure::Ndcg => self.ndcg(usize::MAX),
                Measure::NdcgCut(k) => self.ndcg(k as usize),
            };
        }
    }

    /// nDCG with gain = relevance level and discount log2(rank + 1), over the
    /// top `depth` of both the ranking and the ideal ranking.
    fn ndcg(&self, depth: usize) -> f64 {
        let dcg: f64 = self
            .ranked
            .iter()
            .take(depth)
            .enumerate()
            .filter_map(|(i, rel)| match rel {
                Some(g) if *g > 0 => Some(f64::from(*g) / ((i + 2) as f64).log2()),
                _ => None,
            })
            .sum();
        let ideal: f64 = self
            .judged_levels_desc
            .iter()
            .take(depth)
            .take_while(|&&g| g > 0)
            .enumerate()
            .map(|(i, &g)| f64::from(g) / ((i + 2) as f64).log2())
            .sum();
        if ideal > 0.0 { dcg / ideal } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trec_eval_syntax() {
        assert_eq!(
            Measure::parse_list(&["recall.100,10", "P.5", "map", "ndcg_cut.10"]).unwrap(),
            [
                Measure::Map,
                Measure::P(5),
                Measure::Recall(10),
                Measure::Recall(100),
                Measure::NdcgCut(10)
            ]
        );
        assert_eq!(Measure::parse("P").unwrap().len(), 9);
        // trec_eval: the first -m naming a measure wins.
        assert_eq!(
            Measure::parse_list(&["P.5", "P.10"]).unwrap(),
            [Measure::P(5)]
        );
        assert_eq!(
            Measure::parse_list(&["all_trec", "P.5"])
                .unwrap()
                .iter()
                .filter(|m| m.base_name() == "P")
                .count(),
            9
        );
        assert_eq!(Measure::parse("success").unwrap().len(), 3);
        assert!(matches!(
            Measure::parse("bpref"),
            Err(Error::UnknownMeasure { .. })
        ));
        assert!(matches!(
            Measure::parse("P.x"),
            Err(Error::InvalidMeasureParams { .. })
        ));
        assert!(matches!(
            Measure::parse("P.0"),
            Err(Error::InvalidMeasureParams { .. })
        ));
        assert!(matches!(
            Measure::parse("map.5"),
            Err(Error::InvalidMeasureParams { .. })
        ));
    }

    #[test]
    fn prints_trec_eval_names() {
        let names: Vec<String> = Measure::parse_list(&["all_trec"])
            .unwrap()
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert!(names.contains(&"ndcg_cut_10".to_owned()));
        assert!(names.contains(&"success_1".to_owned()));
        assert_eq!(names[0], "num_q");
    }

    fn compute(ranked: &[Option<u32>], judged: &[u32], level: i64, m: Measure) -> f64 {
        let mut judged = judged.to_vec();
        judged.sort_unstable_by(|a, b| b.cmp(a));
        let r = JudgedRanking {
            ranked,
            judged_levels_desc: &judged,
            relevance_level: level,
        };
        let mut out = [0.0];
        r.compute(&[m], &mut out);
        out[0]
    }

    #[test]
    fn hand_computed_values() {
        // Relevant at ranks 1 and 3 of 4; 3 relevant in total.
        let ranked = [Some(1), None, Some(2), Some(0)];
        let judged = [1, 2, 1, 0];
        assert!(
            (compute(&ranked, &judged, 1, Measure::Map) - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12
        );
        assert_eq!(compute(&ranked, &judged, 1, Measure::P(2)), 0.5);
        assert_eq!(compute(&ranked, &judged, 1, Measure::RecipRank), 1.0);
        assert_eq!(compute(&ranked, &judged, 2, Measure::RecipRank), 1.0 / 3.0);
        assert_eq!(compute(&ranked, &judged, 1, Measure::Rprec), 2.0 / 3.0);
        assert_eq!(
            compute(&ranked, &judged, 1, Measure::Recall(1000)),
            2.0 / 3.0
        );
        let dcg = 1.0 + 2.0 / 4f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((compute(&ranked, &judged, 1, Measure::Ndcg) - dcg / idcg).abs() < 1e-12);
        assert_eq!(compute(&[], &judged, 1, Measure::Map), 0.0);
        assert_eq!(compute(&ranked, &[0, 0], 1, Measure::Ndcg), 0.0);
    }
}
