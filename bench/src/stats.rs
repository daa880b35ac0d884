//! Percentiles of one run and medians over repetitions.

/// Latency percentiles of one run, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median request latency.
    pub p50_us: f64,
    /// 99th percentile request latency.
    pub p99_us: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples_ns` (sorted here); `None` when
    /// there is no sample.
    pub fn from_samples(mut samples_ns: Vec<u64>) -> Option<Self> {
        if samples_ns.is_empty() {
            return None;
        }
        samples_ns.sort_unstable();
        Some(Self {
            p50_us: percentile(&samples_ns, 0.50) as f64 / 1e3,
            p99_us: percentile(&samples_ns, 0.99) as f64 / 1e3,
        })
    }
}

/// The nearest-rank `quantile` (0.0 to 1.0) of `sorted`; 0 when empty.
pub fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        len if len % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<u64> = (1..=1000).rev().map(|us| us * 1000).collect();
        let latency = Latency::from_samples(samples).expect("samples");
        assert_eq!((latency.p50_us, latency.p99_us), (500.0, 990.0));
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(Latency::from_samples(Vec::new()), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
