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

/// Candidates a row scan buffers before it prunes them back to `k`: large enough that the
/// pruning (a linear-time selection) runs rarely, small enough to stay in L1.
fn scan_buffer(k: usize) -> usize {
    (8 * k).max(64)
}

/// Lanes of the block test in [`top_k_positive`]: one AVX register of `f32`.
const BLOCK: usize = 8;

/// The `k` largest positive entries of `row` (ties to the lower latent id), ascending by id.
///
/// One pass with a rising floor instead of collecting every positive entry (about half of
/// a row) and selecting among them: candidates above the floor go to a small buffer; when
/// it fills, it is cut back to its `k` best and the floor becomes the `k`-th value. An
/// entry later in the row that is not above the floor cannot enter the result (the `k`
/// kept have values at least as large and lower ids), so the result is the same set as a
/// full selection. Most blocks of [`BLOCK`] entries are then rejected by one maximum.
/// `k = 0` selects nothing.
pub(crate) fn top_k_positive(row: &[f32], k: usize, allowed: Option<&[bool]>) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let cap = scan_buffer(k);
    let mut cand: Vec<(u32, f32)> = Vec::with_capacity(cap);
    // Only positive entries fire; `v > floor` is also false for NaN, as before.
    let mut floor = 0.0f32;
    let consider = |j: usize, v: f32, floor: &mut f32, cand: &mut Vec<(u32, f32)>| {
        if v > *floor && allowed.is_none_or(|a| a[j]) {
            cand.push((j as u32, v));
            if cand.len() == cap {
                cand.select_nth_unstable_by(k - 1, by_value_desc);
                cand.truncate(k);
                *floor = cand[k - 1].1;
            }
        }
    };
    let blocks = row.chunks_exact(BLOCK);
    let tail = blocks.remainder();
    for (b, block) in blocks.enumerate() {
        // The block's maximum (NaN never wins `>`), a vectorisable reduction.
        let max = block
            .iter()
            .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
        if max > floor {
            for (i, &v) in block.iter().enumerate() {
                consider(b * BLOCK + i, v, &mut floor, &mut cand);
            }
        }
    }
    let start = row.len() - tail.len();
    for (i, &v) in tail.iter().enumerate() {
        consider(start + i, v, &mut floor, &mut cand);
    }
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
    use proptest::prelude::*;

    /// The selection before the one-pass scan: every positive entry, then one selection.
    fn top_k_positive_by_full_selection(
        row: &[f32],
        k: usize,
        allowed: Option<&[bool]>,
    ) -> Vec<(u32, f32)> {
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

    /// Bit patterns, so that -0.0 and 0.0 count as different results.
    fn bits(v: &[(u32, f32)]) -> Vec<(u32, u32)> {
        v.iter().map(|&(j, x)| (j, x.to_bits())).collect()
    }

    /// Rows with many ties (values from a small set), zeros of both signs, negatives,
    /// rising runs (the floor moves often) and lengths that are not multiples of the block.
    fn row_strategy() -> impl Strategy<Value = Vec<f32>> {
        let value = prop_oneof![
            4 => (-8i32..8).prop_map(|v| v as f32 * 0.25),
            2 => -1.0f32..1.0,
            1 => Just(-0.0f32),
            1 => Just(f32::MIN_POSITIVE),
            1 => (0u32..5000).prop_map(|i| i as f32),
        ];
        prop::collection::vec(value, 0..700)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn one_pass_top_k_equals_the_full_selection(
            row in row_strategy(),
            k in 1usize..80,
            mask_seed in any::<u64>(),
        ) {
            prop_assert_eq!(
                bits(&top_k_positive(&row, k, None)),
                bits(&top_k_positive_by_full_selection(&row, k, None))
            );
            let allowed: Vec<bool> = (0..row.len())
                .map(|j| (mask_seed >> (j % 64)) & 1 == 1)
                .collect();
            prop_assert_eq!(
                bits(&top_k_positive(&row, k, Some(&allowed))),
                bits(&top_k_positive_by_full_selection(&row, k, Some(&allowed)))
            );
        }
    }

    #[test]
    fn one_pass_top_k_handles_edge_rows() {
        let rising: Vec<f32> = (0..5000).map(|i| i as f32).collect();
        let falling: Vec<f32> = rising.iter().rev().copied().collect();
        let ties = vec![1.0f32; 3000];
        let nan_free_extremes = [f32::MAX, f32::INFINITY, 1.0, f32::MIN_POSITIVE, 0.0, -0.0];
        for row in [
            &rising[..],
            &falling,
            &ties,
            &nan_free_extremes,
            &[],
            &[-1.0; 9],
        ] {
            for k in [1, 2, 7, 32, 64, 6000] {
                assert_eq!(
                    bits(&top_k_positive(row, k, None)),
                    bits(&top_k_positive_by_full_selection(row, k, None)),
                    "k {k}, row of {}",
                    row.len()
                );
            }
        }
        // Ties go to the lower ids.
        let picked = top_k_positive(&ties, 3, None);
        assert_eq!(picked, vec![(0, 1.0), (1, 1.0), (2, 1.0)]);
        assert!(top_k_positive(&rising, 0, None).is_empty());
    }

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
