//! The same-host sentinel: services on this host may drop a `COMPLETED.json` (one event,
//! or an array of them) anywhere under `CFACTORY_SENTINEL_DIR`. Each file is read once its
//! write has settled (same size and modification time on two scans in a row), ingested
//! through the normal path, and read again whenever it is rewritten; the store's dedup by
//! event id keeps that idempotent. A half-written file is retried, never half-ingested.
//! Only regular files are read, no symbolic link is followed, and a file over 1 MiB is
//! refused unread, so a FIFO, a link to elsewhere or a huge file can neither stall the
//! scan nor grow the process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cfactory_domain::ports::WorkItemStore;
use cfactory_domain::{Clock, CompletionEvent, IngestOutcome, TenantId};
use serde_json::Value;
use serde_json::value::RawValue;

/// The file name services write.
pub const SENTINEL_FILE: &str = "COMPLETED.json";

/// The largest sentinel file read: one event's limit.
pub const MAX_SENTINEL_BYTES: u64 = cfactory_domain::event::MAX_EVENT_BYTES as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: SystemTime,
}

#[derive(Debug, Default)]
struct FileState {
    last_seen: Option<Stamp>,
    handled: Option<Stamp>,
}

/// What one scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Events newly accepted.
    pub accepted: usize,
    /// Events already recorded.
    pub duplicates: usize,
    /// Files that settled but could not be read as events.
    pub rejected: usize,
    /// Files still being written.
    pub pending: usize,
}

/// Watches one directory tree.
pub struct Sentinel {
    dir: PathBuf,
    tenant: TenantId,
    store: Arc<dyn WorkItemStore>,
    clock: Arc<dyn Clock>,
    max_clock_skew: chrono::Duration,
    files: HashMap<PathBuf, FileState>,
}

fn find_files(dir: &Path, out: &mut Vec<(PathBuf, Stamp)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        // `DirEntry::metadata` does not follow links: a linked directory is not entered
        // and a linked, FIFO or device `COMPLETED.json` is not taken.
        if meta.is_dir() {
            find_files(&path, out);
        } else if meta.is_file() && entry.file_name() == SENTINEL_FILE {
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((
                path,
                Stamp {
                    len: meta.len(),
                    modified,
                },
            ));
        }
    }
}

/// What reading one sentinel file gave.
enum Read {
    /// The file's text.
    Text(String),
    /// Why it was not read.
    Refused(String),
}

/// Reads `path` if it is a regular file of at most [`MAX_SENTINEL_BYTES`], never through a
/// symbolic link and never waiting on a FIFO (the file may have been swapped since the
/// scan saw it).
fn read_regular(path: &Path) -> std::io::Result<Read> {
    use std::io::Read as _;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NOFOLLOW | libc::O_NONBLOCK,
    );
    let file = match options.open(path) {
        Ok(file) => file,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Read::Refused("is a symbolic link".into()));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Read::Refused("is not a regular file".into()));
    }
    if meta.len() > MAX_SENTINEL_BYTES {
        return Ok(Read::Refused(format!(
            "is {} bytes, over the {MAX_SENTINEL_BYTES}-byte limit",
            meta.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_SENTINEL_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SENTINEL_BYTES {
        return Ok(Read::Refused(format!(
            "grew past the {MAX_SENTINEL_BYTES}-byte limit while read"
        )));
    }
    Ok(Read::Text(text))
}

/// Parses a sentinel file: one event object or an array of them.
fn parse_file(text: &str) -> Result<Vec<CompletionEvent>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<Box<RawValue>> =
            serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
        items
            .iter()
            .map(|raw| {
                let value: Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                CompletionEvent::from_value(&value, raw.get().to_owned()).map_err(|e| e.to_string())
            })
            .collect()
    } else {
        CompletionEvent::parse(text)
            .map(|e| vec![e])
            .map_err(|e| e.to_string())
    }
}

impl Sentinel {
    /// A sentinel over `dir`, ingesting for `tenant`; a file holding an event dated more
    /// than `max_clock_skew` after `clock`'s now is refused whole, as HTTP ingest would.
    pub fn new(
        dir: PathBuf,
        tenant: TenantId,
        store: Arc<dyn WorkItemStore>,
        clock: Arc<dyn Clock>,
        max_clock_skew: chrono::Duration,
    ) -> Self {
        Self {
            dir,
            tenant,
            store,
            clock,
            max_clock_skew,
            files: HashMap::new(),
        }
    }

    /// Scans forever, every `interval`.
    pub async fn run(mut self, interval: Duration) {
        tracing::info!(dir = %self.dir.display(), "watching for COMPLETED.json files");
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let report = self.scan_once().await;
            if report.accepted + report.rejected > 0 {
                tracing::info!(?report, "sentinel scan");
            }
        }
    }

    /// One scan: ingests every settled, new or rewritten file.
    pub async fn scan_once(&mut self) -> ScanReport {
        let dir = self.dir.clone();
        let found = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            find_files(&dir, &mut out);
            out
        })
        .await
        .unwrap_or_default();
        let mut report = ScanReport::default();
        for (path, stamp) in found {
            let state = self.files.entry(path.clone()).or_default();
            let settled = state.last_seen == Some(stamp);
            state.last_seen = Some(stamp);
            if state.handled == Some(stamp) {
                continue;
            }
            if !settled {
                report.pending += 1;
                continue;
            }
            let reading = path.clone();
            let read = tokio::task::spawn_blocking(move || read_regular(&reading))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            let text = match read {
                Ok(Read::Text(t)) => t,
                Ok(Read::Refused(reason)) => {
                    tracing::warn!(path = %path.display(), %reason, "sentinel file refused");
                    report.rejected += 1;
                    self.mark(&path, stamp);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read sentinel file");
                    report.pending += 1;
                    continue;
                }
            };
            let now = self.clock.now();
            let parsed = parse_file(&text).and_then(|events| {
                for e in &events {
                    e.check_not_ahead(now, self.max_clock_skew)
                        .map_err(|e| e.to_string())?;
                }
                Ok(events)
            });
            match parsed {
                Ok(events) => match self.store.ingest(&self.tenant, events).await {
                    Ok(outcomes) => {
                        for o in outcomes {
                            match o {
                                IngestOutcome::Accepted { .. } => report.accepted += 1,
                                IngestOutcome::Duplicate { .. } => report.duplicates += 1,
                            }
                        }
                        self.mark(&path, stamp);
                    }
                    // The store is down: leave the file unhandled and try again next scan.
                    Err(e) => {
                        tracing::warn!(error = %e, "sentinel could not ingest; will retry");
                        report.pending += 1;
                    }
                },
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "sentinel file is not a completion event");
                    report.rejected += 1;
                    self.mark(&path, stamp);
                }
            }
        }
        report
    }

    fn mark(&mut self, path: &Path, stamp: Stamp) {
        if let Some(state) = self.files.get_mut(path) {
            state.handled = Some(stamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfactory_domain::SystemClock;
    use cfactory_domain::memory::InMemoryStore;

    fn event(id: &str) -> String {
        format!(
            r#"{{"id":"{id}","correlation_key":"31","service":"tfactory","task_id":"spec-1","status":"executing","phase":"executing","time":"2026-11-01T10:00:00Z"}}"#
        )
    }

    fn sentinel(dir: &Path) -> (Sentinel, InMemoryStore) {
        let store = InMemoryStore::new(Arc::new(SystemClock));
        (
            Sentinel::new(
                dir.to_path_buf(),
                TenantId::default_tenant(),
                Arc::new(store.clone()),
                Arc::new(SystemClock),
                chrono::Duration::seconds(300),
            ),
            store,
        )
    }

    #[tokio::test]
    async fn a_settled_file_is_ingested_once_and_a_rewrite_is_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("spec-1");
        std::fs::create_dir_all(&nested).unwrap();
        let file = nested.join(SENTINEL_FILE);
        std::fs::write(&file, event("s-1")).unwrap();
        let (mut s, store) = sentinel(dir.path());

        let first = s.scan_once().await;
        assert_eq!((first.accepted, first.pending), (0, 1), "not settled yet");
        let second = s.scan_once().await;
        assert_eq!(second.accepted, 1);
        let third = s.scan_once().await;
        assert_eq!(
            third,
            ScanReport::default(),
            "a handled file is not read again"
        );

        // Rewritten with the same event plus a new one: read again, deduplicated by id.
        std::fs::write(&file, format!("[{},{}]", event("s-1"), event("s-2"))).unwrap();
        s.scan_once().await;
        let fourth = s.scan_once().await;
        assert_eq!((fourth.accepted, fourth.duplicates), (1, 1));
        let item = store
            .get(&TenantId::default_tenant(), "31")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item.event_count, 2);
    }

    #[tokio::test]
    async fn a_half_written_file_is_never_half_ingested() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(SENTINEL_FILE);
        let whole = format!("[{},{}]", event("h-1"), event("h-2"));
        std::fs::write(&file, &whole[..whole.len() / 2 + 10]).unwrap();
        let (mut s, store) = sentinel(dir.path());
        s.scan_once().await;
        let report = s.scan_once().await;
        assert_eq!(report.accepted, 0);
        assert_eq!(report.rejected, 1);
        assert!(
            store
                .get(&TenantId::default_tenant(), "31")
                .await
                .unwrap()
                .is_none()
        );
        // The writer finishes: the whole file is taken.
        std::fs::write(&file, &whole).unwrap();
        s.scan_once().await;
        assert_eq!(s.scan_once().await.accepted, 2);
    }

    #[tokio::test]
    async fn a_file_dated_beyond_the_skew_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(SENTINEL_FILE);
        let ahead = (chrono::Utc::now() + chrono::Duration::seconds(3600)).to_rfc3339();
        let late = event("f-2").replace("2026-11-01T10:00:00Z", &ahead);
        std::fs::write(&file, format!("[{},{late}]", event("f-1"))).unwrap();
        let (mut s, store) = sentinel(dir.path());
        s.scan_once().await;
        let report = s.scan_once().await;
        assert_eq!((report.accepted, report.rejected), (0, 1), "{report:?}");
        assert!(
            store
                .get(&TenantId::default_tenant(), "31")
                .await
                .unwrap()
                .is_none(),
            "nothing of the file is stored"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn links_fifos_and_huge_files_are_not_read_and_stall_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        // A good event in a file outside the tree, reached only through links.
        let outside = elsewhere.path().join(SENTINEL_FILE);
        std::fs::write(&outside, event("l-1")).unwrap();
        std::fs::create_dir_all(dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("link").join(SENTINEL_FILE)).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("linked-dir")).unwrap();
        // A FIFO no one writes to: opening it for reading would wait forever.
        std::fs::create_dir_all(dir.path().join("fifo")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("fifo").join(SENTINEL_FILE))
            .status()
            .unwrap();
        assert!(made.success());
        // A file over the limit.
        std::fs::create_dir_all(dir.path().join("huge")).unwrap();
        let huge = format!("[{}]", vec![event("x"); 12_000].join(","));
        assert!(huge.len() as u64 > MAX_SENTINEL_BYTES);
        std::fs::write(dir.path().join("huge").join(SENTINEL_FILE), huge).unwrap();
        // And one good file.
        std::fs::create_dir_all(dir.path().join("good")).unwrap();
        std::fs::write(dir.path().join("good").join(SENTINEL_FILE), event("g-1")).unwrap();

        let (mut s, store) = sentinel(dir.path());
        let scan = async {
            s.scan_once().await;
            s.scan_once().await
        };
        let report = tokio::time::timeout(Duration::from_secs(10), scan)
            .await
            .expect("the scan never waits on a FIFO");
        assert_eq!(
            (report.accepted, report.rejected),
            (1, 1),
            "only the good file is read; the huge one is refused: {report:?}"
        );
        let item = store
            .get(&TenantId::default_tenant(), "31")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item.event_count, 1, "nothing came through a link");
    }
}
