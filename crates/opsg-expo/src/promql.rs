//! PromQL arithmetic the triage stage needs: `histogram_quantile` exactly as Prometheus computes
//! it for classic histograms, counter increase/rate with counter-reset handling, and the
//! `quantile` aggregation (a median across replicas).

/// `histogram_quantile(q, buckets)` with exactly PromQL's semantics for classic histograms
/// (Prometheus `promql/quantile.go`, `BucketQuantile`).
///
/// `buckets` are `(upper_bound, cumulative_count)` pairs (the `le` label and the `_bucket`
/// value), in any order. The rules, in PromQL's order:
/// - `q` NaN gives NaN; `q < 0` gives `-Inf`; `q > 1` gives `+Inf`;
/// - no `+Inf` bucket gives NaN; buckets with the same bound are merged (counts added);
/// - counts are forced monotonic (a decrease is replaced by the previous count) and differences
///   within a relative 1e-12 are ignored, as PromQL does for float noise;
/// - fewer than 2 buckets, or 0 observations, gives NaN;
/// - the rank `q * count` lands in the first bucket whose count reaches it; interpolation is
///   linear within that bucket, whose lower bound is the previous bucket's upper bound, or 0 for
///   the first bucket, unless the first bucket's upper bound is `<= 0`, in which case that bound
///   is returned;
/// - a rank in the `+Inf` bucket returns the largest finite upper bound.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if buckets.is_empty() {
        return f64::NAN;
    }
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b[b.len() - 1].0 != f64::INFINITY {
        return f64::NAN;
    }
    // coalesceBuckets: same upper bound, counts added.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (ub, c) in b {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    ensure_monotonic(&mut merged, 1e-12);
    if merged.len() < 2 {
        return f64::NAN;
    }
    let n = merged.len();
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search over the first n-1 buckets: the first whose count >= rank.
    let idx = merged[..n - 1].iter().position(|&(_, c)| c >= rank).unwrap_or(n - 1);
    if idx == n - 1 {
        return merged[n - 2].0;
    }
    if idx == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let bucket_end = merged[idx].0;
    let mut count = merged[idx].1;
    let mut bucket_start = 0.0;
    if idx > 0 {
        bucket_start = merged[idx - 1].0;
        count -= merged[idx - 1].1;
        rank -= merged[idx - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// PromQL's `ensureMonotonicAndIgnoreSmallDeltas`.
fn ensure_monotonic(buckets: &mut [(f64, f64)], tolerance: f64) {
    let Some(&(_, first)) = buckets.first() else {
        return;
    };
    let mut prev = first;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, tolerance) || curr < prev {
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
}

/// Prometheus `util/almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE; // 0x0010000000000000
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// `quantile(q, values)`, PromQL's aggregation over sample values: the values sorted, the rank
/// `q * (n - 1)`, linear interpolation between the two values around it (so `q = 0.5` is the
/// median: the middle value, or the mean of the two middle ones). `q < 0` gives `-Inf`, `q > 1`
/// `+Inf`, no values NaN. NaN values are skipped (PromQL would sort them in).
pub fn quantile(q: f64, values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(f64::total_cmp);
    let rank = q * (v.len() - 1) as f64;
    let (lower, upper) = (rank.floor() as usize, rank.ceil() as usize);
    let weight = rank - rank.floor();
    v[lower] * (1.0 - weight) + v[upper] * weight
}

/// The increase of a counter over `points` (`(timestamp_ms, value)`, sorted by time), with
/// counter resets handled as PromQL does: a value lower than its predecessor means the counter
/// restarted from zero, so that step contributes the new value.
///
/// This is the plain reset-corrected delta between the first and last sample. It does NOT
/// extrapolate to the edges of a range as PromQL's `increase()` does (see
/// [`extrapolated_increase`] for that), so for scrapes taken by the pipe itself the figure is
/// exactly what happened between the two samples. NaN points are skipped; fewer than two usable
/// points give NaN.
pub fn increase(points: &[(i64, f64)]) -> f64 {
    let mut it = points.iter().filter(|p| !p.1.is_nan());
    let Some(&(_, first)) = it.next() else {
        return f64::NAN;
    };
    let mut prev = first;
    let mut total = 0.0;
    let mut steps = 0;
    for &(_, v) in it {
        total += if v < prev { v } else { v - prev };
        prev = v;
        steps += 1;
    }
    if steps == 0 { f64::NAN } else { total }
}

/// Per-second rate: [`increase`] divided by the time between the first and last usable points.
/// NaN with fewer than two points or no elapsed time.
pub fn rate(points: &[(i64, f64)]) -> f64 {
    let usable: Vec<&(i64, f64)> = points.iter().filter(|p| !p.1.is_nan()).collect();
    let (Some(first), Some(last)) = (usable.first(), usable.last()) else {
        return f64::NAN;
    };
    let secs = (last.0 - first.0) as f64 / 1000.0;
    if usable.len() < 2 || secs <= 0.0 {
        return f64::NAN;
    }
    increase(points) / secs
}

/// PromQL's `increase(counter[range])` exactly (Prometheus `extrapolatedRate`, counter case):
/// the reset-corrected delta, extrapolated towards the range edges `[range_start_ms,
/// range_end_ms]` by at most half the average sample interval (and never below zero).
/// `points` must lie inside the range, sorted by time. Fewer than two points give NaN.
pub fn extrapolated_increase(points: &[(i64, f64)], range_start_ms: i64, range_end_ms: i64) -> f64 {
    if points.len() < 2 {
        return f64::NAN;
    }
    let first = points[0];
    let last = points[points.len() - 1];
    let mut result = last.1 - first.1;
    let mut prev = first.1;
    for &(_, v) in &points[1..] {
        if v < prev {
            result += prev;
        }
        prev = v;
    }
    let sampled_interval = (last.0 - first.0) as f64 / 1000.0;
    if sampled_interval <= 0.0 {
        return f64::NAN;
    }
    let average_duration_between_samples = sampled_interval / (points.len() - 1) as f64;
    let mut duration_to_start = (first.0 - range_start_ms) as f64 / 1000.0;
    let mut duration_to_end = (range_end_ms - last.0) as f64 / 1000.0;
    // "Close enough" to an edge means within 110% of the average interval; otherwise the series
    // is assumed to start/end half an interval beyond its first/last sample.
    let extrapolation_threshold = average_duration_between_samples * 1.1;
    if duration_to_start >= extrapolation_threshold {
        duration_to_start = average_duration_between_samples / 2.0;
    }
    // Counters cannot go below zero: do not extrapolate past the point where it would be 0.
    if result > 0.0 && first.1 >= 0.0 {
        let duration_to_zero = sampled_interval * (first.1 / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= extrapolation_threshold {
        duration_to_end = average_duration_between_samples / 2.0;
    }
    let factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    result * factor
}

/// PromQL's `rate(counter[range])`: [`extrapolated_increase`] divided by the range in seconds.
pub fn extrapolated_rate(points: &[(i64, f64)], range_start_ms: i64, range_end_ms: i64) -> f64 {
    let secs = (range_end_ms - range_start_ms) as f64 / 1000.0;
    if secs <= 0.0 {
        return f64::NAN;
    }
    extrapolated_increase(points, range_start_ms, range_end_ms) / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_aggregation_interpolates_like_promql() {
        assert_eq!(quantile(0.5, &[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(quantile(0.5, &[4.0, 1.0, 3.0, 2.0]), 2.5);
        // rank 0.9 * 4 = 3.6: 4 + 0.6 * (5 - 4).
        assert!((quantile(0.9, &[1.0, 2.0, 3.0, 4.0, 5.0]) - 4.6).abs() < 1e-12);
        assert_eq!(quantile(0.5, &[f64::NAN, 7.0]), 7.0);
        assert!(quantile(0.5, &[]).is_nan());
        assert_eq!(quantile(-0.1, &[1.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(1.1, &[1.0]), f64::INFINITY);
    }

    const B: [(f64, f64); 5] =
        [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (5.0, 50.0), (f64::INFINITY, 50.0)];

    #[test]
    fn linear_interpolation_inside_the_bucket() {
        // rank 25 lies in (0.1, 0.5]: 10 below, 20 inside -> 0.1 + 0.4 * 15/20.
        assert!((histogram_quantile(0.5, &B) - 0.4).abs() < 1e-12);
        // rank 5 in the first bucket, lower bound 0 -> 0.1 * 5/10.
        assert!((histogram_quantile(0.1, &B) - 0.05).abs() < 1e-12);
        // q=1: rank 50 reaches bucket 5.0 (first with count >= 50).
        assert_eq!(histogram_quantile(1.0, &B), 5.0);
    }

    #[test]
    fn edges_of_q() {
        assert!(histogram_quantile(f64::NAN, &B).is_nan());
        assert_eq!(histogram_quantile(-0.1, &B), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, &B), f64::INFINITY);
    }

    #[test]
    fn rank_in_inf_bucket_returns_last_finite_bound() {
        let b = [(1.0, 1.0), (2.0, 2.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.9, &b), 2.0);
    }

    #[test]
    fn first_bucket_with_non_positive_bound_returns_that_bound() {
        let b = [(-1.0, 5.0), (1.0, 8.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.2, &b), -1.0);
        let b = [(0.0, 5.0), (1.0, 8.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.2, &b), 0.0);
    }

    #[test]
    fn nan_cases() {
        assert!(histogram_quantile(0.5, &[]).is_nan());
        assert!(histogram_quantile(0.5, &[(f64::INFINITY, 3.0)]).is_nan(), "one bucket");
        assert!(histogram_quantile(0.5, &[(1.0, 1.0), (2.0, 3.0)]).is_nan(), "no +Inf");
        assert!(histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]).is_nan(), "empty");
    }

    #[test]
    fn unsorted_duplicate_and_non_monotonic_buckets_are_fixed_like_promql() {
        // Unsorted input is sorted.
        let shuffled = [B[3], B[0], B[4], B[2], B[1]];
        assert_eq!(histogram_quantile(0.5, &shuffled), histogram_quantile(0.5, &B));
        // A dip (30 -> 25) is forced up to 30: same as the monotonic histogram.
        let dip = [(0.1, 10.0), (0.5, 30.0), (1.0, 25.0), (5.0, 50.0), (f64::INFINITY, 50.0)];
        let fixed = [(0.1, 10.0), (0.5, 30.0), (1.0, 30.0), (5.0, 50.0), (f64::INFINITY, 50.0)];
        assert_eq!(histogram_quantile(0.7, &dip), histogram_quantile(0.7, &fixed));
        // Same bound twice: counts are added.
        let dup = [(1.0, 2.0), (1.0, 2.0), (f64::INFINITY, 8.0)];
        assert_eq!(histogram_quantile(0.25, &dup), 0.5);
    }

    #[test]
    fn increase_handles_resets() {
        let pts = [(0, 10.0), (1000, 15.0), (2000, 3.0), (3000, 8.0)];
        // 5 before the reset, 3 after restarting from 0, then 5.
        assert_eq!(increase(&pts), 13.0);
        assert_eq!(rate(&pts), 13.0 / 3.0);
        assert!(increase(&[(0, 1.0)]).is_nan());
        assert!(rate(&[(0, 1.0), (0, 2.0)]).is_nan(), "no elapsed time");
    }

    #[test]
    fn extrapolated_increase_matches_promql_example() {
        // Samples every 10 s from t=5 s to t=55 s in a [0, 60] s range, +1 per sample.
        let pts: Vec<(i64, f64)> = (0..6).map(|i| (5_000 + i * 10_000, 100.0 + i as f64)).collect();
        // delta 5 over 50 s, extended by 5 s at each end (< 1.1 * 10 s): 5 * 60/50 = 6.
        assert!((extrapolated_increase(&pts, 0, 60_000) - 6.0).abs() < 1e-9);
        assert!((extrapolated_rate(&pts, 0, 60_000) - 0.1).abs() < 1e-12);
        // Starting from 0, the zero point is the first sample: no extrapolation before it.
        let from_zero: Vec<(i64, f64)> = (0..6).map(|i| (5_000 + i * 10_000, i as f64)).collect();
        assert!((extrapolated_increase(&from_zero, 0, 60_000) - 5.5).abs() < 1e-9);
        // A sample far from the end edge: extrapolate only half an interval (5 s) there.
        let early: Vec<(i64, f64)> = (0..3).map(|i| (i * 10_000, 100.0 + i as f64)).collect();
        assert!((extrapolated_increase(&early, 0, 60_000) - 2.0 * 25.0 / 20.0).abs() < 1e-9);
        // Degenerate inputs: fewer than two points, or no time between them.
        assert!(extrapolated_increase(&early[..1], 0, 60_000).is_nan());
        assert!(extrapolated_increase(&[(5, 1.0), (5, 2.0)], 0, 60_000).is_nan());
        // A reset inside the range is corrected before extrapolating: 100 -> 102, reset, 0 -> 3.
        let reset = [(0, 100.0), (10_000, 102.0), (20_000, 0.0), (30_000, 3.0)];
        assert!((extrapolated_increase(&reset, 0, 30_000) - (102.0 - 100.0 + 3.0)).abs() < 1e-9);
    }
}
