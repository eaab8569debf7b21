//! Counter and histogram arithmetic over compact series, with Prometheus semantics.
//!
//! The PromQL parts (`increase`, `histogram_quantile`) delegate to `opsg_expo`, the one
//! implementation shared with the scraper; this module adapts them to compact series.

/// The reset-aware increase of a counter over consecutive values (`NaN` values skipped; 0 with
/// fewer than two): `opsg_expo::increase`, PromQL's reset handling without
/// extrapolation, so the figure is exactly what happened between the samples.
pub fn increase(values: &[f64]) -> f64 {
    let points: Vec<(i64, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (i as i64, *v))
        .collect();
    let inc = opsg_expo::increase(&points);
    if inc.is_nan() { 0.0 } else { inc }
}

/// The increase of each cumulative bucket (and of the count) between two histogram points.
/// A count that went down is a reset: the later point is the increase itself.
pub fn bucket_increase(before: &[f64], after: &[f64]) -> Option<Vec<f64>> {
    if before.len() != after.len() || after.iter().any(|v| !v.is_finite()) {
        return None;
    }
    if before.iter().any(|v| !v.is_finite()) {
        return Some(after.to_vec());
    }
    let reset = after.iter().zip(before).any(|(a, b)| a < b);
    Some(if reset {
        after.to_vec()
    } else {
        after.iter().zip(before).map(|(a, b)| a - b).collect()
    })
}

/// The `q` quantile of a histogram given as `(upper bound, cumulative count)` pairs:
/// `opsg_expo::histogram_quantile` (PromQL's exact semantics: a rank in the `+Inf`
/// bucket returns the highest finite bound), as `None` where PromQL gives NaN or an infinity (no
/// `+Inf` bucket, no observation, `q` outside [0, 1]).
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let v = opsg_expo::histogram_quantile(q, buckets);
    v.is_finite().then_some(v)
}

/// The fraction of observations above `bound`, from cumulative buckets (`None` with no
/// observations or no bucket at or above `bound`). Uses the smallest bucket bound >= `bound`, so
/// it never overstates the slow fraction.
pub fn fraction_above(bound: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let at = buckets.iter().find(|(le, _)| *le >= bound)?;
    Some(((total - at.1) / total).clamp(0.0, 1.0))
}

/// Least-squares slope (per second) and r² of `(t_ms, v)` points; `None` with fewer than three.
pub fn slope(points: &[(i64, f64)]) -> Option<(f64, f64)> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|&(t, v)| (t as f64 / 1000.0, v))
        .collect();
    if pts.len() < 3 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let r2 = if syy <= 0.0 { 0.0 } else { (sxy * sxy) / (sxx * syy) };
    Some((b, r2))
}

/// The median of the finite values (`None` without any): robust to one odd value, which is what
/// comparing a replica with its peers and the saturated replicas with the fine ones needs.
/// PromQL's `quantile(0.5, …)` (`opsg_expo::quantile`).
pub fn median(values: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let m = opsg_expo::quantile(0.5, &finite);
    m.is_finite().then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increase_handles_resets_and_nan() {
        assert_eq!(increase(&[1.0, 3.0, 6.0]), 5.0);
        // Reset after 6: the counter restarted and reached 2.
        assert_eq!(increase(&[1.0, 6.0, 2.0, 4.0]), 9.0);
        assert_eq!(increase(&[1.0, f64::NAN, 4.0]), 3.0);
        assert_eq!(increase(&[5.0]), 0.0);
    }

    #[test]
    fn quantile_interpolates_like_promql() {
        let b = [(0.1, 10.0), (0.5, 60.0), (1.0, 90.0), (f64::INFINITY, 100.0)];
        // rank 50 falls in (0.1, 0.5] with 50 in the bucket: 0.1 + 0.4 * 40/50.
        let p50 = histogram_quantile(0.5, &b).unwrap();
        assert!((p50 - 0.42).abs() < 1e-9, "{p50}");
        // rank 95 is in +Inf: the highest finite bound.
        assert_eq!(histogram_quantile(0.95, &b), Some(1.0));
        assert_eq!(histogram_quantile(0.5, &[(0.1, 1.0), (1.0, 2.0)]), None, "no +Inf");
        assert_eq!(histogram_quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(histogram_quantile(1.5, &b), None);
    }

    #[test]
    fn bucket_increase_and_reset() {
        assert_eq!(bucket_increase(&[1.0, 2.0], &[3.0, 5.0]), Some(vec![2.0, 3.0]));
        assert_eq!(bucket_increase(&[10.0, 20.0], &[1.0, 2.0]), Some(vec![1.0, 2.0]));
        assert_eq!(bucket_increase(&[1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn fraction_above_and_slope() {
        let b = [(0.5, 80.0), (2.0, 95.0), (f64::INFINITY, 100.0)];
        assert_eq!(fraction_above(2.0, &b), Some(0.05));
        assert_eq!(fraction_above(1.0, &b), Some(0.05));
        let (s, r2) = slope(&[(0, 1.0), (1000, 3.0), (2000, 5.0)]).unwrap();
        assert!((s - 2.0).abs() < 1e-9 && (r2 - 1.0).abs() < 1e-9);
        assert!(slope(&[(0, 1.0), (1000, 2.0)]).is_none());
    }

    #[test]
    fn median_of_finite_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
    }
}
