//! One query's values: the data every measure reads, the rank- and set-based
//! measures, and the dispatch over a list of measures.
//!
//! Each formula follows trec_eval 9.0.8's `m_<measure>.c`, including the order
//! of floating-point operations, so that values agree to the last bit.

use super::Measure;

/// trec_eval's relevance value for a retrieved document that is not in the
/// qrels (`RELVALUE_NONPOOL`).
pub(crate) const NONPOOL: i64 = -1;
/// trec_eval's relevance value for a retrieved document judged below zero,
/// "in the pool but unjudged" (`RELVALUE_UNJUDGED`).
pub(crate) const UNJUDGED: i64 = -2;

/// trec_eval's `MIN_GEO_MEAN`: the floor of values averaged geometrically.
pub(crate) const MIN_GEO_MEAN: f64 = 0.00001;

/// trec_eval's `INFAP_EPSILON`.
const INFAP_EPSILON: f64 = 0.00001;

/// Number of documents shown by `relstring`.
const RELSTRING_LEN: usize = 10;

/// What one query's ranking looks like to the measures (trec_eval's `RES_RELS`).
pub(crate) struct JudgedRanking<'a> {
    /// Relevance per rank: the judged level (>= 0), [`NONPOOL`] or [`UNJUDGED`].
    pub(crate) ranked: &'a [i64],
    /// Levels (>= 0) of every judged document of the query, retrieved or
    /// not, sorted descending: the ideal ranking's gains.
    pub(crate) judged_levels_desc: &'a [i64],
    /// Minimum level counted as relevant (trec_eval's `-l`).
    pub(crate) relevance_level: i64,
}

/// Buffers reused from query to query, so that evaluating allocates nothing
/// per query once they have grown to the longest ranking.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    /// `rel_cum[i]`: relevant documents in the top `i + 1`.
    rel_cum: Vec<u32>,
    /// `ap_cum[i]`: sum of precision at each relevant rank in the top `i + 1`.
    ap_cum: Vec<f64>,
}

/// The counts trec_eval's `te_form_res_rels` derives for a query.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub(super) num_ret: i64,
    pub(super) num_rel: i64,
    /// Judged documents retrieved at or above the relevance level.
    pub(super) num_rel_ret: i64,
    pub(super) num_nonpool: i64,
    pub(super) num_unjudged: i64,
}

impl JudgedRanking<'_> {
    pub(super) fn is_relevant(&self, rel: i64) -> bool {
        rel >= self.relevance_level
    }

    pub(super) fn counts(&self) -> Counts {
        let mut counts = Counts {
            num_ret: self.ranked.len() as i64,
            num_rel: self
                .judged_levels_desc
                .iter()
                .filter(|&&level| self.is_relevant(level))
                .count() as i64,
            num_rel_ret: 0,
            num_nonpool: 0,
            num_unjudged: 0,
        };
        for &rel in self.ranked {
            match rel {
                NONPOOL => counts.num_nonpool += 1,
                UNJUDGED => counts.num_unjudged += 1,
                rel if self.is_relevant(rel) => counts.num_rel_ret += 1,
                _ => {}
            }
        }
        counts
    }

    /// Computes `measures` into `out` (same length), with trec_eval's semantics.
    ///
    /// `measures` is normally sorted (as [`Measure::parse_list`] returns
    /// them): the recall levels of `iprec_at_recall` and the multiples of
    /// `Rprec_mult` are then computed in one pass each.
    pub(crate) fn compute(&self, measures: &[Measure], out: &mut [f64], workspace: &mut Workspace) {
        debug_assert_eq!(measures.len(), out.len());
        if measures.iter().any(|m| m.uses_prefix_sums()) {
            workspace.fill(self);
        } else {
            workspace.clear();
        }
        let query = Query {
            ranking: self,
            counts: self.counts(),
            rel_cum: &workspace.rel_cum,
            ap_cum: &workspace.ap_cum,
        };
        let mut j = 0;
        while j < measures.len() {
            let family = measures[j].base_name();
            let run = match measures[j] {
                Measure::IprecAtRecall(_) | Measure::RprecMult(_) => measures[j..]
                    .iter()
                    .take_while(|m| m.base_name() == family)
                    .count(),
                _ => 1,
            };
            query.compute_family(&measures[j..j + run], &mut out[j..j + run]);
            j += run;
        }
    }

    /// trec_eval's `relstring`: one character per document of the top 10.
    pub(crate) fn relstring(&self) -> String {
        self.ranked
            .iter()
            .take(RELSTRING_LEN)
            .map(|&rel| match rel {
                10.. => '>',
                0..=9 => char::from(b'0' + rel as u8),
                NONPOOL => '-',
                UNJUDGED => '.',
                _ => '<',
            })
            .collect()
    }

    /// bpref (`m_bpref.c`). The number of judged nonrelevant documents is
    /// counted over the judged levels below the relevance level.
    fn bpref(&self, num_rel: i64) -> f64 {
        let level = self.relevance_level;
        let num_nonrel = self
            .judged_levels_desc
            .iter()
            .filter(|&&l| l < level)
            .count() as i64;
        let mut nonrel_so_far = 0i64;
        let mut bpref = 0.0;
        for &rel in self.ranked {
            if rel == NONPOOL || rel == UNJUDGED {
                continue;
            }
            if (0..level).contains(&rel) {
                nonrel_so_far += 1;
            } else if nonrel_so_far > 0 {
                bpref += 1.0 - nonrel_so_far.min(num_rel) as f64 / num_nonrel.min(num_rel) as f64;
            } else {
                bpref += 1.0;
            }
        }
        if num_rel > 0 {
            bpref / num_rel as f64
        } else {
            bpref
        }
    }

    /// Inferred AP (`m_infap.c`).
    fn inf_ap(&self, num_rel: i64) -> f64 {
        let level = self.relevance_level;
        let (mut rel_so_far, mut nonrel_so_far, mut unjudged_so_far) = (0i64, 0i64, 0i64);
        let mut inf_ap = 0.0;
        for (j, &rel) in self.ranked.iter().enumerate() {
            if rel == NONPOOL {
                continue;
            }
            if rel == UNJUDGED {
                unjudged_so_far += 1;
                continue;
            }
            if (0..level).contains(&rel) {
                nonrel_so_far += 1;
                continue;
            }
            rel_so_far += 1;
            if j == 0 {
                inf_ap += 1.0;
            } else {
                let fj = j as f64;
                let judged_above = (rel_so_far - 1 + nonrel_so_far + unjudged_so_far) as f64;
                inf_ap += 1.0 / (fj + 1.0)
                    + (fj / (fj + 1.0))
                        * (judged_above / fj)
                        * (((rel_so_far - 1) as f64 + INFAP_EPSILON)
                            / ((rel_so_far - 1 + nonrel_so_far) as f64 + 2.0 * INFAP_EPSILON));
            }
        }
        if num_rel > 0 {
            inf_ap / num_rel as f64
        } else {
            inf_ap
        }
    }

    /// Binary G (`m_binG.c`).
    fn bin_g(&self, num_rel: i64) -> f64 {
        let mut rel_so_far = 0i64;
        let mut sum = 0.0;
        for (i, &rel) in self.ranked.iter().enumerate() {
            if self.is_relevant(rel) {
                rel_so_far += 1;
                sum += 1.0 / ((3 + i as i64 - rel_so_far) as f64).log2();
            }
        }
        if rel_so_far > 0 {
            sum / num_rel as f64
        } else {
            0.0
        }
    }
}

impl Workspace {
    fn clear(&mut self) {
        self.rel_cum.clear();
        self.ap_cum.clear();
    }

    fn fill(&mut self, ranking: &JudgedRanking<'_>) {
        self.clear();
        let mut rel_so_far = 0u32;
        let mut ap_sum = 0.0;
        for (i, &rel) in ranking.ranked.iter().enumerate() {
            if ranking.is_relevant(rel) {
                rel_so_far += 1;
                ap_sum += f64::from(rel_so_far) / (i + 1) as f64;
            }
            self.rel_cum.push(rel_so_far);
            self.ap_cum.push(ap_sum);
        }
    }
}

/// One query, ready for any measure.
pub(super) struct Query<'a> {
    pub(super) ranking: &'a JudgedRanking<'a>,
    pub(super) counts: Counts,
    /// Empty unless a measure that reads it was requested.
    rel_cum: &'a [u32],
    ap_cum: &'a [f64],
}

/// `num / den`, or 0 when `den` is 0 (trec_eval leaves the value at 0).
fn ratio_or_zero(num: f64, den: i64) -> f64 {
    if den > 0 { num / den as f64 } else { 0.0 }
}

impl Query<'_> {
    /// Number of relevant documents in the top `k`.
    fn rel_in_top(&self, k: usize) -> i64 {
        match k.min(self.rel_cum.len()) {
            0 => 0,
            k => i64::from(self.rel_cum[k - 1]),
        }
    }

    /// Sum of precision at each relevant rank within the top `k`.
    fn ap_sum_in_top(&self, k: usize) -> f64 {
        match k.min(self.ap_cum.len()) {
            0 => 0.0,
            k => self.ap_cum[k - 1],
        }
    }

    /// Computes consecutive measures of one family (a single measure for
    /// families without a shared pass).
    fn compute_family(&self, measures: &[Measure], out: &mut [f64]) {
        match measures[0] {
            Measure::IprecAtRecall(_) | Measure::RprecMult(_) => {
                out.fill(0.0);
                let ratio = |i: usize| match measures[i] {
                    Measure::IprecAtRecall(r) | Measure::RprecMult(r) => r.get(),
                    _ => f64::NAN,
                };
                let mut store = |i: usize, v: f64| out[i] = v;
                if matches!(measures[0], Measure::IprecAtRecall(_)) {
                    self.interpolated_precision(measures.len(), ratio, &mut store);
                } else {
                    self.precision_at_r_multiples(measures.len(), ratio, &mut store);
                }
            }
            _ => {
                for (m, slot) in measures.iter().zip(out) {
                    *slot = self.value(*m);
                }
            }
        }
    }

    fn value(&self, measure: Measure) -> f64 {
        let ranking = self.ranking;
        let Counts {
            num_ret,
            num_rel,
            num_rel_ret,
            num_nonpool,
            num_unjudged,
        } = self.counts;
        match measure {
            Measure::NumQ => 1.0,
            Measure::NumRet => num_ret as f64,
            Measure::NumRel => num_rel as f64,
            Measure::NumRelRet => num_rel_ret as f64,
            Measure::Map | Measure::GmMap => {
                // Per query, gm_map is AP; the evaluator averages its logarithm.
                if self.rel_in_top(usize::MAX) > 0 {
                    self.ap_sum_in_top(usize::MAX) / num_rel as f64
                } else {
                    0.0
                }
            }
            Measure::Rprec => {
                if num_ret.min(num_rel) == 0 {
                    0.0
                } else {
                    self.rel_in_top(num_rel as usize) as f64 / num_rel as f64
                }
            }
            Measure::Bpref | Measure::GmBpref => ranking.bpref(num_rel),
            Measure::RecipRank => ranking
                .ranked
                .iter()
                .position(|&rel| ranking.is_relevant(rel))
                .map_or(0.0, |i| 1.0 / (i + 1) as f64),
            Measure::IprecAtRecall(_) | Measure::RprecMult(_) => {
                let mut v = [0.0];
                self.compute_family(&[measure], &mut v);
                v[0]
            }
            Measure::P(k) => self.rel_in_top(k as usize) as f64 / f64::from(k),
            // Not a number: the evaluator keeps the string separately.
            Measure::Relstring => 0.0,
            Measure::Recall(k) => ratio_or_zero(self.rel_in_top(k as usize) as f64, num_rel),
            Measure::InfAp => ranking.inf_ap(num_rel),
            Measure::Utility => {
                // trec_eval's default coefficients 1,-1,0,0 for (relevant,
                // nonrelevant) x (retrieved, not retrieved); no -N, so 0 docs
                // in the collection.
                let (a, b, c, d) = (1.0, -1.0, 0.0, 0.0);
                let num_docs_in_coll = 0i64;
                a * num_rel_ret as f64
                    + b * (num_ret - num_rel_ret) as f64
                    + c * (num_rel - num_rel_ret) as f64
                    + d * (num_docs_in_coll + num_rel_ret - num_ret - num_rel) as f64
            }
            Measure::ElevenPtAvg => self.eleven_point_average(),
            Measure::BinG => ranking.bin_g(num_rel),
            Measure::G => ranking.g(),
            Measure::Ndcg => ranking.ndcg(),
            Measure::NdcgRel => ranking.ndcg_rel(),
            Measure::Rndcg => ranking.rndcg(num_rel),
            Measure::NdcgCut(k) => ranking.ndcg_cut(k as usize),
            Measure::MapCut(k) => ratio_or_zero(self.ap_sum_in_top(k as usize), num_rel),
            Measure::RelativeP(k) => {
                if num_rel == 0 {
                    0.0
                } else {
                    self.rel_in_top(k as usize) as f64 / i64::from(k).min(num_rel) as f64
                }
            }
            Measure::Success(k) => {
                if self.rel_in_top(k as usize) > 0 {
                    1.0
                } else {
                    0.0
                }
            }
            Measure::SetP => ratio_or_zero(num_rel_ret as f64, num_ret),
            Measure::SetRelativeP => {
                if num_ret > 0 && num_rel > 0 {
                    num_rel_ret as f64 / num_ret.min(num_rel) as f64
                } else {
                    0.0
                }
            }
            Measure::SetRecall => ratio_or_zero(num_rel_ret as f64, num_rel),
            Measure::SetMap => {
                if num_ret > 0 && num_rel > 0 {
                    (num_rel_ret as f64 * num_rel_ret as f64) / (num_ret as f64 * num_rel as f64)
                } else {
                    0.0
                }
            }
            Measure::SetF => {
                if num_rel_ret > 0 {
                    let beta = 1.0;
                    let precision = num_rel_ret as f64 / num_ret as f64;
                    let recall = num_rel_ret as f64 / num_rel as f64;
                    (beta + 1.0) * precision * recall / (beta * precision + recall)
                } else {
                    0.0
                }
            }
            Measure::NumNonrelJudgedRet => {
                (num_ret - num_nonpool - num_unjudged - num_rel_ret) as f64
            }
        }
    }
}
