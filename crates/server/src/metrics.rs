//! Process counters, rendered in the Prometheus text format at `GET /metrics`. Plain
//! atomics: recording is a few relaxed adds on the ingest path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the ingest latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
    store_errors: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// Counts stored events.
    pub fn ingested(&self, accepted: u64, duplicate: u64) {
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.duplicate.fetch_add(duplicate, Ordering::Relaxed);
    }

    /// Counts events refused for their content.
    pub fn rejected(&self, events: u64) {
        self.rejected.fetch_add(events, Ordering::Relaxed);
    }

    /// Counts a failed store call.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one ingest request's duration.
    pub fn ingest_latency(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP cfactory_events_total Completion events received, by result.\n\
             # TYPE cfactory_events_total counter"
        );
        for (result, counter) in [
            ("accepted", &self.accepted),
            ("duplicate", &self.duplicate),
            ("rejected", &self.rejected),
        ] {
            let _ = writeln!(
                out,
                "cfactory_events_total{{result=\"{result}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cfactory_store_errors_total Store calls that failed.\n\
             # TYPE cfactory_store_errors_total counter\n\
             cfactory_store_errors_total {}",
            load(&self.store_errors)
        );
        let _ = writeln!(
            out,
            "# HELP cfactory_ingest_duration_seconds Ingest request latency.\n\
             # TYPE cfactory_ingest_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += load(bucket);
            let _ = writeln!(
                out,
                "cfactory_ingest_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "cfactory_ingest_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             cfactory_ingest_duration_seconds_sum {}\n\
             cfactory_ingest_duration_seconds_count {count}",
            load(&self.latency_sum_micros) as f64 / 1e6
        );
        out
    }
}

/// The read model's lines of the exposition, and the process's resident memory where the
/// system reports it.
pub fn render_read_model(footprint: &crate::readmodel::Footprint) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP cfactory_read_model_items Work items held in memory for insights, search \
         and the cockpit.\n\
         # TYPE cfactory_read_model_items gauge\n\
         cfactory_read_model_items {}\n\
         # HELP cfactory_read_model_unreadable_items Items left out because their stored \
         state cannot be read.\n\
         # TYPE cfactory_read_model_unreadable_items gauge\n\
         cfactory_read_model_unreadable_items {}\n\
         # HELP cfactory_read_model_item_bytes Estimated memory per held item (sampled).\n\
         # TYPE cfactory_read_model_item_bytes gauge\n\
         cfactory_read_model_item_bytes {}\n\
         # HELP cfactory_read_model_bytes Estimated memory of the held items.\n\
         # TYPE cfactory_read_model_bytes gauge\n\
         cfactory_read_model_bytes {}",
        footprint.items,
        footprint.unreadable,
        footprint.bytes_per_item,
        footprint.items * footprint.bytes_per_item,
    );
    if let Some(bytes) = resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes {bytes}"
        );
    }
    out
}

/// This process's resident memory, from `/proc/self/status` (Linux only).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_and_buckets_cumulatively() {
        let m = Metrics::default();
        m.ingested(3, 1);
        m.rejected(2);
        m.ingest_latency(Duration::from_micros(800));
        m.ingest_latency(Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("cfactory_events_total{result=\"accepted\"} 3"));
        assert!(text.contains("cfactory_events_total{result=\"duplicate\"} 1"));
        assert!(text.contains("cfactory_events_total{result=\"rejected\"} 2"));
        assert!(text.contains("cfactory_ingest_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("cfactory_ingest_duration_seconds_bucket{le=\"0.025\"} 2"));
        assert!(text.contains("cfactory_ingest_duration_seconds_count 2"));
    }
}
