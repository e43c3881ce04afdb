//! The envelope parser under generated input: arbitrary text and JSON objects built from
//! the contract's field names with values of every JSON type. It never panics, and
//! whatever it accepts holds the door's promises (an id, a time from 2000 on, bounded
//! finite usage, a title of at most 1,000 characters). `PROPTEST_CASES=100000 cargo test
//! -p cfactory-domain --test parser_fuzz` runs it longer.

use cfactory_domain::CompletionEvent;
use cfactory_domain::event::{MAX_COST_USD, MAX_TEXT_CHARS, MAX_TOKENS, earliest_time};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

const FIELDS: [&str; 16] = [
    "id",
    "correlation_key",
    "service",
    "task_id",
    "status",
    "phase",
    "time",
    "updated_at",
    "title",
    "usage",
    "correlation",
    "outcome",
    "evidence",
    "worker",
    "kind",
    "repo",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(1e308)),
        Just(Value::from(-1)),
        Just(Value::from(u64::MAX)),
        "\\PC{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("aifactory"),
            Just("pfactory"),
            Just("tfactory"),
            Just("done"),
            Just("142"),
            Just("2026-06-01T12:00:00Z"),
            Just("9999-12-31T23:59:59Z"),
            Just("1970-01-01T00:00:00Z"),
            Just("142\u{200B}"),
            Just(".."),
        ]
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("total_tokens".to_owned()),
                    Just("input_tokens".to_owned()),
                    Just("cost_usd".to_owned()),
                    Just("issue_number".to_owned()),
                    Just("workers".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn envelope() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..16).prop_map(
        |fields| {
            let mut obj = Map::new();
            for (k, v) in fields {
                obj.insert(k.to_owned(), v);
            }
            Value::Object(obj)
        },
    )
}

fn holds_the_promises(e: &CompletionEvent) -> Result<(), TestCaseError> {
    prop_assert!(e.id.is_some(), "every accepted event has an id");
    prop_assert!(e.time >= earliest_time());
    prop_assert!(
        e.title
            .as_ref()
            .is_none_or(|t| t.chars().count() <= MAX_TEXT_CHARS)
    );
    if let Some(u) = &e.usage {
        for tokens in [u.input_tokens, u.output_tokens, u.total_tokens]
            .into_iter()
            .flatten()
        {
            prop_assert!(tokens <= MAX_TOKENS);
        }
        if let Some(cost) = u.cost_usd {
            prop_assert!(cost.is_finite() && (0.0..=MAX_COST_USD).contains(&cost));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = CompletionEvent::parse(&text);
    }

    #[test]
    fn generated_envelopes_are_refused_or_hold_the_promises(v in envelope()) {
        if let Ok(e) = CompletionEvent::parse(&v.to_string()) {
            holds_the_promises(&e)?;
        }
    }

    #[test]
    fn a_valid_envelope_with_one_field_changed_is_refused_or_holds(
        field in prop::sample::select(FIELDS.to_vec()),
        replacement in value(),
    ) {
        let mut v = serde_json::json!({
            "id": "e-1", "correlation_key": "142", "service": "aifactory", "task_id": "t-1",
            "status": "done", "phase": "act", "time": "2026-06-01T12:00:00Z",
            "usage": {"total_tokens": 10, "cost_usd": 0.5},
        });
        v[field] = replacement;
        if let Ok(e) = CompletionEvent::parse(&v.to_string()) {
            holds_the_promises(&e)?;
        }
    }
}
