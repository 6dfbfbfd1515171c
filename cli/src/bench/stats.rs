//! What the benchmarks compute from their samples.

/// The `p` quantile (0..=1) of `sorted` samples, nearest rank; 0 for none.
pub(super) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
