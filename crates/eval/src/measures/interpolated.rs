//! Measures at fractions of R: interpolated precision at recall levels
//! (`iprec_at_recall`, `11pt_avg`) and precision at multiples of R
//! (`Rprec_mult`).
//!
//! A fraction `f` becomes a number of documents as trec_eval computes it:
//! `(long) (f * R + 0.9)`, so that the 11 standard recall levels fall where
//! historical implementations put them.

use super::RECALL_LEVELS;
use super::compute::Query;

/// trec_eval's conversion of a fraction of `num_rel` to a count.
fn count_at(fraction: f64, num_rel: i64) -> i64 {
    // `as` truncates toward zero, like C's conversion (and saturates where C is undefined).
    (fraction * num_rel as f64 + 0.9) as i64
}

impl Query<'_> {
    /// Interpolated precision (`m_iprec_at_recall.c`) at the recall levels
    /// `fraction(0) <= … <= fraction(n - 1)`: the highest precision at any
    /// rank at or below the rank where that many relevant documents have
    /// been retrieved. Calls `emit(index, value)` for every level the
    /// ranking reaches, in trec_eval's order (highest level first); the
    /// others are 0.
    ///
    /// With no document retrieved, the precision is 0/0: trec_eval then
    /// reports NaN for every level it reaches, and so does this.
    pub(super) fn interpolated_precision(
        &self,
        n: usize,
        fraction: impl Fn(usize) -> f64,
        mut emit: impl FnMut(usize, f64),
    ) {
        let ranking = self.ranking;
        let counts = self.counts;
        let cutoff = |i: usize| count_at(fraction(i), counts.num_rel);
        // Levels whose count of relevant documents is never reached stay 0.
        let mut current = n;
        while current > 0 && cutoff(current - 1) > counts.num_rel_ret {
            current -= 1;
        }
        let mut int_precision = counts.num_rel_ret as f64 / counts.num_ret as f64;
        let mut rel_so_far = counts.num_rel_ret;
        // Walk up from the bottom of the ranking, so that the running maximum
        // of precision is the interpolated precision.
        let mut i = ranking.ranked.len();
        while i > 0 && rel_so_far > 0 {
            let precision = rel_so_far as f64 / i as f64;
            if int_precision < precision {
                int_precision = precision;
            }
            if ranking.is_relevant(ranking.ranked[i - 1]) {
                while current > 0 && rel_so_far == cutoff(current - 1) {
                    emit(current - 1, int_precision);
                    current -= 1;
                }
                rel_so_far -= 1;
            }
            i -= 1;
        }
        while current > 0 {
            emit(current - 1, int_precision);
            current -= 1;
        }
    }

    /// `11pt_avg` (`m_11pt_avg.c`): interpolated precision averaged over the
    /// 11 standard recall levels.
    pub(super) fn eleven_point_average(&self) -> f64 {
        let mut sum = 0.0;
        self.interpolated_precision(
            RECALL_LEVELS.len(),
            |i| RECALL_LEVELS[i].get(),
            |_, v| {
                sum += v;
            },
        );
        sum / RECALL_LEVELS.len() as f64
    }

    /// Precision at multiples of R (`m_Rprec_mult.c`), the multiples being
    /// `multiple(0) <= … <= multiple(n - 1)`. Past the end of the ranking,
    /// missing documents count as nonrelevant. Calls `emit(index, value)`
    /// for every multiple that gets a value, in trec_eval's order (largest
    /// first); the others are 0.
    pub(super) fn precision_at_r_multiples(
        &self,
        n: usize,
        multiple: impl Fn(usize) -> f64,
        mut emit: impl FnMut(usize, f64),
    ) {
        let ranking = self.ranking;
        let counts = self.counts;
        let cutoff = |i: usize| count_at(multiple(i), counts.num_rel);
        let mut current = n;
        while current > 0 && cutoff(current - 1) > counts.num_ret {
            let c = cutoff(current - 1);
            emit(current - 1, counts.num_rel_ret as f64 / c as f64);
            current -= 1;
        }
        let mut rel_so_far = counts.num_rel_ret;
        let mut i = ranking.ranked.len();
        while i > 0 && rel_so_far > 0 {
            let precision = rel_so_far as f64 / i as f64;
            while current > 0 && i as i64 == cutoff(current - 1) {
                emit(current - 1, precision);
                current -= 1;
            }
            if ranking.is_relevant(ranking.ranked[i - 1]) {
                rel_so_far -= 1;
            }
            i -= 1;
        }
    }
}
