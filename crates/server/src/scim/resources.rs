//! The SCIM resources as they go over the wire (RFC 7643 §4): a [`User`] or a [`Group`]
//! of the domain rendered as `UserResource` / `GroupResource`, and a request's JSON read
//! back into what the store takes ([`ProvisionedUser`], [`GroupDraft`]). Attribute names
//! in requests are read without regard to case; read-only attributes (`id`, `groups`,
//! `meta`) in a request are ignored, as RFC 7644 §3.5.1 asks.

use cfactory_domain::ports::{Group, GroupDraft, PersonName, ProvisionedUser, User};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ScimError;
use super::patch::get_ci;

/// The core User schema's URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema's URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// A list response's URN.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A User's multi-valued attributes.
pub const USER_MULTI_VALUED: [&str; 2] = ["emails", "groups"];
/// A User's attribute names as this server spells them.
pub const USER_ATTRIBUTES: [&str; 9] = [
    "id",
    "externalId",
    "userName",
    "name",
    "displayName",
    "emails",
    "active",
    "groups",
    "meta",
];
/// A Group's multi-valued attributes.
pub const GROUP_MULTI_VALUED: [&str; 1] = ["members"];
/// A Group's attribute names as this server spells them.
pub const GROUP_ATTRIBUTES: [&str; 5] = ["id", "externalId", "displayName", "members", "meta"];

/// Where the resources of this server live: the `/scim/v2` address as the client reached
/// it, for `Location` and `meta.location`.
#[derive(Debug, Clone)]
pub struct Base(pub String);

impl Base {
    /// A resource's address.
    pub fn of(&self, kind: &str, id: &str) -> String {
        format!("{}/{kind}/{id}", self.0)
    }
}

/// A resource's metadata.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// `User` or `Group`.
    pub resource_type: &'static str,
    /// When it was made.
    pub created: String,
    /// When it last changed.
    pub last_modified: String,
    /// Its address.
    pub location: String,
    /// A weak version tag that changes with every change.
    pub version: String,
}

fn meta(
    kind: &'static str,
    location: String,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
) -> Meta {
    Meta {
        resource_type: kind,
        created: created.to_rfc3339_opts(SecondsFormat::Millis, true),
        last_modified: updated.to_rfc3339_opts(SecondsFormat::Millis, true),
        location,
        version: format!("W/\"{}\"", updated.timestamp_micros()),
    }
}

/// A User's name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameDoc {
    /// Given name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// The whole name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
}

/// An email of a User (this server keeps one: the primary).
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailDoc {
    /// The address.
    pub value: String,
}

/// A member of a Group.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDoc {
    /// The member's user id.
    pub value: String,
    /// The member's address.
    #[serde(rename = "$ref")]
    pub reference: String,
}

/// A group of a User.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefDoc {
    /// The referenced resource's id.
    pub value: String,
    /// Its address.
    #[serde(rename = "$ref")]
    pub reference: String,
    /// How it is named.
    pub display: String,
    /// Always `direct`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A SCIM User.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResource {
    /// `["urn:ietf:params:scim:schemas:core:2.0:User"]`.
    pub schemas: Vec<&'static str>,
    /// CFactory's id (`usr_…`).
    pub id: String,
    /// The client's id for the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Unique within the tenant without regard to case.
    pub user_name: String,
    /// Their name in parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<NameDoc>,
    /// Their display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Their primary email.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<EmailDoc>,
    /// Whether they may sign in.
    pub active: bool,
    /// The groups they are a member of (read-only).
    pub groups: Vec<RefDoc>,
    /// Metadata.
    pub meta: Meta,
}

/// A SCIM Group.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupResource {
    /// `["urn:ietf:params:scim:schemas:core:2.0:Group"]`.
    pub schemas: Vec<&'static str>,
    /// CFactory's id (`grp_…`).
    pub id: String,
    /// The client's id for the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Unique within the tenant without regard to case.
    pub display_name: String,
    /// Its members.
    pub members: Vec<MemberDoc>,
    /// Metadata.
    pub meta: Meta,
}

/// The User of `user`.
pub fn user_resource(base: &Base, user: &User) -> UserResource {
    let name = &user.name;
    UserResource {
        schemas: vec![USER_SCHEMA],
        id: user.id.clone(),
        external_id: user.external_id.clone(),
        user_name: user
            .user_name
            .clone()
            .or_else(|| user.email.clone())
            .unwrap_or_else(|| user.subject.clone()),
        name: (!name.is_empty()).then(|| NameDoc {
            given_name: name.given.clone(),
            family_name: name.family.clone(),
            formatted: name.formatted.clone(),
        }),
        display_name: user.display_name.clone(),
        emails: user
            .email
            .iter()
            .map(|e| EmailDoc { value: e.clone() })
            .collect(),
        active: user.active,
        groups: user
            .memberships
            .iter()
            .map(|g| RefDoc {
                value: g.id.clone(),
                reference: base.of("Groups", &g.id),
                display: g.display_name.clone(),
                kind: "direct",
            })
            .collect(),
        meta: meta(
            "User",
            base.of("Users", &user.id),
            user.created_at,
            user.updated_at,
        ),
    }
}

/// The Group of `group`.
pub fn group_resource(base: &Base, group: &Group) -> GroupResource {
    GroupResource {
        schemas: vec![GROUP_SCHEMA],
        id: group.id.clone(),
        external_id: group.external_id.clone(),
        display_name: group.display_name.clone(),
        members: group
            .members
            .iter()
            .map(|m| MemberDoc {
                value: m.user_id.clone(),
                reference: base.of("Users", &m.user_id),
            })
            .collect(),
        meta: meta(
            "Group",
            base.of("Groups", &group.id),
            group.created_at,
            group.updated_at,
        ),
    }
}

/// A resource as a JSON object, for PATCH and attribute selection.
pub fn as_object(resource: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(resource) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Keeps what `attributes` asks for (with `id` and `schemas` always), or drops what
/// `excluded` names (never `id` or `schemas`); names compare without regard to case.
pub fn select(
    mut doc: Map<String, Value>,
    attributes: Option<&str>,
    excluded: Option<&str>,
) -> Map<String, Value> {
    let names = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|n| {
                let n = n.trim();
                let n = n.rsplit_once(':').map_or(n, |(_, a)| a);
                n.split('.').next().unwrap_or(n).to_ascii_lowercase()
            })
            .filter(|n| !n.is_empty())
            .collect()
    };
    let always = |k: &str| k == "id" || k == "schemas";
    if let Some(list) = attributes.filter(|l| !l.trim().is_empty()) {
        let keep = names(list);
        doc.retain(|k, _| always(k) || keep.contains(&k.to_ascii_lowercase()));
    } else if let Some(list) = excluded {
        let drop = names(list);
        doc.retain(|k, _| always(k) || !drop.contains(&k.to_ascii_lowercase()));
    }
    doc
}

fn text(doc: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match get_ci(doc, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!(
            "`{name}` must be a string"
        ))),
    }
}

/// Reads `active`: a boolean, or the strings `"True"` and `"False"` in any case as some
/// clients send them.
fn active(doc: &Map<String, Value>) -> Result<bool, ScimError> {
    match get_ci(doc, "active") {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ScimError::invalid_value("`active` must be true or false")),
    }
}

fn schemas_hold(doc: &Map<String, Value>, urn: &str) -> Result<(), ScimError> {
    let listed = match get_ci(doc, "schemas") {
        Some(Value::Array(items)) => items.iter().any(|s| s.as_str() == Some(urn)),
        _ => false,
    };
    if listed {
        Ok(())
    } else {
        Err(ScimError::invalid_syntax(format!(
            "`schemas` must hold {urn}"
        )))
    }
}

/// The primary email of `emails` (else the first), if any.
fn primary_email(doc: &Map<String, Value>) -> Result<Option<String>, ScimError> {
    let items = match get_ci(doc, "emails") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ScimError::invalid_value("`emails` must be a list")),
    };
    // The primary one, else one of type `work` (what Entra patches), else the first.
    let mut first = None;
    let mut work = None;
    for item in items {
        let Value::Object(email) = item else {
            return Err(ScimError::invalid_value(
                "each of `emails` must be an object",
            ));
        };
        let Some(value) = text(email, "value")? else {
            continue;
        };
        let primary = matches!(get_ci(email, "primary"), Some(Value::Bool(true)))
            || matches!(get_ci(email, "primary"), Some(Value::String(s)) if s.eq_ignore_ascii_case("true"));
        if primary {
            return Ok(Some(value));
        }
        let is_work = matches!(get_ci(email, "type"), Some(Value::String(t)) if t.eq_ignore_ascii_case("work"));
        if is_work {
            work.get_or_insert(value.clone());
        }
        first.get_or_insert(value);
    }
    Ok(work.or(first))
}

/// Reads a User from a request's JSON (a POST or PUT body, or a patched resource).
/// `schemas` says whether the body must name the User schema (a patched resource does).
pub fn read_user(
    doc: &Map<String, Value>,
    check_schemas: bool,
) -> Result<ProvisionedUser, ScimError> {
    if check_schemas {
        schemas_hold(doc, USER_SCHEMA)?;
    }
    let user_name =
        text(doc, "userName")?.ok_or_else(|| ScimError::invalid_value("`userName` is required"))?;
    let name = match get_ci(doc, "name") {
        None | Some(Value::Null) => PersonName::default(),
        Some(Value::Object(name)) => PersonName {
            given: text(name, "givenName")?,
            family: text(name, "familyName")?,
            formatted: text(name, "formatted")?,
        },
        Some(_) => return Err(ScimError::invalid_value("`name` must be an object")),
    };
    Ok(ProvisionedUser {
        user_name: user_name.trim().to_owned(),
        external_id: text(doc, "externalId")?,
        name,
        display_name: text(doc, "displayName")?,
        email: primary_email(doc)?,
        active: active(doc)?,
    })
}

/// Reads a Group from a request's JSON; members by their `value` (a user id), once each.
pub fn read_group(doc: &Map<String, Value>, check_schemas: bool) -> Result<GroupDraft, ScimError> {
    if check_schemas {
        schemas_hold(doc, GROUP_SCHEMA)?;
    }
    let display_name = text(doc, "displayName")?
        .ok_or_else(|| ScimError::invalid_value("`displayName` is required"))?;
    let mut members: Vec<String> = Vec::new();
    match get_ci(doc, "members") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let id = item
                    .as_object()
                    .and_then(|m| get_ci(m, "value"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ScimError::invalid_value("each member must be an object with a `value`")
                    })?;
                if !members.iter().any(|m| m == id) {
                    members.push(id.to_owned());
                }
            }
        }
        Some(_) => return Err(ScimError::invalid_value("`members` must be a list")),
    }
    Ok(GroupDraft {
        display_name: display_name.trim().to_owned(),
        external_id: text(doc, "externalId")?,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_user_body_is_read_in_any_case_with_its_primary_email() {
        let user = read_user(
            &obj(json!({
                "schemas": [USER_SCHEMA],
                "USERNAME": "ada@acme.test",
                "name": {"givenname": "Ada", "familyName": "Lovelace"},
                "emails": [{"value": "old@acme.test"}, {"value": "ada@acme.test", "primary": true}],
                "active": "False",
                "groups": [{"value": "ignored"}],
            })),
            true,
        )
        .unwrap();
        assert_eq!(user.user_name, "ada@acme.test");
        assert_eq!(user.name.given.as_deref(), Some("Ada"));
        assert_eq!(user.email.as_deref(), Some("ada@acme.test"));
        assert!(!user.active);
        assert!(read_user(&obj(json!({"schemas": [USER_SCHEMA]})), true).is_err());
        assert!(read_user(&obj(json!({"userName": "a"})), true).is_err());
        assert!(read_user(&obj(json!({"userName": "a", "active": "maybe"})), false).is_err());
        assert!(read_user(&obj(json!({"userName": 7})), false).is_err());
    }

    #[test]
    fn selection_keeps_or_drops_top_level_attributes() {
        let doc = obj(json!({"schemas": [], "id": "1", "displayName": "x", "members": []}));
        let kept = select(doc.clone(), Some("displayName"), None);
        assert_eq!(kept.len(), 3);
        let dropped = select(doc, None, Some("members,id"));
        assert!(dropped.contains_key("id") && !dropped.contains_key("members"));
    }
}
