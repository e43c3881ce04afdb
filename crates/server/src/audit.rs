//! The audit trail's server side: where its HMAC secret comes from. The chain and the
//! [`Auditor`] every audited change goes through (action confirms, rejects and expiries,
//! service-URL changes, key changes) are the domain's [`cfactory_domain::audit`].

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use cfactory_domain::audit::AuditKey;
pub use cfactory_domain::audit::{Auditor, record};

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

#[cfg(test)]
mod tests {
    use super::*;
    use cfactory_domain::TenantId;
    use cfactory_domain::audit;

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
