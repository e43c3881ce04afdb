//! The audit trail's server side: where its HMAC secret comes from, and the anchor file
//! that notes each chain's newest entry outside the store. The chain and the [`Auditor`]
//! every audited change goes through (action confirms, rejects and expiries, service-URL
//! changes, key changes) are the domain's [`cfactory_domain::audit`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use async_trait::async_trait;
use cfactory_domain::TenantId;
use cfactory_domain::audit::{Anchor, AuditAnchor, AuditKey, AuditLog};
pub use cfactory_domain::audit::{Auditor, record};
use cfactory_domain::ports::StoreError;
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// The file in the data dir that keeps a loopback server's generated secret.
pub const KEY_FILE: &str = "audit.key";

/// The anchor file's name in the data dir, unless `--audit-anchor` places it elsewhere.
pub const ANCHOR_FILE: &str = "audit.anchor";

/// The auditor for this process: the secret from [`load_key`] and the anchor file from
/// the settings. `loopback` says whether a secret may be generated in the data dir.
pub async fn auditor(
    settings: &Settings,
    log: Arc<dyn AuditLog>,
    loopback: bool,
) -> anyhow::Result<Auditor> {
    let chains = log
        .has_chains()
        .await
        .context("reading whether the store holds audit chains")?;
    let key = load_key(settings, loopback, chains)?;
    let anchor = FileAnchor::new(settings.audit_anchor_path());
    Ok(Auditor::new(log, key).with_anchor(Arc::new(anchor)))
}

/// The audit secret: `CFACTORY_AUDIT_HMAC_SECRET` when set; otherwise, for a loopback
/// server or the CLI, the one kept in the data dir, generated on first use (mode 0600) so
/// verification survives restarts and works from the CLI. A non-loopback server refuses
/// to start without the variable, and no secret is generated for a store that already
/// holds chains (`chains`): they could never be verified again.
pub fn load_key(settings: &Settings, loopback: bool, chains: bool) -> anyhow::Result<AuditKey> {
    if let Some(secret) = &settings.audit_secret {
        return AuditKey::new(secret.expose().trim().as_bytes().to_vec())
            .context("CFACTORY_AUDIT_HMAC_SECRET must be at least 16 characters");
    }
    if !loopback {
        bail!(
            "refusing to serve on a non-loopback address without CFACTORY_AUDIT_HMAC_SECRET \
             (the audit chain's HMAC secret; at least 16 characters, the same for every \
             server and CLI on this database)"
        );
    }
    key_in(&settings.data_dir, chains)
}

fn key_in(dir: &Path, chains: bool) -> anyhow::Result<AuditKey> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        if chains {
            bail!(
                "the store holds audit chains but their secret is not here: {} is missing \
                 and CFACTORY_AUDIT_HMAC_SECRET is not set. A new secret would leave every \
                 chain unverifiable, so none is made: set the variable to the secret the \
                 chains were sealed with, restore the file, or pass the --data-dir that \
                 holds it",
                path.display()
            );
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data dir {}", dir.display()))?;
        let secret: String = {
            use rand::Rng;
            let bytes: [u8; 32] = rand::rng().random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(secret.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated the audit chain's secret");
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the audit secret {}", path.display()))?;
    AuditKey::new(text.trim().as_bytes().to_vec())
        .with_context(|| format!("{} holds fewer than 16 characters", path.display()))
}

/// Whether `file`'s last byte is not a newline (an empty file is not mid-line).
fn ends_mid_line(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// One line of the anchor file.
#[derive(Serialize, Deserialize)]
struct AnchorLine {
    tenant: String,
    seq: u64,
    entry_hash: String,
}

/// Chain heads noted in an append-only file, one JSON line per append, flushed to disk
/// before the append counts as done. Any number of processes may share the file: each
/// line is one `write` to a file opened for appending.
pub struct FileAnchor {
    path: PathBuf,
}

impl FileAnchor {
    /// The anchor kept at `path` (created with its directory on the first append).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn unavailable(&self, what: &str, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!(
            "cannot {what} the audit anchor {}: {e}",
            self.path.display()
        ))
    }
}

#[async_trait]
impl AuditAnchor for FileAnchor {
    async fn note(&self, tenant: &TenantId, anchor: &Anchor) -> Result<(), StoreError> {
        let mut line = serde_json::to_string(&AnchorLine {
            tenant: tenant.as_str().to_owned(),
            seq: anchor.seq,
            entry_hash: anchor.entry_hash.clone(),
        })
        .map_err(|e| self.unavailable("encode a line for", &e))?;
        line.push('\n');
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut line = line;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.read(true).append(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            // After a line torn by a crash, start afresh on a line of its own.
            if ends_mid_line(&mut file)? {
                line.insert(0, '\n');
            }
            file.write_all(line.as_bytes())?;
            file.sync_data()
        })
        .await
        .map_err(|e| self.unavailable("write", &e))?;
        written.map_err(|e| self.unavailable("write", &e))
    }

    async fn noted(&self, tenant: &TenantId) -> Result<Vec<Anchor>, StoreError> {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.unavailable("read", &e)),
        };
        // A line torn by a crash mid-write is skipped: the entry it would have named is
        // in the store, and the lines around it still hold.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<AnchorLine>(l).ok())
            .filter(|l| l.tenant == tenant.as_str())
            .map(|l| Anchor {
                seq: l.seq,
                entry_hash: l.entry_hash,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfactory_domain::TenantId;
    use cfactory_domain::audit;

    #[test]
    fn a_generated_secret_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = key_in(dir.path(), false).unwrap();
        let b = key_in(dir.path(), false).unwrap();
        let tenant = TenantId::default_tenant();
        let r = record("local", "key.created", chrono::Utc::now());
        assert_eq!(
            audit::seal(&a, &tenant, 1, &r, audit::GENESIS),
            audit::seal(&b, &tenant, 1, &r, audit::GENESIS),
            "the second load reads the same secret"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn no_secret_is_made_beside_existing_chains() {
        let dir = tempfile::tempdir().unwrap();
        let e = key_in(dir.path(), true).unwrap_err().to_string();
        assert!(
            e.contains("audit chains but their secret is not here"),
            "{e}"
        );
        assert!(!dir.path().join(KEY_FILE).exists(), "nothing was written");
        // Once the file is there (restored), it is used.
        key_in(dir.path(), false).unwrap();
        key_in(dir.path(), true).unwrap();
    }

    #[tokio::test]
    async fn the_anchor_keeps_each_tenants_entries_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(ANCHOR_FILE);
        let anchor = FileAnchor::new(path.clone());
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        assert!(anchor.noted(&acme).await.unwrap().is_empty());
        let at = |seq: u64| Anchor {
            seq,
            entry_hash: format!("h{seq}"),
        };
        for (tenant, seq) in [(&acme, 1), (&acme, 2), (&globex, 7)] {
            anchor.note(tenant, &at(seq)).await.unwrap();
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"tenant":"acme","seq":9,"entry_h"#)
            .unwrap();
        assert_eq!(anchor.noted(&acme).await.unwrap(), [at(1), at(2)]);
        // The next append after the torn line is read whole.
        anchor.note(&acme, &at(3)).await.unwrap();
        assert_eq!(anchor.noted(&acme).await.unwrap(), [at(1), at(2), at(3)]);
        assert_eq!(anchor.noted(&globex).await.unwrap(), [at(7)]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
