//! The one rule for paged routes' `limit` and `cursor` query parameters, so every list
//! answers a bad page request the same way: a blank value means the default, a
//! whole number from 1 is clamped to the route's most, anything else is a 422 naming the
//! parameter; a cursor the server did not issue is a 422 naming `cursor`.

use crate::problem::ApiError;

/// The page size `text` asks for under `field`: `default` when absent or blank, at most
/// `max`.
pub fn limit(field: &str, text: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(t) => match t.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n.min(max)),
            _ => Err(ApiError::field(
                field,
                format!(
                    "`{field}` must be a whole number from 1 (larger values are clamped to {max})"
                ),
            )),
        },
    }
}

/// The cursor `text` carries, decoded by `decode`; `None` when absent or blank.
pub fn cursor<T>(
    text: Option<&str>,
    decode: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(c) => decode(c)
            .map(Some)
            .ok_or_else(|| ApiError::field("cursor", "not a cursor this server issued")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_clamp_and_refuse() {
        assert_eq!(limit("limit", None, 50, 500).unwrap(), 50);
        assert_eq!(limit("limit", Some("  "), 50, 500).unwrap(), 50);
        assert_eq!(limit("limit", Some(" 7 "), 50, 500).unwrap(), 7);
        assert_eq!(limit("limit", Some("9000"), 50, 500).unwrap(), 500);
        for bad in ["0", "-1", "ten", "1.5"] {
            assert!(limit("top", Some(bad), 50, 500).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_decode_or_refuse() {
        let num = |c: &str| c.parse::<i64>().ok().filter(|n| *n > 0);
        assert_eq!(cursor(None, num).unwrap(), None);
        assert_eq!(cursor(Some(""), num).unwrap(), None);
        assert_eq!(cursor(Some("12"), num).unwrap(), Some(12));
        assert!(cursor(Some("abc"), num).is_err());
    }
}
