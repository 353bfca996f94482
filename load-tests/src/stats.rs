//! Latency histograms, per-second throughput timelines and the load generator's own CPU time,
//! summarised as the JSON every scenario writes.

use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Microseconds since the epoch: the stamp carried in each message and compared at arrival.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(0)
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Counts per second of a measured window, plus a latency histogram: what one task records
/// and what the tasks' records merge into.
pub struct Recorder {
    /// Latencies in microseconds of the events inside the window.
    pub latencies: Histogram<u64>,
    /// Events per second of the window, by second since the window's start.
    pub per_second: Vec<u64>,
    /// Start of the measured window, epoch microseconds.
    window_start: u64,
    /// End of the measured window, epoch microseconds.
    window_end: u64,
}

impl Recorder {
    pub fn new(window_start: u64, window_end: u64) -> Self {
        let seconds = window_end.saturating_sub(window_start).div_ceil(1_000_000) as usize;
        Self {
            latencies: latency_histogram(),
            per_second: vec![0; seconds.max(1)],
            window_start,
            window_end,
        }
    }

    /// Record one event that started at `started` (epoch µs) and took `latency_micros`;
    /// events outside the window (warm-up, tail) are ignored. Returns whether it counted.
    pub fn record(&mut self, started: u64, latency_micros: u64) -> bool {
        if started < self.window_start || started >= self.window_end {
            return false;
        }
        self.latencies.saturating_record(latency_micros.max(1));
        let second = ((started - self.window_start) / 1_000_000) as usize;
        if let Some(count) = self.per_second.get_mut(second) {
            *count += 1;
        }
        true
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms of the same bounds merge");
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            *mine += theirs;
        }
    }

    /// Length of the window in seconds.
    pub fn window_seconds(&self) -> f64 {
        (self.window_end - self.window_start) as f64 / 1e6
    }

    /// The JSON summary: count, rate, percentiles in milliseconds, the timeline and the
    /// percentile distribution for plotting.
    pub fn summary(&self) -> Value {
        let count = self.latencies.len();
        json!({
            "count": count,
            "per_second_mean": count as f64 / self.window_seconds(),
            "window_s": self.window_seconds(),
            "latency_ms": latency_summary(&self.latencies),
            "timeline_per_second": self.per_second,
        })
    }
}

/// Percentiles in milliseconds and the distribution (quantile, ms) for plots.
pub fn latency_summary(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return json!(null);
    }
    let millis = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    let distribution: Vec<(f64, f64)> = [
        0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
    ]
    .iter()
    .map(|&quantile| (quantile, millis(quantile)))
    .collect();
    json!({
        "min": histogram.min() as f64 / 1000.0,
        "mean": histogram.mean() / 1000.0,
        "p50": millis(0.5),
        "p90": millis(0.9),
        "p99": millis(0.99),
        "p999": millis(0.999),
        "max": histogram.max() as f64 / 1000.0,
        "distribution": distribution,
    })
}

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the list starts at field 3 (state).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&index| fields.get(index)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_inside_the_window() {
        let mut recorder = Recorder::new(1_000_000, 3_000_000);
        assert!(!recorder.record(999_999, 5));
        assert!(recorder.record(1_000_000, 5));
        assert!(recorder.record(2_500_000, 7));
        assert!(!recorder.record(3_000_000, 5));
        assert_eq!(recorder.per_second, vec![1, 1]);
        assert_eq!(recorder.summary()["count"], 2);
    }

    #[test]
    fn cpu_time_is_read() {
        assert!(process_cpu_seconds() >= 0.0);
    }
}
