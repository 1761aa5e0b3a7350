//! Input scaling: one constant `c` per SAE so that the training rows' mean squared L2 norm
//! is `d_in` (SAELens' `normalize_activations = "expected_average_only_in"`).

/// The scale `c = sqrt(d / mean ‖x‖²)` of row-major `rows` of width `d`: multiplying every
/// row by `c` makes their mean squared L2 norm equal `d`.
///
/// Accumulates in `f64`. Returns 1.0 (no scaling) when there is nothing to measure: `d`
/// is 0, there are no complete rows, or the mean squared norm is 0 or not finite. A
/// trailing partial row is ignored.
///
/// ```
/// use latent_terms_sae::mean_square_norm_scale;
///
/// // Two rows of width 2 with squared norms 16 and 64: mean 40, c = sqrt(2 / 40).
/// let c = mean_square_norm_scale(&[4.0, 0.0, 0.0, 8.0], 2);
/// assert!((c - (2.0f32 / 40.0).sqrt()).abs() < 1e-7);
/// ```
pub fn mean_square_norm_scale(rows: &[f32], d: usize) -> f32 {
    if d == 0 {
        return 1.0;
    }
    let n = rows.len() / d;
    let total: f64 = rows
        .chunks_exact(d)
        .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>())
        .sum();
    scale_for(total, n, d)
}

/// `sqrt(d / (total / n))`, or 1.0 when that is undefined (see [`mean_square_norm_scale`]).
pub(crate) fn scale_for(total_square_norm: f64, n: usize, d: usize) -> f32 {
    if n == 0 || d == 0 {
        return 1.0;
    }
    let mean = total_square_norm / n as f64;
    let c = (d as f64 / mean).sqrt();
    if mean > 0.0 && c.is_finite() && c > 0.0 && (c as f32).is_normal() {
        c as f32
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_rows_have_mean_square_norm_d() {
        let d = 5;
        let rows: Vec<f32> = (0..d * 40)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 3.7)
            .collect();
        let c = mean_square_norm_scale(&rows, d);
        let scaled: Vec<f32> = rows.iter().map(|v| v * c).collect();
        let msq = scaled
            .chunks(d)
            .map(|r| r.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>())
            .sum::<f64>()
            / 40.0;
        assert!((msq - d as f64).abs() < 1e-4, "{msq}");
        assert!((mean_square_norm_scale(&scaled, d) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn degenerate_inputs_give_one() {
        assert_eq!(mean_square_norm_scale(&[], 3), 1.0);
        assert_eq!(mean_square_norm_scale(&[1.0, 2.0], 0), 1.0);
        assert_eq!(mean_square_norm_scale(&[0.0; 6], 3), 1.0);
        assert_eq!(mean_square_norm_scale(&[1.0, 2.0], 3), 1.0);
    }
}
