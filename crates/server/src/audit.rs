//! The audit trail's server side: where its HMAC secret comes from, and the `Auditor`
//! every audited change goes through (action confirms, rejects and expiries, service-URL
//! changes, key changes). The chain itself is the domain's [`cfactory_domain::audit`].

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use cfactory_domain::TenantId;
use cfactory_domain::audit::{self, AuditEntry, AuditKey, AuditLog, AuditRecord, ChainReport};
use cfactory_domain::ports::StoreError;

use crate::settings::Settings;

/// The file in the data dir that keeps a loopback server's generated secret.
pub const KEY_FILE: &str = "audit.key";

/// The audit secret: `CFACTORY_AUDIT_HMAC_SECRET` when set; otherwise, for a loopback
/// server or the CLI, the one kept in the data dir, generated on first use (mode 0600) so
/// verification survives restarts and works from the CLI. A non-loopback server refuses
/// to start without the variable.
pub fn load_key(settings: &Settings, loopback: bool) -> anyhow::Result<AuditKey> {
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
    key_in(&settings.data_dir)
}

fn key_in(dir: &Path) -> anyhow::Result<AuditKey> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
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

/// Appends and verifies audit entries with the configured secret.
#[derive(Clone)]
pub struct Auditor {
    log: Arc<dyn AuditLog>,
    key: AuditKey,
}

impl Auditor {
    /// An auditor over `log`, sealing with `key`.
    pub fn new(log: Arc<dyn AuditLog>, key: AuditKey) -> Self {
        Self { log, key }
    }

    /// Appends `record` to `tenant`'s chain.
    pub async fn record(
        &self,
        tenant: &TenantId,
        record: AuditRecord,
    ) -> Result<AuditEntry, StoreError> {
        self.log.append(&self.key, tenant, record).await
    }

    /// A page of `tenant`'s entries, newest first.
    pub async fn page(
        &self,
        tenant: &TenantId,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.log.audit_page(tenant, limit, before_id).await
    }

    /// Verifies `tenant`'s whole chain.
    pub async fn verify(&self, tenant: &TenantId) -> Result<ChainReport, StoreError> {
        let (rows, head) = self.log.audit_chain(tenant).await?;
        Ok(audit::verify(&self.key, tenant, &rows, head.as_ref()))
    }
}

/// A record of `kind` by `actor` at `now` with nothing else set; fill in the rest.
pub fn record(actor: &str, kind: &str, now: chrono::DateTime<chrono::Utc>) -> AuditRecord {
    AuditRecord {
        at: now,
        actor: actor.to_owned(),
        kind: kind.to_owned(),
        correlation_key: None,
        target: None,
        method: None,
        endpoint: None,
        status_code: None,
        ok: true,
        action_id: None,
        payload_sha256: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = key_in(dir.path()).unwrap();
        let b = key_in(dir.path()).unwrap();
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
}
