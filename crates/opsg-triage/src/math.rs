//! Counter and histogram arithmetic over compact series, with Prometheus semantics.
//!
//! `increase` is reset-aware (a value lower than the one before it is a counter reset: the new
//! value is counted from zero), and `histogram_quantile` interpolates linearly inside the bucket
//! the rank falls in, as PromQL's `histogram_quantile` does. These mirror what `opsg-expo` exposes;
//! they live here too so triage stays pure arithmetic over the record, with no parser involved.

/// The reset-aware increase of a counter over consecutive values (`NaN` values skipped).
pub fn increase(values: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for &v in values {
        if !v.is_finite() {
            continue;
        }
        if let Some(p) = prev {
            total += if v >= p { v - p } else { v };
        }
        prev = Some(v);
    }
    total
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

/// The `q` quantile of a histogram given as `(upper bound, cumulative count)` pairs, ascending,
/// the last bound `+Inf`. `None` when there is no `+Inf` bucket, no observation, or `q` is outside
/// [0, 1]. A rank in the `+Inf` bucket returns the highest finite bound (PromQL's behaviour).
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) || buckets.len() < 2 {
        return None;
    }
    let (last_le, total) = *buckets.last()?;
    if last_le != f64::INFINITY || total.is_nan() || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (i, &(le, cum)) in buckets.iter().enumerate() {
        if cum >= rank && cum > 0.0 {
            if le == f64::INFINITY {
                return Some(buckets.get(i.wrapping_sub(1)).map_or(0.0, |b| b.0));
            }
            let in_bucket = cum - lower_count;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            let lower = if i == 0 && le <= 0.0 { le } else { lower_bound };
            return Some(lower + (le - lower) * (rank - lower_count) / in_bucket);
        }
        lower_bound = le;
        lower_count = cum;
    }
    None
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
}
