//! Tolerant readers for upstream JSON rows: each takes a list of candidate field paths
//! (dot-separated, first present wins), so one mapping accepts every spelling the
//! services use (`session_id|id`, `branchName|branch`, `provenance.issue_number`, …).

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use serde_json::Value;

/// The first non-null value among `paths` (e.g. `"executionProgress.phase"`).
pub fn pick<'a>(row: &'a Value, paths: &[&str]) -> Option<&'a Value> {
    paths.iter().find_map(|path| {
        let found = path.split('.').try_fold(row, |value, key| value.get(key))?;
        (!found.is_null()).then_some(found)
    })
}

/// The first non-blank text among `paths`; numbers are written out as text.
pub fn text(row: &Value, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|path| as_text(pick(row, &[path])?))
}

/// A non-blank string (trimmed) or a number written out as text.
pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first non-negative integer among `paths`; digit strings (`"142"`, `"#142"`) count.
pub fn number(row: &Value, paths: &[&str]) -> Option<u64> {
    paths.iter().find_map(|path| as_number(pick(row, &[path])?))
}

/// An integer, or a string that is one.
pub fn as_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => cfactory_domain::ids::parse_issue_number(s.trim()),
        _ => None,
    }
}

/// The first number among `paths`; numeric strings count.
pub fn float(row: &Value, paths: &[&str]) -> Option<f64> {
    paths
        .iter()
        .find_map(|path| match pick(row, &[path])? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        })
        .filter(|f| f.is_finite())
}

/// The first readable time among `paths`: RFC 3339, a zone-less ISO time (read as UTC),
/// or a Unix time in seconds or milliseconds.
pub fn time(row: &Value, paths: &[&str]) -> Option<DateTime<Utc>> {
    time_in(row, paths, &Utc)
}

/// Like [`time`], but a zone-less time is a wall-clock time in `zone`, the zone the
/// upstream's server runs in (Python's naive `datetime.now()`, file times).
pub fn time_in<Z: TimeZone>(row: &Value, paths: &[&str], zone: &Z) -> Option<DateTime<Utc>> {
    paths
        .iter()
        .find_map(|path| as_time_in(pick(row, &[path])?, zone))
}

/// A time in any of the spellings [`time`] accepts.
pub fn as_time(value: &Value) -> Option<DateTime<Utc>> {
    as_time_in(value, &Utc)
}

/// A time in any of the spellings [`time`] accepts, zone-less ones read in `zone`.
pub fn as_time_in<Z: TimeZone>(value: &Value, zone: &Z) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .map(|t| local_to_utc(&t, zone))
        }
        Value::Number(n) => {
            let n = n.as_f64()?;
            // Anything past the year 33658 in seconds is really milliseconds.
            let millis = if n.abs() > 1e12 { n } else { n * 1000.0 };
            DateTime::from_timestamp_millis(millis as i64)
        }
        _ => None,
    }
}

/// The instant a wall-clock time in `zone` names.
fn local_to_utc<Z: TimeZone>(local: &NaiveDateTime, zone: &Z) -> DateTime<Utc> {
    match zone.from_local_datetime(local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        // Clocks turned back show this time twice; the first showing is as good a guess
        // as the second, and stable.
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        // Clocks turned forward skipped it, yet a file time can still read so when the
        // server's clock was set by hand: take the offset in force around then.
        LocalResult::None => {
            let offset = zone.offset_from_utc_datetime(local).fix();
            Utc.from_utc_datetime(&(*local - offset))
        }
    }
}

/// The first array among `paths`, or an empty slice.
pub fn list<'a>(row: &'a Value, paths: &[&str]) -> &'a [Value] {
    paths
        .iter()
        .find_map(|path| pick(row, &[path])?.as_array())
        .map_or(&[], Vec::as_slice)
}

/// Unwraps a detail body that comes either bare or inside one of `wrappers`
/// (`{"task": {...}}`, `{"session": {...}}`).
pub fn unwrap_object<'a>(body: &'a Value, wrappers: &[&str]) -> &'a Value {
    wrappers
        .iter()
        .find_map(|k| body.get(*k).filter(|v| v.is_object()))
        .unwrap_or(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_present_path_wins() {
        let row = json!({"id": "a", "session_id": null, "p": {"n": "142"}, "x": 7});
        assert_eq!(text(&row, &["session_id", "id"]).as_deref(), Some("a"));
        assert_eq!(number(&row, &["missing", "p.n"]), Some(142));
        assert_eq!(text(&row, &["x"]).as_deref(), Some("7"));
        assert_eq!(number(&json!({"k": "pf-12"}), &["k"]), None);
    }

    #[test]
    fn times_in_several_spellings() {
        let want = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        for v in [
            json!("2026-01-02T03:04:05Z"),
            json!("2026-01-02T05:04:05+02:00"),
            json!("2026-01-02T03:04:05"),
            json!(want.timestamp()),
            json!(want.timestamp_millis()),
        ] {
            assert_eq!(as_time(&v), Some(want), "{v}");
        }
        assert_eq!(as_time(&json!("yesterday")), None);
    }

    #[test]
    fn zone_less_times_are_read_in_the_given_zone() {
        let plus_two = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        let want = Utc.with_ymd_and_hms(2026, 1, 2, 1, 4, 5).unwrap();
        assert_eq!(
            as_time_in(&json!("2026-01-02T03:04:05"), &plus_two),
            Some(want)
        );
        // A time that carries its own offset ignores the zone.
        assert_eq!(
            as_time_in(&json!("2026-01-02T03:04:05Z"), &plus_two),
            Some(want + chrono::Duration::hours(2))
        );
        let row = json!({"a": null, "b": "2026-01-02 03:04:05.5"});
        assert_eq!(
            time_in(&row, &["a", "b"], &plus_two),
            Some(want + chrono::Duration::milliseconds(500))
        );
    }
}
