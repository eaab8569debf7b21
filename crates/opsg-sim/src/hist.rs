//! Cumulative histograms with vLLM's real bucket boundaries (vLLM 0.33.0 `vllm/v1/metrics`).

/// `vllm:time_to_first_token_seconds` buckets (0.8.5 … 0.33.0).
pub const TTFT: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// `vllm:inter_token_latency_seconds` and `vllm:request_time_per_output_token_seconds` buckets.
pub const ITL: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

/// The request-latency family: e2e, queue, inference, prefill and decode time.
pub const REQUEST_LATENCY: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// `vllm:iteration_tokens_total` buckets (0.8.5 … 0.33.0).
pub const ITERATION_TOKENS: &[f64] =
    &[1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];

/// `vllm:request_num_preemptions` buckets (0.33.0).
pub const NUM_PREEMPTIONS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0];

/// `vllm:request_params_n` buckets.
pub const PARAMS_N: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];

/// The 1-2-5 series up to `max_model_len`, as vLLM builds the token-count buckets.
pub fn one_two_five(max_model_len: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut exponent = 1u64;
    loop {
        for m in [1, 2, 5] {
            let v = m * exponent;
            if v > max_model_len {
                return out;
            }
            out.push(v as f64);
        }
        exponent *= 10;
    }
}

/// A Prometheus histogram: per-bucket counts (the last is `+Inf`), sum and count.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds, increasing, without `+Inf`.
    pub bounds: Vec<f64>,
    /// Non-cumulative counts, one per bound plus one for `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of observed values.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram { bounds: bounds.to_vec(), counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    /// Record `n` observations of `value`.
    pub fn observe_n(&mut self, value: f64, n: u64) {
        if n == 0 || !value.is_finite() {
            return;
        }
        let idx = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.counts[idx] += n;
        self.sum += value * n as f64;
        self.count += n;
    }

    /// Record one observation.
    pub fn observe(&mut self, value: f64) {
        self.observe_n(value, 1);
    }

    /// Cumulative counts per bound, then the `+Inf` bucket (== count).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.counts
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect()
    }

    /// The `q` quantile with PromQL `histogram_quantile` interpolation (for tests and /state).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let cumulative = self.cumulative();
        let idx = cumulative.iter().position(|c| *c as f64 >= rank)?;
        if idx == self.bounds.len() {
            return self.bounds.last().copied();
        }
        let (lower, below) =
            if idx == 0 { (0.0, 0.0) } else { (self.bounds[idx - 1], cumulative[idx - 1] as f64) };
        let in_bucket = cumulative[idx] as f64 - below;
        if in_bucket == 0.0 {
            return Some(self.bounds[idx]);
        }
        Some(lower + (self.bounds[idx] - lower) * (rank - below) / in_bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_matches_vllm_example() {
        assert_eq!(
            one_two_five(2048),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
    }

    #[test]
    fn observations_land_in_le_buckets() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.1); // le is inclusive
        h.observe(0.5);
        h.observe_n(5.0, 2);
        assert_eq!(h.cumulative(), vec![1, 2, 4]);
        assert_eq!(h.count, 4);
        assert!((h.sum - 10.6).abs() < 1e-9);
        let median = h.quantile(0.5).unwrap();
        assert!((median - 1.0).abs() < 1e-9, "median {median}");
    }
}
