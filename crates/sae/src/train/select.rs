//! Choosing the active latents of a batch, on the host.
//!
//! burn's top-k sorts every row (`O(m log m)`); the host does a linear-time
//! `select_nth_unstable` per row, in parallel, over pre-activations it reads once. The
//! AuxK selection among dead latents reuses the same read.

use rayon::prelude::*;

/// Non-zero activations of a batch in coordinate form: `(row, latent, value)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Pattern {
    pub(crate) rows: Vec<i64>,
    pub(crate) latents: Vec<i64>,
    pub(crate) values: Vec<f32>,
}

impl Pattern {
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    fn extend(&mut self, row: usize, picked: &[(u32, f32)]) {
        for &(j, v) in picked {
            self.rows.push(row as i64);
            self.latents.push(j as i64);
            self.values.push(v);
        }
    }
}

/// One row's chosen `(latent, value)` pairs.
type Picked = Vec<(u32, f32)>;

/// Per-row (main, AuxK) picks into the two coordinate patterns.
fn patterns(picked: &[(Picked, Picked)]) -> (Pattern, Pattern) {
    let mut main = Pattern::default();
    let mut aux = Pattern::default();
    for (r, (a, b)) in picked.iter().enumerate() {
        main.extend(r, a);
        aux.extend(r, b);
    }
    (main, aux)
}

fn by_value_desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The `k` largest positive entries of `row` (ties to the lower latent id), ascending by id.
pub(crate) fn top_k_positive(row: &[f32], k: usize, allowed: Option<&[bool]>) -> Vec<(u32, f32)> {
    let mut cand: Vec<(u32, f32)> = row
        .iter()
        .enumerate()
        .filter(|&(j, &v)| v > 0.0 && allowed.is_none_or(|a| a[j]))
        .map(|(j, &v)| (j as u32, v))
        .collect();
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, by_value_desc);
        cand.truncate(k);
    }
    cand.sort_unstable_by_key(|&(j, _)| j);
    cand
}

/// Per-row TopK of `pre` (`[rows, m]` row-major), plus the AuxK pattern over `dead`
/// latents when `aux_k > 0` and some latent is dead.
pub(crate) fn top_k(
    pre: &[f32],
    m: usize,
    k: usize,
    aux: Option<(&[bool], usize)>,
) -> (Pattern, Pattern) {
    let picked: Vec<(Picked, Picked)> = pre
        .par_chunks(m)
        .map(|row| {
            let main = top_k_positive(row, k, None);
            let aux = aux
                .map(|(dead, aux_k)| top_k_positive(row, aux_k, Some(dead)))
                .unwrap_or_default();
            (main, aux)
        })
        .collect();
    patterns(&picked)
}

/// BatchTopK: the `rows × k` largest positive entries of the whole batch. Returns the
/// pattern and the smallest kept value (this batch's threshold), plus AuxK as in [`top_k`].
pub(crate) fn batch_top_k(
    pre: &[f32],
    m: usize,
    k: usize,
    aux: Option<(&[bool], usize)>,
) -> (Pattern, Pattern, f32) {
    let rows = pre.len() / m;
    let budget = rows * k;
    // A row can keep at most `m` latents; a per-row top-(budget) bound is not useful, so the
    // cut is found on all positive values.
    let mut positive: Vec<f32> = pre.par_iter().copied().filter(|&v| v > 0.0).collect();
    let cut = if positive.len() > budget {
        let (_, nth, _) = positive.select_nth_unstable_by(budget - 1, |a, b| b.total_cmp(a));
        *nth
    } else {
        positive.iter().copied().fold(f32::INFINITY, f32::min)
    };
    drop(positive);
    let picked: Vec<(Picked, Picked)> = pre
        .par_chunks(m)
        .map(|row| {
            let main: Vec<(u32, f32)> = row
                .iter()
                .enumerate()
                .filter(|&(_, &v)| v > 0.0 && v >= cut)
                .map(|(j, &v)| (j as u32, v))
                .collect();
            let aux = aux
                .map(|(dead, aux_k)| top_k_positive(row, aux_k, Some(dead)))
                .unwrap_or_default();
            (main, aux)
        })
        .collect();
    let (main, aux_pattern) = patterns(&picked);
    (main, aux_pattern, if cut.is_finite() { cut } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_largest_positive_entries() {
        let pre = [
            0.5, -1.0, 2.0, 0.1, 2.0, 0.0, /* row 2 */ -1.0, -2.0, 0.3, -0.1, -0.2, -0.3,
        ];
        let (p, aux) = top_k(&pre, 6, 2, None);
        assert_eq!(p.rows, vec![0, 0, 1]);
        assert_eq!(p.latents, vec![2, 4, 2]);
        assert_eq!(p.values, vec![2.0, 2.0, 0.3]);
        assert_eq!(aux.len(), 0);
        let dead = [true, false, false, true, false, false];
        let (_, aux) = top_k(&pre, 6, 2, Some((&dead, 3)));
        assert_eq!(aux.latents, vec![0, 3]);
        assert_eq!(aux.rows, vec![0, 0]);
    }

    #[test]
    fn batch_top_k_spends_the_budget_across_rows() {
        let pre = [3.0, 2.0, 1.0, 0.0, /* row 2 */ 0.5, 0.2, -1.0, 0.1];
        let (p, _, cut) = batch_top_k(&pre, 4, 2, None);
        assert_eq!(p.rows, vec![0, 0, 0, 1]);
        assert_eq!(p.latents, vec![0, 1, 2, 0]);
        assert_eq!(cut, 0.5);
    }
}
