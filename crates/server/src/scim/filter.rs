//! The filters and PATCH paths this server reads (RFC 7644 §3.4.2.2 and §3.5.2): an
//! attribute compared with `eq` to a quoted string, and paths of the form `attr`,
//! `attr.sub`, `attr[sub eq "v"]` and `attr[sub eq "v"].sub`, optionally behind the
//! resource's schema URN. Attribute names are compared without regard to case. Anything
//! else is refused, so a client never gets an answer to a question it did not ask.

use super::error::ScimError;

/// `attribute eq "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equality {
    /// The attribute (a sub-attribute as `a.b`), as written.
    pub attribute: String,
    /// The compared value.
    pub value: String,
}

impl Equality {
    /// Whether the attribute is `name`, without regard to case.
    pub fn names(&self, name: &str) -> bool {
        self.attribute.eq_ignore_ascii_case(name)
    }
}

/// Parses a `filter` query parameter: one `attr eq "value"` comparison.
pub fn parse_filter(text: &str) -> Result<Equality, ScimError> {
    let unsupported = || {
        ScimError::invalid_filter(format!(
            "unsupported filter `{text}`: this server answers `ATTRIBUTE eq \"VALUE\"` only"
        ))
    };
    let text = text.trim();
    let (attribute, rest) = text
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    let rest = rest.trim_start();
    let (op, value) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    if !op.eq_ignore_ascii_case("eq") || !valid_attribute(attribute) {
        return Err(unsupported());
    }
    let value = quoted(value.trim()).ok_or_else(unsupported)?;
    Ok(Equality {
        attribute: strip_urn(attribute).to_owned(),
        value,
    })
}

/// A JSON string literal, unescaped; `None` when `text` is not exactly one.
fn quoted(text: &str) -> Option<String> {
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<String>(text).ok()
}

fn valid_attribute(name: &str) -> bool {
    let name = strip_urn(name);
    !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

/// The core schemas' URNs, which may prefix an attribute.
const CORE_URNS: [&str; 2] = [
    "urn:ietf:params:scim:schemas:core:2.0:User:",
    "urn:ietf:params:scim:schemas:core:2.0:Group:",
];

fn strip_urn(name: &str) -> &str {
    for urn in CORE_URNS {
        if name.len() > urn.len() && name[..urn.len()].eq_ignore_ascii_case(urn) {
            return &name[urn.len()..];
        }
    }
    name
}

/// Where a PATCH operation acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPath {
    /// The top-level attribute.
    pub attribute: String,
    /// Which values of a multi-valued attribute: those whose sub-attribute equals.
    pub selector: Option<Equality>,
    /// The sub-attribute acted on.
    pub sub: Option<String>,
}

/// Parses a PATCH `path`.
pub fn parse_path(text: &str) -> Result<PatchPath, ScimError> {
    let bad = || ScimError::invalid_path(format!("unsupported PATCH path `{text}`"));
    let trimmed = strip_urn(text.trim());
    if let Some((attribute, rest)) = trimmed.split_once('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
        let selector = parse_filter(inner).map_err(|_| bad())?;
        let sub = match after {
            "" => None,
            more => Some(more.strip_prefix('.').ok_or_else(bad)?.to_owned()),
        };
        if !valid_attribute(attribute) || attribute.contains('.') {
            return Err(bad());
        }
        if sub
            .as_deref()
            .is_some_and(|s| !valid_attribute(s) || s.contains('.'))
        {
            return Err(bad());
        }
        return Ok(PatchPath {
            attribute: attribute.to_owned(),
            selector: Some(selector),
            sub,
        });
    }
    if !valid_attribute(trimmed) {
        return Err(bad());
    }
    let mut parts = trimmed.splitn(2, '.');
    let attribute = parts.next().unwrap_or_default().to_owned();
    let sub = parts.next().map(str::to_owned);
    if sub.as_deref().is_some_and(|s| s.contains('.')) {
        return Err(bad());
    }
    Ok(PatchPath {
        attribute,
        selector: None,
        sub,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_one_quoted_equality_with_names_in_any_case() {
        let f = parse_filter(r#"userName eq "ada@acme.test""#).unwrap();
        assert!(f.names("username"));
        assert_eq!(f.value, "ada@acme.test");
        let f = parse_filter(r#"  DISPLAYNAME  EQ "Ops \"A\"" "#).unwrap();
        assert!(f.names("displayName"));
        assert_eq!(f.value, "Ops \"A\"");
        let f = parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:externalId eq "x""#)
            .unwrap();
        assert!(f.names("externalId"));
        for bad in [
            "userName",
            r#"userName co "a""#,
            r#"userName eq a"#,
            r#"userName eq "a" and active eq "true""#,
            r#"userName eq "a"#,
            r#"(userName eq "a")"#,
            "",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_name_an_attribute_a_selection_and_a_sub_attribute() {
        assert_eq!(
            parse_path("active").unwrap(),
            PatchPath {
                attribute: "active".into(),
                selector: None,
                sub: None
            }
        );
        let p = parse_path("name.givenName").unwrap();
        assert_eq!(
            (p.attribute.as_str(), p.sub.as_deref()),
            ("name", Some("givenName"))
        );
        let p = parse_path(r#"members[value eq "usr_1"]"#).unwrap();
        assert_eq!(p.attribute, "members");
        assert_eq!(p.selector.unwrap().value, "usr_1");
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse_path("urn:ietf:params:scim:schemas:core:2.0:User:userName").unwrap();
        assert_eq!(p.attribute, "userName");
        for bad in [
            "",
            "a..b",
            "members[value eq x]",
            "members[value eq \"x\"",
            "a.b.c",
            "x[y eq \"1\"]z",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }
}
