//! PATCH (RFC 7644 §3.5.2) over a resource's JSON: the resource as the server would
//! answer it is changed operation by operation, then read back as a whole, so a PATCH
//! can only reach what a PUT could. Operation names are taken in any case (Entra sends
//! `Replace`); attribute names are matched without regard to case.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ScimError;
use super::filter::{Equality, PatchPath, parse_path};

/// The schema URN of a PATCH request.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PATCH request body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PatchRequest {
    /// Must hold `urn:ietf:params:scim:api:messages:2.0:PatchOp`.
    pub schemas: Vec<String>,
    /// The operations, applied in order.
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOperation>,
}

/// One PATCH operation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PatchOperation {
    /// `add`, `replace` or `remove`, in any case.
    pub op: String,
    /// Where it acts; without one, `value` holds attributes by name.
    pub path: Option<String>,
    /// What to add or replace with.
    #[schema(value_type = Object)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Applies `request` to `doc`. `multi_valued` names the resource's multi-valued
/// attributes (`emails`, `members`, …), `canonical` its attribute names as the server
/// spells them (a new attribute is stored under that spelling).
pub fn apply(
    doc: &mut Map<String, Value>,
    request: &PatchRequest,
    multi_valued: &[&str],
    canonical: &[&str],
) -> Result<(), ScimError> {
    if !request.schemas.iter().any(|s| s == PATCH_SCHEMA) {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body's schemas must hold {PATCH_SCHEMA}"
        )));
    }
    let patcher = Patcher {
        multi_valued,
        canonical,
    };
    for operation in &request.operations {
        let op = match operation.op.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "replace" => Op::Replace,
            "remove" => Op::Remove,
            other => {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown PATCH op `{other}`: use add, replace or remove"
                )));
            }
        };
        match (&operation.path, op) {
            (None, Op::Remove) => {
                return Err(ScimError::no_target("a remove operation needs a `path`"));
            }
            (None, _) => {
                let Some(Value::Object(values)) = &operation.value else {
                    return Err(ScimError::invalid_value(
                        "an add or replace without a `path` takes an object of attributes",
                    ));
                };
                for (name, value) in values {
                    let path = parse_path(name)?;
                    patcher.at(doc, &path, op, Some(value))?;
                }
            }
            (Some(path), _) => {
                let path = parse_path(path)?;
                if op != Op::Remove && operation.value.is_none() {
                    return Err(ScimError::invalid_value(format!(
                        "the {} operation on `{}` needs a `value`",
                        operation.op, path.attribute
                    )));
                }
                patcher.at(doc, &path, op, operation.value.as_ref())?;
            }
        }
    }
    Ok(())
}

struct Patcher<'a> {
    multi_valued: &'a [&'a str],
    canonical: &'a [&'a str],
}

/// The key of `map` that is `name` without regard to case.
pub fn key_of(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// The value of `map` under `name`, without regard to case.
pub fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn matches(element: &Value, selector: &Equality) -> bool {
    element
        .as_object()
        .and_then(|o| get_ci(o, &selector.attribute))
        .is_some_and(|v| match v {
            Value::String(s) => s == &selector.value,
            Value::Bool(b) => selector.value.eq_ignore_ascii_case(&b.to_string()),
            _ => false,
        })
}

/// Sets or merges `value` into `map[name]` (sub-attributes of a complex value merge).
fn put(map: &mut Map<String, Value>, name: &str, value: &Value) {
    let key = key_of(map, name).unwrap_or_else(|| name.to_owned());
    match (map.get_mut(&key), value) {
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                put(existing, k, v);
            }
        }
        _ => {
            map.insert(key, value.clone());
        }
    }
}

impl Patcher<'_> {
    fn name(&self, attribute: &str) -> String {
        self.canonical
            .iter()
            .find(|c| c.eq_ignore_ascii_case(attribute))
            .map_or_else(|| attribute.to_owned(), |c| (*c).to_owned())
    }

    fn is_multi(&self, attribute: &str) -> bool {
        self.multi_valued
            .iter()
            .any(|m| m.eq_ignore_ascii_case(attribute))
    }

    fn at(
        &self,
        doc: &mut Map<String, Value>,
        path: &PatchPath,
        op: Op,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let key = key_of(doc, &path.attribute).unwrap_or_else(|| self.name(&path.attribute));
        if let Some(selector) = &path.selector {
            return self.selected(doc, &key, selector, path.sub.as_deref(), op, value);
        }
        match (&path.sub, op) {
            (None, Op::Remove) => {
                doc.remove(&key);
            }
            (None, _) => {
                let value = value.cloned().unwrap_or(Value::Null);
                if self.is_multi(&key) {
                    let new = match value {
                        Value::Array(items) => items,
                        one => vec![one],
                    };
                    let list = match (op, doc.remove(&key)) {
                        (Op::Add, Some(Value::Array(mut old))) => {
                            for item in new {
                                if !old.iter().any(|o| same_value(o, &item)) {
                                    old.push(item);
                                }
                            }
                            old
                        }
                        _ => new,
                    };
                    doc.insert(key, Value::Array(list));
                } else {
                    put(doc, &key, &value);
                }
            }
            (Some(sub), _) => {
                if self.is_multi(&key) {
                    return Err(ScimError::invalid_path(format!(
                        "`{key}.{sub}` names a sub-attribute of a multi-valued attribute; \
                         select values with `{key}[ATTRIBUTE eq \"VALUE\"].{sub}`"
                    )));
                }
                let entry = doc
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                let Value::Object(inner) = entry else {
                    return Ok(());
                };
                match op {
                    Op::Remove => {
                        if let Some(k) = key_of(inner, sub) {
                            inner.remove(&k);
                        }
                    }
                    _ => put(inner, sub, value.unwrap_or(&Value::Null)),
                }
            }
        }
        Ok(())
    }

    fn selected(
        &self,
        doc: &mut Map<String, Value>,
        key: &str,
        selector: &Equality,
        sub: Option<&str>,
        op: Op,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        if !self.is_multi(key) {
            return Err(ScimError::invalid_path(format!(
                "`{key}` is not multi-valued: a value selection filter does not apply"
            )));
        }
        let mut list = match doc.remove(key) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let hit = list.iter().any(|e| matches(e, selector));
        match (op, sub) {
            (Op::Remove, None) => list.retain(|e| !matches(e, selector)),
            (Op::Remove, Some(sub)) => {
                for element in list.iter_mut().filter(|e| matches(e, selector)) {
                    if let Value::Object(o) = element
                        && let Some(k) = key_of(o, sub)
                    {
                        o.remove(&k);
                    }
                }
            }
            (_, sub) => {
                let value = value.cloned().unwrap_or(Value::Null);
                let patch = match sub {
                    Some(sub) => {
                        let mut m = Map::new();
                        m.insert(sub.to_owned(), value);
                        Value::Object(m)
                    }
                    None => value,
                };
                if !patch.is_object() {
                    return Err(ScimError::invalid_value(format!(
                        "a value of `{key}` is an object of sub-attributes"
                    )));
                }
                if hit {
                    for element in list.iter_mut().filter(|e| matches(e, selector)) {
                        if let (Value::Object(o), Value::Object(p)) = (element, &patch) {
                            for (k, v) in p {
                                put(o, k, v);
                            }
                        }
                    }
                } else {
                    // Nothing selected: the selected value is made, as the clients that
                    // patch `emails[type eq "work"].value` on a user without one expect.
                    let mut element = Map::new();
                    element.insert(
                        selector.attribute.clone(),
                        Value::String(selector.value.clone()),
                    );
                    if let Value::Object(p) = &patch {
                        for (k, v) in p {
                            put(&mut element, k, v);
                        }
                    }
                    list.push(Value::Object(element));
                }
            }
        }
        doc.insert(key.to_owned(), Value::Array(list));
        Ok(())
    }
}

/// Whether two values of a multi-valued attribute are the same one: equal, or (for
/// complex values) the same `value`.
fn same_value(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            matches!((get_ci(x, "value"), get_ci(y, "value")), (Some(p), Some(q)) if p == q)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, ops: Value) -> Result<Value, ScimError> {
        let Value::Object(mut doc) = doc else {
            unreachable!()
        };
        let request: PatchRequest = serde_json::from_value(json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": ops,
        }))
        .unwrap();
        apply(
            &mut doc,
            &request,
            &["emails", "members", "groups"],
            &["active", "displayName", "members", "name", "emails"],
        )?;
        Ok(Value::Object(doc))
    }

    #[test]
    fn okta_and_entra_shapes_change_what_they_name() {
        let doc = json!({"userName": "a", "active": true, "name": {"givenName": "A"}});
        let out = run(
            doc.clone(),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .unwrap();
        assert_eq!(out["active"], false);
        let out = run(
            doc.clone(),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .unwrap();
        assert_eq!(out["active"], "False");
        let out = run(
            doc.clone(),
            json!([{"op": "Replace", "value": {"name.familyName": "B", "DISPLAYNAME": "AB"}}]),
        )
        .unwrap();
        assert_eq!(out["name"], json!({"givenName": "A", "familyName": "B"}));
        assert_eq!(out["displayName"], "AB");
        let out = run(
            doc.clone(),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@x"}]),
        )
        .unwrap();
        assert_eq!(out["emails"], json!([{"type": "work", "value": "a@x"}]));
        let out = run(doc, json!([{"op": "remove", "path": "name.givenName"}])).unwrap();
        assert_eq!(out["name"], json!({}));
    }

    #[test]
    fn members_are_added_once_and_removed_by_selection() {
        let doc = json!({"displayName": "Ops", "members": [{"value": "u1"}]});
        let out = run(
            doc,
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2", "display": "B"}]},
                {"op": "remove", "path": "members[value eq \"u1\"]"},
            ]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u2", "display": "B"}]));
        let out = run(
            out,
            json!([{"op": "replace", "path": "members", "value": [{"value": "u3"}]}]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u3"}]));
        let out = run(out, json!([{"op": "remove", "path": "members"}])).unwrap();
        assert!(out.get("members").is_none());
    }

    #[test]
    fn operations_that_cannot_apply_are_refused_with_their_scim_type() {
        let doc = json!({"displayName": "Ops"});
        let refused = |ops: Value| run(doc.clone(), ops).unwrap_err().into_response_type();
        assert_eq!(refused(json!([{"op": "remove"}])), Some("noTarget"));
        assert_eq!(
            refused(json!([{"op": "move", "path": "a"}])),
            Some("invalidSyntax")
        );
        assert_eq!(
            refused(json!([{"op": "add", "path": "a[[b"}])),
            Some("invalidPath")
        );
        assert_eq!(
            refused(json!([{"op": "add", "path": "displayName"}])),
            Some("invalidValue")
        );
        assert_eq!(
            refused(json!([{"op": "add", "path": "displayName[value eq \"x\"]", "value": {}}])),
            Some("invalidPath")
        );
    }
}
