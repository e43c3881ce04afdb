//! The completion-event envelope parser under coverage-guided fuzzing (libFuzzer).
//!
//! Each input is a request body as the ingress receives it. Bytes that are not UTF-8 are
//! refused at the door and go no further. Text reaches the parser the two ways the
//! ingress (`cfactory_server::api::events::parse_body`) hands it over: the whole body as
//! one event, and, when the body is a JSON array, each element's exact text as one event
//! of a batch. Both go through `CompletionEvent::parse`, the one parser every door uses.
//!
//! The invariants are those of `crates/domain/tests/parser_fuzz.rs`: nothing panics, and
//! whatever is accepted holds the door's bounds (an id, a time from 2000 on, every token
//! figure at most `MAX_TOKENS`, every dollar figure finite and within `0..=MAX_COST_USD`,
//! a title of at most `MAX_TEXT_CHARS` characters). An accepted event also keeps the
//! exact text it was parsed from, and parsing that text again gives the same event.
//! A failed assertion is a panic, which libFuzzer reports as a crash with the input saved.

#![no_main]

use cfactory_domain::CompletionEvent;
use cfactory_domain::event::{
    Evidence, MAX_COST_USD, MAX_EVENT_BYTES, MAX_TEXT_CHARS, MAX_TOKENS, Usage, UsageBreakdown,
    WorkerUsage, earliest_time,
};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if body.len() <= MAX_EVENT_BYTES {
        one_event(body);
    }
    if let Ok(batch) = serde_json::from_str::<Vec<&RawValue>>(body) {
        for raw in batch {
            let raw = raw.get();
            if raw.len() <= MAX_EVENT_BYTES {
                one_event(raw);
            }
        }
    }
});

/// Parses one event's text; when accepted, checks every promise the parser makes.
fn one_event(text: &str) {
    let Ok(event) = CompletionEvent::parse(text) else {
        return;
    };
    assert_eq!(event.raw, text, "an accepted event keeps its exact text");
    assert!(event.id.is_some(), "every accepted event has an id");
    assert!(
        event.time >= earliest_time(),
        "time {} is before 2000",
        event.time
    );
    if let Some(title) = &event.title {
        assert!(
            title.chars().count() <= MAX_TEXT_CHARS,
            "a title of {} characters",
            title.chars().count()
        );
    }
    if let Some(usage) = &event.usage {
        usage_holds(usage);
    }
    if let Some(worker) = &event.worker {
        worker_holds("worker", worker);
    }
    if let Some(evidence) = &event.evidence {
        evidence_holds(evidence);
    }
    assert_eq!(
        CompletionEvent::parse(&event.raw).as_ref(),
        Ok(&event),
        "parsing the same text again gives the same event"
    );
}

fn tokens_hold(field: &str, value: Option<u64>) {
    if let Some(n) = value {
        assert!(n <= MAX_TOKENS, "{field}: {n} tokens accepted");
    }
}

fn cost_holds(field: &str, value: Option<f64>) {
    if let Some(c) = value {
        assert!(
            c.is_finite() && (0.0..=MAX_COST_USD).contains(&c),
            "{field}: ${c} accepted"
        );
    }
}

fn usage_holds(u: &Usage) {
    tokens_hold("usage.input_tokens", u.input_tokens);
    tokens_hold("usage.output_tokens", u.output_tokens);
    tokens_hold("usage.total_tokens", u.total_tokens);
    cost_holds("usage.cost_usd", u.cost_usd);
    for w in &u.workers {
        worker_holds("usage.workers[]", w);
    }
    for b in u.by_provider.values().chain(u.by_model.values()) {
        breakdown_holds(b);
    }
}

fn worker_holds(field: &str, w: &WorkerUsage) {
    tokens_hold(field, w.input_tokens);
    tokens_hold(field, w.output_tokens);
    tokens_hold(field, w.total_tokens);
    tokens_hold(field, w.tokens);
    cost_holds(field, w.cost_usd);
}

fn breakdown_holds(b: &UsageBreakdown) {
    tokens_hold("usage breakdown", b.input_tokens);
    tokens_hold("usage breakdown", b.output_tokens);
    tokens_hold("usage breakdown", b.total_tokens);
    cost_holds("usage breakdown", b.cost_usd);
}

fn evidence_holds(e: &Evidence) {
    if let Some(n) = e.total_tokens {
        assert!(
            u64::try_from(n).is_ok_and(|n| n <= MAX_TOKENS),
            "evidence.total_tokens: {n} accepted"
        );
    }
    cost_holds("evidence.cost_usd", e.cost_usd);
}
