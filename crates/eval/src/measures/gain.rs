//! Graded measures: gain = relevance level, as trec_eval's default gains
//! (`setup_gains` in `m_ndcg.c` and friends). Unjudged documents and
//! judgments below zero have gain 0. The relevance level (`-l`) plays no
//! part, except that `Rndcg` is 0 for a query without relevant documents.
//!
//! The ideal ranking is every judged document of the query, retrieved or
//! not, by decreasing level: [`JudgedRanking::judged_levels_desc`].

use super::compute::JudgedRanking;

/// G's minimal cost per rank (`min_cost` in `m_G.c`).
const MIN_COST: f64 = 1.0;

/// Gain of a retrieved document with trec_eval relevance value `rel`.
fn gain(rel: i64) -> f64 {
    if rel > 0 { rel as f64 } else { 0.0 }
}

/// Discount of the document at 0-based rank `i`.
fn discount(i: usize) -> f64 {
    ((i + 2) as f64).log2()
}

impl JudgedRanking<'_> {
    /// Gain of the ideal ranking at 0-based rank `i` (0 past its end).
    fn ideal_gain(&self, i: usize) -> f64 {
        self.judged_levels_desc
            .get(i)
            .map_or(0.0, |&level| level as f64)
    }

    /// DCG of the top `depth` retrieved documents.
    fn dcg(&self, depth: usize) -> f64 {
        self.ranked
            .iter()
            .take(depth)
            .enumerate()
            .fold(0.0, |sum, (i, &rel)| {
                if rel > 0 {
                    sum + gain(rel) / discount(i)
                } else {
                    sum
                }
            })
    }

    /// DCG of the top `depth` of the ideal ranking.
    fn ideal_dcg(&self, depth: usize) -> f64 {
        self.judged_levels_desc
            .iter()
            .take(depth)
            .take_while(|&&level| level > 0)
            .enumerate()
            .fold(0.0, |sum, (i, &level)| sum + level as f64 / discount(i))
    }

    /// nDCG over the whole ranking (`m_ndcg.c`); 0 without positive judgments.
    pub(super) fn ndcg(&self) -> f64 {
        let ideal = self.ideal_dcg(usize::MAX);
        if ideal > 0.0 {
            self.dcg(usize::MAX) / ideal
        } else {
            0.0
        }
    }

    /// nDCG at `k` (`m_ndcg_cut.c`), both rankings cut at `k`.
    pub(super) fn ndcg_cut(&self, k: usize) -> f64 {
        let dcg = self.dcg(k);
        let ideal = self.ideal_dcg(k);
        // trec_eval leaves the DCG when there is no ideal gain (it is then 0).
        if ideal > 0.0 { dcg / ideal } else { dcg }
    }

    /// nDCG averaged over the relevant documents (`m_ndcg_rel.c`): at the
    /// rank of each retrieved document with positive gain, and for each
    /// positive-gain document not retrieved, at the end of the ranking.
    pub(super) fn ndcg_rel(&self) -> f64 {
        let (mut results_dcg, mut ideal_dcg, mut sum) = (0.0, 0.0, 0.0);
        let (mut num_rel, mut num_rel_ret) = (0i64, 0i64);
        for (i, &rel) in self.ranked.iter().enumerate() {
            let gain = gain(rel);
            if gain != 0.0 {
                results_dcg += gain / discount(i);
            }
            let ideal = self.ideal_gain(i);
            if ideal > 0.0 {
                num_rel += 1;
                ideal_dcg += ideal / discount(i);
            }
            if gain > 0.0 {
                sum += results_dcg / ideal_dcg;
                num_rel_ret += 1;
            }
        }
        for i in self.ranked.len().. {
            let ideal = self.ideal_gain(i);
            if ideal <= 0.0 {
                break;
            }
            num_rel += 1;
            ideal_dcg += ideal / discount(i);
        }
        // Without positive judgments this is 0 * 0 / 0: NaN, and the value stays 0.
        sum += (num_rel - num_rel_ret) as f64 * results_dcg / ideal_dcg;
        if sum > 0.0 { sum / num_rel as f64 } else { 0.0 }
    }

    /// nDCG averaged over the R levels (`m_Rndcg.c`): at each rank where
    /// the ideal gain changes, and at the end of the ranking if the ideal
    /// ranking's positive gains end before it. 0 without relevant documents;
    /// NaN (as in trec_eval) when no such point has a positive ideal DCG.
    pub(super) fn rndcg(&self, num_rel: i64) -> f64 {
        if num_rel == 0 {
            return 0.0;
        }
        let num_ret = self.ranked.len();
        let (mut results_dcg, mut ideal_dcg) = (0.0, 0.0);
        let (mut sum, mut num_points) = (0.0, 0i64);
        let mut add_point = |results_dcg: f64, ideal_dcg: f64| {
            if ideal_dcg > 0.0 {
                sum += results_dcg / ideal_dcg;
                num_points += 1;
            }
        };
        let mut ideal_gain = self.ideal_gain(0);
        let mut previous_ideal_gain = ideal_gain;
        let mut i = 0;
        while i < num_ret && ideal_gain > 0.0 {
            let gain = gain(self.ranked[i]);
            ideal_gain = self.ideal_gain(i);
            if previous_ideal_gain != ideal_gain {
                add_point(results_dcg, ideal_dcg);
                previous_ideal_gain = ideal_gain;
            }
            if gain != 0.0 {
                results_dcg += gain / discount(i);
            }
            if ideal_gain > 0.0 {
                ideal_dcg += ideal_gain / discount(i);
            }
            i += 1;
        }
        if i < num_ret {
            // The ideal gains ran out first: finish the ranking, then one more point.
            for (j, &rel) in self.ranked.iter().enumerate().skip(i) {
                let gain = gain(rel);
                if gain != 0.0 {
                    results_dcg += gain / discount(j);
                }
            }
            i = num_ret;
            add_point(results_dcg, ideal_dcg);
        }
        while ideal_gain > 0.0 {
            // The ranking ran out first: finish the ideal ranking.
            ideal_gain = self.ideal_gain(i);
            if previous_ideal_gain != ideal_gain {
                add_point(results_dcg, ideal_dcg);
                previous_ideal_gain = ideal_gain;
            }
            if ideal_gain > 0.0 {
                ideal_dcg += ideal_gain / discount(i);
            }
            i += 1;
        }
        sum / num_points as f64
    }

    /// Normalized gain G (`m_G.c`): each retrieved document's gain divided
    /// by `log2(2 + cost so far - gain so far)`, where the cost of a rank is
    /// the ideal gain there (at least 1); normalized by the total ideal gain.
    pub(super) fn g(&self) -> f64 {
        let (mut results_g, mut sum_results, mut sum_cost) = (0.0, 0.0, 0.0);
        for (i, &rel) in self.ranked.iter().enumerate() {
            let gain = gain(rel);
            sum_results += gain;
            let ideal = self.ideal_gain(i);
            sum_cost += if ideal >= MIN_COST { ideal } else { MIN_COST };
            if gain != 0.0 {
                results_g += gain / (2.0 + sum_cost - sum_results).log2();
            }
        }
        let sum_ideal = self
            .judged_levels_desc
            .iter()
            .take_while(|&&level| level > 0)
            .fold(0.0, |sum, &level| sum + level as f64);
        if sum_ideal > 0.0 {
            results_g / sum_ideal
        } else {
            0.0
        }
    }
}
