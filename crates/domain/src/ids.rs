//! Identifier newtypes: correlation keys, event ids, tenants and the lookup identifiers
//! that correlation threads on. Each is parsed once at the edge; an invalid value cannot
//! be built.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted correlation key, in characters.
pub const MAX_KEY_CHARS: usize = 128;

/// Why a correlation key, event id or tenant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value was empty or only whitespace.
    #[error("must not be empty")]
    Empty,
    /// The value was longer than the limit.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// The value contained a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// The value contained characters outside the allowed set.
    #[error("may only contain letters, digits, '-', '_' and '.'")]
    BadCharacter,
    /// The value began or ended with whitespace.
    #[error("must not begin or end with whitespace")]
    Whitespace,
    /// The value contained an invisible formatting character.
    #[error("must not contain zero-width or bidirectional control characters")]
    Invisible,
    /// The value would change under Unicode NFKC normalisation.
    #[error("must be in Unicode NFKC form (a look-alike of another identifier)")]
    NotNormalized,
}

/// Zero-width and bidirectional formatting characters: invisible, so two identifiers
/// that differ only by them would look the same.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// Checks the text of an identifier: no surrounding whitespace, no control or invisible
/// characters, and already in NFKC form, so look-alikes cannot be told apart only by
/// bytes.
pub fn check_identifier_text(value: &str) -> Result<(), IdError> {
    check_visible_text(value)?;
    if !value.is_ascii() && !unicode_normalization::is_nfkc(value) {
        return Err(IdError::NotNormalized);
    }
    Ok(())
}

/// As [`check_identifier_text`] without the NFKC rule: for event ids, which senders mint
/// as opaque text (TFactory's documented envelope uses `…`) and which only deduplicate.
pub fn check_visible_text(value: &str) -> Result<(), IdError> {
    if value.trim() != value {
        return Err(IdError::Whitespace);
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    if value.chars().any(is_invisible) {
        return Err(IdError::Invisible);
    }
    Ok(())
}

fn check_text(value: &str, max: usize) -> Result<(), IdError> {
    if value.trim().is_empty() {
        return Err(IdError::Empty);
    }
    if value.chars().count() > max {
        return Err(IdError::TooLong(max));
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

/// The key a WorkItem is filed under: a GitHub issue number (`"142"`), a synthetic key
/// (`pf-…`, `af-…`, `tf-…`) or another opaque key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationKey(String);

/// What kind of correlation key this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A GitHub issue number without its repository (`"142"`).
    Issue(u64),
    /// A GitHub issue number with its repository (`"acme/shop#142"`).
    RepoIssue(u64),
    /// A synthetic key minted by a service before an issue existed.
    Synthetic,
    /// Any other key.
    Opaque,
}

impl CorrelationKey {
    /// The empty key, which orders before every real key: a lower bound for ranges.
    pub(crate) fn lowest() -> Self {
        Self(String::new())
    }

    /// Parses a key: non-empty, at most 128 characters, no control characters.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        check_text(value, MAX_KEY_CHARS)?;
        Ok(Self(value.to_owned()))
    }

    /// The key for a GitHub issue number.
    pub fn issue(number: u64) -> Self {
        Self(number.to_string())
    }

    /// The key for an issue: `owner/repo#N` when its repository is known, else `N`.
    pub fn of_issue(repo: Option<&str>, number: u64) -> Self {
        match repo {
            Some(r) => Self(format!("{r}#{number}")),
            None => Self::issue(number),
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the key is an issue number, a synthetic key or opaque.
    pub fn kind(&self) -> KeyKind {
        if let Some(n) = parse_issue_number(&self.0) {
            return KeyKind::Issue(n);
        }
        if let Some((_, n)) = split_repo_issue(&self.0) {
            return KeyKind::RepoIssue(n);
        }
        let synthetic = ["pf-", "af-", "tf-"]
            .iter()
            .any(|p| self.0.len() > p.len() && self.0.starts_with(p));
        if synthetic {
            KeyKind::Synthetic
        } else {
            KeyKind::Opaque
        }
    }

    /// The issue number this key carries, with or without its repository.
    pub fn issue_number(&self) -> Option<u64> {
        match self.kind() {
            KeyKind::Issue(n) | KeyKind::RepoIssue(n) => Some(n),
            _ => None,
        }
    }

    /// What an issue marker points at once issue `number` is ambiguous (`#N`): a key no
    /// item is ever filed under.
    pub fn ambiguous_issue(number: u64) -> Self {
        Self(format!("#{number}"))
    }

    /// The issue this key names, `(repository, number)`; the repository is lower-cased
    /// (GitHub's names are case-insensitive) and `None` for a bare number.
    pub fn issue_ref(&self) -> Option<(Option<String>, u64)> {
        if let Some(n) = parse_issue_number(&self.0) {
            return Some((None, n));
        }
        split_repo_issue(&self.0).map(|(r, n)| (Some(r), n))
    }
}

/// Parses a GitHub repository name, `owner/name`, lower-cased; anything else (a bare
/// project id such as `proj`, a URL) is not a repository.
pub fn parse_repo(text: &str) -> Option<String> {
    let (owner, name) = text.trim().split_once('/')?;
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && p != "."
            && p != ".."
    };
    (part_ok(owner) && part_ok(name)).then(|| format!("{owner}/{name}").to_ascii_lowercase())
}

/// Splits `owner/repo#N` into its repository (lower-cased) and number.
fn split_repo_issue(text: &str) -> Option<(String, u64)> {
    let (repo, number) = text.rsplit_once('#')?;
    Some((parse_repo(repo)?, parse_issue_number(number)?))
}

/// Parses `"142"` (or `"#142"`) as an issue number; leading zeros and zero are refused so
/// one issue has one spelling.
pub fn parse_issue_number(text: &str) -> Option<u64> {
    let digits = text.strip_prefix('#').unwrap_or(text);
    if digits.is_empty() || digits.len() > 18 || digits.starts_with('0') {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl TryFrom<String> for CorrelationKey {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_text(&value, MAX_KEY_CHARS)?;
        Ok(Self(value))
    }
}

impl From<CorrelationKey> for String {
    fn from(key: CorrelationKey) -> Self {
        key.0
    }
}

impl fmt::Display for CorrelationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A completion event's CloudEvents `id`: the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

/// Longest accepted event id.
pub const MAX_EVENT_ID_CHARS: usize = 256;

impl EventId {
    /// Parses an event id: non-empty, at most 256 characters, no control characters.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        check_text(value, MAX_EVENT_ID_CHARS)?;
        Ok(Self(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_text(&value, MAX_EVENT_ID_CHARS)?;
        Ok(Self(value))
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant: every row and every store call belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Parses a tenant name: 1–64 characters of letters, digits, `-`, `_` and `.`.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        check_text(value, 64)?;
        check_identifier_text(value)?;
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(IdError::BadCharacter);
        }
        Ok(Self(value.to_owned()))
    }

    /// The tenant that keyless writes (open mode, the CLI, pollers) go to.
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }

    /// The tenant as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something an event or a WorkItem can be found by: a key (own or alias), an issue
/// number, or a service's local task id. Correlation looks every one of them up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    /// The identifier of a key (a WorkItem's own key or one of its aliases).
    pub fn key(key: &CorrelationKey) -> Self {
        Self(format!("key:{}", key.as_str()))
    }

    /// The identifier of a service's local task id (`pfactory` sessions, `aifactory`
    /// tasks, `tfactory` specs).
    pub fn task(service: &str, task_id: &str) -> Self {
        Self(format!("{service}:{task_id}"))
    }

    /// The issue number `n` whatever its repository: filed under the unit that has it, or
    /// under [`CorrelationKey::ambiguous_issue`] once two repositories have an issue `n`
    /// (an event giving only `n` is then kept apart on its own item). Always filed, so a
    /// store's cache of known owners covers it.
    pub fn issue_marker(number: u64) -> Self {
        Self(format!("issue:{number}"))
    }

    /// Whether this is an issue marker rather than something an event can be found by.
    pub fn is_marker(&self) -> bool {
        self.0.starts_with("issue:")
    }

    /// The number of a bare issue key's identifier (`key:142`).
    pub fn bare_issue(&self) -> Option<u64> {
        self.0.strip_prefix("key:").and_then(parse_issue_number)
    }

    /// Rebuilds an identifier read back from a store.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The identifier as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_identifiers_are_refused() {
        for (text, why) in [
            ("142\u{200B}", IdError::Invisible),
            ("\u{202E}241", IdError::Invisible),
            ("e\u{FEFF}1", IdError::Invisible),
            (" 142", IdError::Whitespace),
            ("142 ", IdError::Whitespace),
            ("\u{FF11}\u{FF14}\u{FF12}", IdError::NotNormalized),
            ("ﬁx-1", IdError::NotNormalized),
        ] {
            assert_eq!(check_identifier_text(text), Err(why.clone()), "{text:?}");
            if why != IdError::NotNormalized {
                assert_eq!(check_visible_text(text), Err(why), "{text:?}");
            }
        }
        // Event ids are the sender's opaque text: TFactory's envelope spells one with `…`.
        assert!(check_visible_text("9f1c\u{2026}-uuid4").is_ok());
        for ok in [
            "142",
            "acme/shop#142",
            "pf-abc",
            "caf\u{E9}-142",
            "shop:007",
        ] {
            assert!(check_identifier_text(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(
            TenantId::parse("acme\u{200B}"),
            Err(IdError::Invisible),
            "a tenant name is checked the same way"
        );
    }

    #[test]
    fn keys_are_classified() {
        assert_eq!(
            CorrelationKey::parse("142").unwrap().kind(),
            KeyKind::Issue(142)
        );
        assert_eq!(
            CorrelationKey::parse("pf-abc").unwrap().kind(),
            KeyKind::Synthetic
        );
        assert_eq!(
            CorrelationKey::parse("af-proj:001").unwrap().kind(),
            KeyKind::Synthetic
        );
        assert_eq!(
            CorrelationKey::parse("pf-").unwrap().kind(),
            KeyKind::Opaque
        );
        assert_eq!(
            CorrelationKey::parse("0142").unwrap().kind(),
            KeyKind::Opaque
        );
        assert_eq!(
            CorrelationKey::parse("feature/x").unwrap().kind(),
            KeyKind::Opaque
        );
        let qualified = CorrelationKey::parse("Acme/Shop#7150").unwrap();
        assert_eq!(qualified.kind(), KeyKind::RepoIssue(7150));
        assert_eq!(
            qualified.issue_ref(),
            Some((Some("acme/shop".to_owned()), 7150))
        );
        assert_eq!(
            CorrelationKey::parse("acme#7150").unwrap().kind(),
            KeyKind::Opaque
        );
        assert_eq!(
            CorrelationKey::of_issue(Some("acme/shop"), 7).as_str(),
            "acme/shop#7"
        );
    }

    #[test]
    fn repositories_are_owner_and_name() {
        assert_eq!(parse_repo("Acme/Shop").as_deref(), Some("acme/shop"));
        for bad in [
            "proj",
            "demo",
            "a/b/c",
            "/x",
            "x/",
            "a/..",
            "https://github.com/a/b",
        ] {
            assert_eq!(parse_repo(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(CorrelationKey::parse(""), Err(IdError::Empty));
        assert_eq!(CorrelationKey::parse("  "), Err(IdError::Empty));
        assert_eq!(
            CorrelationKey::parse(&"k".repeat(129)),
            Err(IdError::TooLong(128))
        );
        assert!(CorrelationKey::parse(&"k".repeat(128)).is_ok());
        assert_eq!(
            CorrelationKey::parse("a\nb"),
            Err(IdError::ControlCharacter)
        );
    }

    #[test]
    fn tenants_are_restricted() {
        assert!(TenantId::parse("acme-prod").is_ok());
        assert_eq!(TenantId::parse("a b"), Err(IdError::BadCharacter));
        assert_eq!(TenantId::parse(""), Err(IdError::Empty));
    }
}
