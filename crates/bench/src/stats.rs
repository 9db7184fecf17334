//! The figures every benchmark reports, defined once: the median, nearest-rank percentiles,
//! a seeded generator, and this process's memory and CPU time.

use std::time::Duration;

/// The middle value (the upper one of the two middles for an even count); NaN if empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The nearest-rank percentile `q` (0 to 1) of `sorted` (ascending): the smallest value with
/// at least `q` of the values at or below it; NaN if empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match nearest_rank(sorted.len(), q) {
        Some(index) => sorted[index],
        None => f64::NAN,
    }
}

/// [`percentile`] of durations sorted ascending, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    match nearest_rank(sorted.len(), q) {
        Some(index) => sorted[index].as_secs_f64() * 1000.0,
        None => f64::NAN,
    }
}

fn nearest_rank(count: usize, q: f64) -> Option<usize> {
    (count > 0).then(|| ((count as f64 * q).ceil() as usize).clamp(1, count) - 1)
}

/// A deterministic generator (splitmix64), so that every run measures the same data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Roughly normal (sum of uniforms), mean 0, deviation 1.
    pub fn normal(&mut self) -> f32 {
        let sum: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (sum - 2.0) * 1.732
    }
}

/// A field of `/proc/self/status` in KiB (`VmRSS:` now, `VmHWM:` the peak); 0 off Linux.
pub fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of this process, all threads; `None` off Linux.
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/self/stat")
}

/// User plus system CPU time of the calling thread; `None` off Linux.
pub fn thread_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/thread-self/stat")
}

fn cpu_seconds(stat_file: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_file).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every mainstream Linux architecture.
    Some(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 5.0);
        assert_eq!(percentile(&values, 0.95), 10.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
        let durations: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&durations, 0.99), 99.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
    }

    #[test]
    fn the_generator_is_splitmix64() {
        // The first output of splitmix64 seeded with 0, as published with the algorithm.
        assert_eq!(Rng(0).next(), 0xE220_A839_7B1D_CDAF);
    }
}
