//! API keys: minting (`cfk_` + 40 base62 characters), hashing (only the SHA-256 is
//! stored) and seeding from `CFACTORY_API_KEYS`.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use cfactory_domain::TenantId;
use cfactory_domain::ports::{ApiKey, ApiKeyStore, Scope, StoreError};
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "cfk_";
const SECRET_CHARS: usize = 40;

/// The hex SHA-256 of a key, the only form the store keeps.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` random letters and digits.
pub fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Parses `read,write,ingest,approve,metrics,scim,admin` (also `+`-separated), without repeats.
pub fn parse_scopes(text: &str) -> anyhow::Result<Vec<Scope>> {
    let mut scopes = BTreeSet::new();
    for part in text.split([',', '+']).filter(|p| !p.trim().is_empty()) {
        let scope = Scope::parse(part).with_context(|| {
            format!(
                "unknown scope `{}` (use read, write, ingest, approve, metrics, scim, admin)",
                part.trim()
            )
        })?;
        scopes.insert(scope);
    }
    if scopes.is_empty() {
        bail!("name at least one scope: read, write, ingest, approve, metrics, scim or admin");
    }
    Ok(scopes.into_iter().collect())
}

/// A key made by [`mint`]: the record to store and the secret to show once.
pub struct Minted {
    /// The stored record.
    pub key: ApiKey,
    /// The secret, shown to the user once and never stored.
    pub secret: String,
}

/// Makes a new key for `tenant` with `scopes`.
pub fn mint(
    tenant: TenantId,
    scopes: Vec<Scope>,
    name: Option<String>,
    now: DateTime<Utc>,
) -> Minted {
    Minted {
        key: ApiKey {
            id: format!("key_{}", random_text(12)),
            name,
            tenant,
            scopes,
            created_at: now,
            revoked_at: None,
        },
        secret: format!("{KEY_PREFIX}{}", random_text(SECRET_CHARS)),
    }
}

/// The shortest seeded key: 32 characters, about as hard to guess as a generated one.
pub const MIN_SEED_CHARS: usize = 32;

/// One entry of `CFACTORY_API_KEYS`: `KEY:SCOPES[:TENANT]`, scopes joined by `+`.
#[derive(Debug)]
pub struct SeedKey {
    /// The secret.
    pub secret: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// Its tenant.
    pub tenant: TenantId,
}

/// Parses `CFACTORY_API_KEYS`: entries separated by commas, spaces or newlines. Errors
/// never echo a secret.
pub fn parse_seeds(text: &str) -> anyhow::Result<Vec<SeedKey>> {
    let mut seeds = Vec::new();
    for (i, entry) in text
        .split([',', ' ', '\n', '\t'])
        .filter(|e| !e.trim().is_empty())
        .enumerate()
    {
        let n = i + 1;
        let mut parts = entry.trim().split(':');
        let secret = parts.next().unwrap_or_default().to_owned();
        let scopes = parts.next().with_context(|| {
            format!("CFACTORY_API_KEYS entry {n}: expected KEY:SCOPES[:TENANT]")
        })?;
        let scopes =
            parse_scopes(scopes).with_context(|| format!("CFACTORY_API_KEYS entry {n}"))?;
        let tenant = match parts.next() {
            Some(t) => TenantId::parse(t)
                .map_err(|e| anyhow::anyhow!("CFACTORY_API_KEYS entry {n}: tenant: {e}"))?,
            None => TenantId::default_tenant(),
        };
        if parts.next().is_some() {
            bail!("CFACTORY_API_KEYS entry {n}: expected KEY:SCOPES[:TENANT]");
        }
        if secret.chars().count() < MIN_SEED_CHARS {
            bail!(
                "CFACTORY_API_KEYS entry {n}: a key must be at least {MIN_SEED_CHARS} characters \
                 (generate one with `cfactory keys create`, or 32 random characters)"
            );
        }
        seeds.push(SeedKey {
            secret,
            scopes,
            tenant,
        });
    }
    Ok(seeds)
}

/// Stores each seed that is not stored yet (a revoked seed stays revoked). Returns how
/// many were added.
pub async fn seed(
    store: &dyn ApiKeyStore,
    seeds: Vec<SeedKey>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut added = 0;
    for s in seeds {
        let hash = hash_secret(&s.secret);
        let key = ApiKey {
            id: format!("seed_{}", &hash[..12]),
            name: Some("seeded from CFACTORY_API_KEYS".into()),
            tenant: s.tenant,
            scopes: s.scopes,
            created_at: now,
            revoked_at: None,
        };
        match store.create_key(&key, &hash).await {
            Ok(()) => added += 1,
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_have_the_prefix_and_enough_randomness() {
        let a = mint(
            TenantId::default_tenant(),
            vec![Scope::Read],
            None,
            Utc::now(),
        );
        let b = mint(
            TenantId::default_tenant(),
            vec![Scope::Read],
            None,
            Utc::now(),
        );
        assert!(a.secret.starts_with("cfk_"));
        assert!(a.secret.len() >= 4 + 32);
        assert!(a.secret[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.key.id, b.key.id);
        assert_eq!(hash_secret("abc").len(), 64);
    }

    #[test]
    fn scopes_parse_and_refuse_unknown_words() {
        assert_eq!(
            parse_scopes("write,read+read").unwrap(),
            vec![Scope::Read, Scope::Write]
        );
        assert!(
            parse_scopes("read,root")
                .unwrap_err()
                .to_string()
                .contains("root")
        );
        assert!(parse_scopes(" , ").is_err());
        assert_eq!(parse_scopes("scim").unwrap(), vec![Scope::Scim]);
    }

    #[test]
    fn seeds_parse_without_echoing_secrets() {
        let seeds = parse_seeds(
            "cfk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:read+ingest, cfk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb:admin:acme",
        )
        .unwrap();
        assert_eq!(seeds.len(), 2);
        assert_eq!(seeds[0].scopes, vec![Scope::Read, Scope::Ingest]);
        assert_eq!(seeds[1].tenant.as_str(), "acme");
        let err = parse_seeds("cfk_secretsecretsecret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secretsecret"), "{err}");
        assert!(parse_seeds("short:read").is_err());
        // 31 characters is one too few; 32 is enough.
        assert!(parse_seeds(&format!("{}:read", "k".repeat(31))).is_err());
        assert!(parse_seeds(&format!("{}:read", "k".repeat(32))).is_ok());
    }
}
