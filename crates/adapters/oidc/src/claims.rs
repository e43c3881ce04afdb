//! The ID token's claims as the domain's [`Identity`]: the standard ones the library
//! reads, and the groups and tenant claims (named in the configuration) from the rest.

use cfactory_domain::ports::Identity;
use openidconnect::core::CoreGenderClaim;
use openidconnect::{AdditionalClaims, IdTokenClaims};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::OidcConfig;

/// Every claim of an ID token beyond the standard ones, kept as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

impl OtherClaims {
    /// The claim `name`: a top-level claim of that exact name, else a dotted path into
    /// nested objects (`realm_access.roles`).
    fn get(&self, name: &str) -> Option<&Value> {
        if let Some(value) = self.claims.get(name) {
            return Some(value);
        }
        let mut parts = name.split('.');
        let mut at = self.claims.get(parts.next()?)?;
        for part in parts {
            at = at.as_object()?.get(part)?;
        }
        Some(at)
    }
}

/// A groups claim's names: an array's strings, or one string (some providers send a lone
/// group so); anything else is no group.
pub(crate) fn group_names(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The identity a checked ID token's claims describe.
pub(crate) fn identity(
    claims: &IdTokenClaims<OtherClaims, CoreGenderClaim>,
    config: &OidcConfig,
) -> Identity {
    let other = claims.additional_claims();
    let display_name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned())
        .or_else(|| claims.preferred_username().map(|u| u.as_str().to_owned()));
    Identity {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        display_name,
        groups: group_names(other.get(&config.groups_claim)),
        tenant: config
            .tenant_claim
            .as_deref()
            .and_then(|name| other.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn other(value: Value) -> OtherClaims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn claims_are_found_by_name_or_dotted_path() {
        let c = other(json!({
            "groups": ["a", "b", 3],
            "realm_access": {"roles": ["admin"]},
            "org.tenant": "exact",
            "org": {"tenant": "nested"},
        }));
        assert_eq!(group_names(c.get("groups")), vec!["a", "b"]);
        assert_eq!(group_names(c.get("realm_access.roles")), vec!["admin"]);
        assert_eq!(
            c.get("org.tenant"),
            Some(&json!("exact")),
            "an exact name wins"
        );
        assert_eq!(group_names(c.get("missing")), Vec::<String>::new());
        assert_eq!(
            group_names(c.get("realm_access.nope")),
            Vec::<String>::new()
        );
        assert_eq!(group_names(Some(&json!("solo"))), vec!["solo"]);
        assert_eq!(group_names(Some(&json!({"a": 1}))), Vec::<String>::new());
    }
}
