//! SCIM 2.0 provisioning end to end, over HTTP against the built binary: discovery, users
//! and groups made, read, listed, replaced, patched and deleted the ways Okta and Entra
//! send them, SCIM's error format, who may provision which tenant, what provisioning
//! does to a person's browser sessions and scopes, the audit rows, and the admin views
//! of the cockpit's People page.

mod common;

use common::{Server, Store};
use reqwest::Method;
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A key made with the CLI: (its id, its secret).
fn key(store: &Store, scopes: &str, tenant: &str) -> (String, String) {
    let (status, out, err) = store.cli(
        &["keys", "create", "--scopes", scopes, "--tenant", tenant],
        None,
    );
    assert!(status.success(), "keys create: {err}");
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .unwrap_or_else(|| panic!("no key id in: {err}"))
        .to_owned();
    (id, out.trim().to_owned())
}

/// An answer: status, content type, body (JSON when it parses), Location.
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    location: Option<String>,
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    call_as(server, method, path, key, body, "application/scim+json").await
}

async fn call_as(
    server: &Server,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
    media: &str,
) -> Answer {
    let mut request = server.http.request(method, server.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.header("content-type", media).body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let location = header("location");
    let text = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        location,
    }
}

/// Asserts `answer` is a SCIM error with `status` and `scim_type`.
fn assert_scim_error(answer: &Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        answer.content_type.starts_with("application/scim+json"),
        "{}",
        answer.content_type
    );
    assert_eq!(answer.body["schemas"], json!([ERROR]), "{}", answer.body);
    assert_eq!(answer.body["status"], json!(status.to_string()));
    assert_eq!(
        answer.body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{}",
        answer.body
    );
    assert!(answer.body["detail"].is_string());
}

fn user_body(user_name: &str, external_id: Option<&str>) -> Value {
    let mut body = json!({
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "displayName": format!("Person {user_name}"),
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true,
    });
    if let Some(external_id) = external_id {
        body["externalId"] = json!(external_id);
    }
    body
}

async fn create_user(server: &Server, key: &str, user_name: &str) -> String {
    let made = call(
        server,
        Method::POST,
        "/scim/v2/Users",
        Some(key),
        Some(user_body(user_name, None)),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["id"].as_str().unwrap().to_owned()
}

async fn create_group(server: &Server, key: &str, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let made = call(
        server,
        Method::POST,
        "/scim/v2/Groups",
        Some(key),
        Some(json!({"schemas": [GROUP], "displayName": name, "members": members})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["id"].as_str().unwrap().to_owned()
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

#[tokio::test]
async fn discovery_describes_users_and_groups() {
    let store = Store::sqlite();
    let (_, scim) = key(&store, "scim", "acme");
    let server = Server::start(&store);

    let spc = call(
        &server,
        Method::GET,
        "/scim/v2/ServiceProviderConfig",
        Some(&scim),
        None,
    )
    .await;
    assert_eq!(spc.status, 200, "{}", spc.body);
    assert!(spc.content_type.starts_with("application/scim+json"));
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["bulk"]["supported"], false);
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );

    let types = call(
        &server,
        Method::GET,
        "/scim/v2/ResourceTypes",
        Some(&scim),
        None,
    )
    .await;
    assert_eq!(types.body["totalResults"], 2, "{}", types.body);
    let endpoints: Vec<&str> = types.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, vec!["/Users", "/Groups"]);
    let group_type = call(
        &server,
        Method::GET,
        "/scim/v2/ResourceTypes/Group",
        Some(&scim),
        None,
    )
    .await;
    assert_eq!(group_type.body["schema"], GROUP);
    let missing = call(
        &server,
        Method::GET,
        "/scim/v2/ResourceTypes/Robot",
        Some(&scim),
        None,
    )
    .await;
    assert_scim_error(&missing, 404, None);

    let schemas = call(&server, Method::GET, "/scim/v2/Schemas", Some(&scim), None).await;
    assert_eq!(schemas.body["totalResults"], 2);
    let user = call(
        &server,
        Method::GET,
        &format!("/scim/v2/Schemas/{USER}"),
        Some(&scim),
        None,
    )
    .await;
    assert_eq!(user.status, 200, "{}", user.body);
    let attributes: Vec<&str> = user.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in [
        "userName",
        "name",
        "displayName",
        "active",
        "emails",
        "groups",
    ] {
        assert!(attributes.contains(&name), "{name} in {attributes:?}");
    }
    let user_name = &user.body["attributes"][0];
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["uniqueness"], "server");
    let group = call(
        &server,
        Method::GET,
        &format!("/scim/v2/Schemas/{GROUP}"),
        Some(&scim),
        None,
    )
    .await;
    assert_eq!(group.body["attributes"][1]["name"], "members");
    let elsewhere = call(&server, Method::GET, "/scim/v2/Bulk", Some(&scim), None).await;
    assert_scim_error(&elsewhere, 404, None);
}

#[tokio::test]
async fn users_are_created_read_filtered_paged_replaced_and_deleted() {
    let store = Store::sqlite();
    let (_, scim) = key(&store, "scim", "acme");
    let server = Server::start(&store);
    let k = Some(scim.as_str());

    let made = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(user_body("Ada@acme.test", Some("okta-1"))),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(made.content_type.starts_with("application/scim+json"));
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("usr_"));
    let location = made.location.clone().expect("Location");
    assert!(
        location.ends_with(&format!("/scim/v2/Users/{id}")),
        "{location}"
    );
    assert_eq!(made.body["meta"]["location"], json!(location));
    assert_eq!(made.body["meta"]["resourceType"], "User");
    assert!(made.body["meta"]["created"].is_string());
    assert!(made.body["meta"]["version"].is_string());
    assert_eq!(made.body["userName"], "Ada@acme.test");
    assert_eq!(made.body["externalId"], "okta-1");
    assert_eq!(made.body["name"]["familyName"], "Lovelace");
    assert_eq!(made.body["emails"][0]["value"], "Ada@acme.test");
    assert_eq!(made.body["active"], true);
    assert_eq!(made.body["groups"], json!([]));

    // Plain JSON is accepted too; anything else is not.
    let bo = call_as(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(user_body("bo@acme.test", Some("okta-2"))),
        "application/json",
    )
    .await;
    assert_eq!(bo.status, 201, "{}", bo.body);
    let bo_id = bo.body["id"].as_str().unwrap().to_owned();
    let text = call_as(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(user_body("cy@acme.test", None)),
        "text/plain",
    )
    .await;
    assert_scim_error(&text, 415, None);
    create_user(&server, &scim, "cy@acme.test").await;

    // The same user name in another case is taken.
    let again = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(user_body("ADA@ACME.TEST", None)),
    )
    .await;
    assert_scim_error(&again, 409, Some("uniqueness"));
    let nameless = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(json!({"schemas": [USER]})),
    )
    .await;
    assert_scim_error(&nameless, 400, Some("invalidValue"));
    let broken = call_as(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(json!("{")),
        "application/scim+json",
    )
    .await;
    assert_scim_error(&broken, 400, Some("invalidSyntax"));

    let read = call(
        &server,
        Method::GET,
        &format!("/scim/v2/Users/{id}"),
        k,
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["userName"], "Ada@acme.test");
    let slim = call(
        &server,
        Method::GET,
        &format!("/scim/v2/Users/{id}?attributes=userName"),
        k,
        None,
    )
    .await;
    assert_eq!(slim.body["id"], json!(id));
    assert!(slim.body.get("emails").is_none(), "{}", slim.body);

    // Filters: attribute names in any case, userName and displayName without regard to
    // case, externalId exactly.
    let ids = |answer: &Answer| -> Vec<String> {
        answer.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let q = |filter: &str| format!("/scim/v2/Users?filter={}", urlencode(filter));
    let by_name = call(
        &server,
        Method::GET,
        &q(r#"userName eq "ada@ACME.test""#),
        k,
        None,
    )
    .await;
    assert_eq!(by_name.status, 200, "{}", by_name.body);
    assert_eq!(ids(&by_name), vec![id.clone()]);
    assert_eq!(by_name.body["totalResults"], 1);
    let by_lower = call(
        &server,
        Method::GET,
        &q(r#"username EQ "bo@acme.test""#),
        k,
        None,
    )
    .await;
    assert_eq!(ids(&by_lower), vec![bo_id.clone()]);
    let by_display = call(
        &server,
        Method::GET,
        &q(r#"displayName eq "person bo@acme.test""#),
        k,
        None,
    )
    .await;
    assert_eq!(ids(&by_display), vec![bo_id.clone()]);
    let by_external = call(
        &server,
        Method::GET,
        &q(r#"externalId eq "okta-2""#),
        k,
        None,
    )
    .await;
    assert_eq!(ids(&by_external), vec![bo_id.clone()]);
    let wrong_case = call(
        &server,
        Method::GET,
        &q(r#"externalId eq "OKTA-2""#),
        k,
        None,
    )
    .await;
    assert_eq!(wrong_case.body["totalResults"], 0);
    assert_eq!(wrong_case.body["Resources"], json!([]));
    let nobody = call(
        &server,
        Method::GET,
        &q(r#"userName eq "zed@acme.test""#),
        k,
        None,
    )
    .await;
    assert_eq!(nobody.body["totalResults"], 0);
    for unsupported in [
        r#"userName co "ada""#,
        r#"title eq "x""#,
        "userName eq ada",
        r#"userName eq "a" or userName eq "b""#,
    ] {
        let refused = call(&server, Method::GET, &q(unsupported), k, None).await;
        assert_scim_error(&refused, 400, Some("invalidFilter"));
    }

    // Pages: 1-based startIndex, count.
    let all = call(&server, Method::GET, "/scim/v2/Users", k, None).await;
    assert_eq!(
        all.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(all.body["totalResults"], 3);
    assert_eq!(all.body["itemsPerPage"], 3);
    assert_eq!(all.body["startIndex"], 1);
    let second = call(
        &server,
        Method::GET,
        "/scim/v2/Users?startIndex=2&count=1",
        k,
        None,
    )
    .await;
    assert_eq!(second.body["totalResults"], 3);
    assert_eq!(second.body["itemsPerPage"], 1);
    assert_eq!(second.body["startIndex"], 2);
    assert_eq!(ids(&second), vec![bo_id.clone()]);
    let past = call(&server, Method::GET, "/scim/v2/Users?startIndex=9", k, None).await;
    assert_eq!(past.body["itemsPerPage"], 0);
    let none = call(&server, Method::GET, "/scim/v2/Users?count=0", k, None).await;
    assert_eq!(
        (
            none.body["totalResults"].clone(),
            none.body["itemsPerPage"].clone()
        ),
        (json!(3), json!(0))
    );
    let bad = call(&server, Method::GET, "/scim/v2/Users?count=many", k, None).await;
    assert_scim_error(&bad, 400, Some("invalidValue"));

    // Replace: what is left out is cleared; another's user name is refused.
    let replaced = call(
        &server,
        Method::PUT,
        &format!("/scim/v2/Users/{id}"),
        k,
        Some(json!({
            "schemas": [USER], "userName": "ada.l@acme.test", "externalId": "okta-1",
        })),
    )
    .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.body["userName"], "ada.l@acme.test");
    assert!(replaced.body.get("name").is_none());
    assert!(replaced.body.get("displayName").is_none());
    let clash = call(
        &server,
        Method::PUT,
        &format!("/scim/v2/Users/{id}"),
        k,
        Some(user_body("BO@acme.test", None)),
    )
    .await;
    assert_scim_error(&clash, 409, Some("uniqueness"));

    let gone = call(
        &server,
        Method::DELETE,
        &format!("/scim/v2/Users/{id}"),
        k,
        None,
    )
    .await;
    assert_eq!(gone.status, 204);
    let after = call(
        &server,
        Method::GET,
        &format!("/scim/v2/Users/{id}"),
        k,
        None,
    )
    .await;
    assert_scim_error(&after, 404, None);
    let twice = call(
        &server,
        Method::DELETE,
        &format!("/scim/v2/Users/{id}"),
        k,
        None,
    )
    .await;
    assert_scim_error(&twice, 404, None);
    let ghost = call(
        &server,
        Method::PUT,
        "/scim/v2/Users/usr_nobody",
        k,
        Some(user_body("x@acme.test", None)),
    )
    .await;
    assert_scim_error(&ghost, 404, None);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn patch_takes_the_forms_okta_and_entra_send() {
    let store = Store::sqlite();
    let (_, scim) = key(&store, "scim", "acme");
    let server = Server::start(&store);
    let k = Some(scim.as_str());
    let ada = create_user(&server, &scim, "ada@acme.test").await;
    let bo = create_user(&server, &scim, "bo@acme.test").await;
    let path = format!("/scim/v2/Users/{ada}");

    // Okta: replace without a path.
    let off = call(
        &server,
        Method::PATCH,
        &path,
        k,
        Some(patch(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["active"], false);
    // Entra: capitalized op, a path and the string "True" / "False".
    let on = call(
        &server,
        Method::PATCH,
        &path,
        k,
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "True"}]),
        )),
    )
    .await;
    assert_eq!(on.body["active"], true, "{}", on.body);
    let off = call(
        &server,
        Method::PATCH,
        &path,
        k,
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    )
    .await;
    assert_eq!(off.body["active"], false, "{}", off.body);
    let changed = call(
        &server,
        Method::PATCH,
        &path,
        k,
        Some(patch(json!([
            {"op": "Replace", "path": "name.givenName", "value": "Augusta"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "augusta@acme.test"},
            {"op": "replace", "value": {"displayName": "Augusta Ada", "externalId": "entra-1"}},
            {"op": "remove", "path": "name.formatted"},
        ]))),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["name"]["givenName"], "Augusta");
    assert_eq!(changed.body["name"]["familyName"], "Lovelace");
    assert!(changed.body["name"].get("formatted").is_none());
    assert_eq!(changed.body["emails"][0]["value"], "augusta@acme.test");
    assert_eq!(changed.body["displayName"], "Augusta Ada");
    assert_eq!(changed.body["externalId"], "entra-1");
    let read = call(&server, Method::GET, &path, k, None).await;
    assert_eq!(
        read.body["displayName"], "Augusta Ada",
        "the change is stored"
    );

    for (ops, scim_type) in [
        (json!([{"op": "remove"}]), "noTarget"),
        (json!([{"op": "move", "path": "active"}]), "invalidSyntax"),
        (
            json!([{"op": "add", "path": "emails[type eq"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "maybe"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": "BO@acme.test"}]),
            "uniqueness",
        ),
    ] {
        let refused = call(&server, Method::PATCH, &path, k, Some(patch(ops.clone()))).await;
        let status = if scim_type == "uniqueness" { 409 } else { 400 };
        assert_scim_error(&refused, status, Some(scim_type));
    }
    let no_schema = call(
        &server,
        Method::PATCH,
        &path,
        k,
        Some(json!({"Operations": []})),
    )
    .await;
    assert_scim_error(&no_schema, 400, Some("invalidSyntax"));

    // Groups: members added, removed by selection, the name replaced.
    let ops = create_group(&server, &scim, "ops", &[&ada]).await;
    let gpath = format!("/scim/v2/Groups/{ops}");
    let added = call(
        &server,
        Method::PATCH,
        &gpath,
        k,
        Some(patch(json!([
            {"op": "add", "path": "members", "value": [{"value": bo}, {"value": ada}]},
        ]))),
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let members = |answer: &Answer| -> Vec<String> {
        let mut ids: Vec<String> = answer.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![ada.clone(), bo.clone()];
    both.sort();
    assert_eq!(members(&added), both);
    let removed = call(
        &server,
        Method::PATCH,
        &gpath,
        k,
        Some(patch(json!([
            {"op": "Remove", "path": format!("members[value eq \"{ada}\"]")},
            {"op": "Replace", "path": "displayName", "value": "operators"},
        ]))),
    )
    .await;
    assert_eq!(members(&removed), vec![bo.clone()]);
    assert_eq!(removed.body["displayName"], "operators");
    let okta = call(
        &server,
        Method::PATCH,
        &gpath,
        k,
        Some(patch(json!([
            {"op": "replace", "value": {"id": ops, "displayName": "Operators"}},
        ]))),
    )
    .await;
    assert_eq!(okta.body["displayName"], "Operators", "{}", okta.body);
    assert_eq!(members(&okta), vec![bo.clone()]);
    let bo_read = call(
        &server,
        Method::GET,
        &format!("/scim/v2/Users/{bo}"),
        k,
        None,
    )
    .await;
    assert_eq!(bo_read.body["groups"][0]["value"], json!(ops));
    assert_eq!(bo_read.body["groups"][0]["display"], "Operators");
    let stranger = call(
        &server,
        Method::PATCH,
        &gpath,
        k,
        Some(patch(json!([
            {"op": "add", "path": "members", "value": [{"value": "usr_nobody"}]},
        ]))),
    )
    .await;
    assert_scim_error(&stranger, 400, Some("invalidValue"));
    let cleared = call(
        &server,
        Method::PATCH,
        &gpath,
        k,
        Some(patch(json!([{"op": "remove", "path": "members"}]))),
    )
    .await;
    assert_eq!(cleared.body["members"], json!([]));

    // Groups by filter, name clashes, replace and delete.
    create_group(&server, &scim, "readers", &[&bo]).await;
    let q = format!(
        "/scim/v2/Groups?filter={}",
        urlencode(r#"DisplayName eq "READERS""#)
    );
    let found = call(&server, Method::GET, &q, k, None).await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
    assert_eq!(found.body["Resources"][0]["displayName"], "readers");
    let q = format!(
        "/scim/v2/Groups?filter={}",
        urlencode(r#"members.display eq "x""#)
    );
    assert_scim_error(
        &call(&server, Method::GET, &q, k, None).await,
        400,
        Some("invalidFilter"),
    );
    let slim = call(
        &server,
        Method::GET,
        "/scim/v2/Groups?excludedAttributes=members",
        k,
        None,
    )
    .await;
    assert!(
        slim.body["Resources"][0].get("members").is_none(),
        "{}",
        slim.body
    );
    let clash = call(
        &server,
        Method::POST,
        "/scim/v2/Groups",
        k,
        Some(json!({"schemas": [GROUP], "displayName": "Readers"})),
    )
    .await;
    assert_scim_error(&clash, 409, Some("uniqueness"));
    let put = call(
        &server,
        Method::PUT,
        &gpath,
        k,
        Some(json!({
            "schemas": [GROUP], "displayName": "Operators", "members": [{"value": ada}],
        })),
    )
    .await;
    assert_eq!(members(&put), vec![ada.clone()]);
    assert_eq!(
        call(&server, Method::DELETE, &gpath, k, None).await.status,
        204
    );
    assert_scim_error(
        &call(&server, Method::GET, &gpath, k, None).await,
        404,
        None,
    );
    let ada_read = call(&server, Method::GET, &path, k, None).await;
    assert_eq!(ada_read.body["groups"], json!([]));
}

#[tokio::test]
async fn only_a_scim_key_provisions_and_only_its_own_tenant() {
    let store = Store::sqlite();
    let (_, scim) = key(&store, "scim", "acme");
    let (_, reader) = key(&store, "read", "acme");
    let (_, other) = key(&store, "scim", "globex");
    let server = Server::start(&store);
    let ada = create_user(&server, &scim, "ada@acme.test").await;
    let ops = create_group(&server, &scim, "ops", &[&ada]).await;

    let anonymous = call(&server, Method::GET, "/scim/v2/Users", None, None).await;
    assert_scim_error(&anonymous, 401, None);
    let revoked = call(
        &server,
        Method::GET,
        "/scim/v2/Users",
        Some("cfk_unknown"),
        None,
    )
    .await;
    assert_scim_error(&revoked, 401, None);
    let wrong_scope = call(&server, Method::GET, "/scim/v2/Users", Some(&reader), None).await;
    assert_scim_error(&wrong_scope, 403, None);
    assert!(
        wrong_scope.body["detail"]
            .as_str()
            .unwrap()
            .contains("scim")
    );
    let write = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        Some(&reader),
        Some(user_body("x@acme.test", None)),
    )
    .await;
    assert_scim_error(&write, 403, None);

    // The scim scope grants nothing else.
    let (status, _) = server.get_with("/api/workitems", Some(&scim)).await;
    assert_eq!(status, 403);
    let (status, _) = server.get_with("/api/users", Some(&scim)).await;
    assert_eq!(status, 403);

    // Another tenant's key sees and changes nothing of acme's.
    let theirs = call(&server, Method::GET, "/scim/v2/Users", Some(&other), None).await;
    assert_eq!(theirs.body["totalResults"], 0);
    let groups = call(&server, Method::GET, "/scim/v2/Groups", Some(&other), None).await;
    assert_eq!(groups.body["totalResults"], 0);
    for (method, path, body) in [
        (Method::GET, format!("/scim/v2/Users/{ada}"), None),
        (
            Method::PUT,
            format!("/scim/v2/Users/{ada}"),
            Some(user_body("ada@acme.test", None)),
        ),
        (
            Method::PATCH,
            format!("/scim/v2/Users/{ada}"),
            Some(patch(
                json!([{"op": "replace", "value": {"active": false}}]),
            )),
        ),
        (Method::DELETE, format!("/scim/v2/Users/{ada}"), None),
        (Method::GET, format!("/scim/v2/Groups/{ops}"), None),
        (
            Method::PATCH,
            format!("/scim/v2/Groups/{ops}"),
            Some(patch(json!([{"op": "remove", "path": "members"}]))),
        ),
        (Method::DELETE, format!("/scim/v2/Groups/{ops}"), None),
    ] {
        let refused = call(&server, method.clone(), &path, Some(&other), body).await;
        assert_scim_error(&refused, 404, None);
    }
    let foreign_member = call(
        &server,
        Method::POST,
        "/scim/v2/Groups",
        Some(&other),
        Some(json!({
            "schemas": [GROUP], "displayName": "ops", "members": [{"value": ada}],
        })),
    )
    .await;
    assert_scim_error(&foreign_member, 400, Some("invalidValue"));
    // The same user name is free in another tenant.
    create_user(&server, &other, "ada@acme.test").await;

    let still = call(
        &server,
        Method::GET,
        &format!("/scim/v2/Users/{ada}"),
        Some(&scim),
        None,
    )
    .await;
    assert_eq!(still.body["active"], true);
    assert_eq!(still.body["groups"][0]["value"], json!(ops));
}

/// A server with single sign-on configured (its provider is never asked here: sessions
/// are opened in the store, as a finished sign-in leaves them).
fn start_with_roles(store: &Store) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ui_addr = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}");
    let issuer = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    Server::start_with(
        store,
        &[
            "--ui-addr",
            &ui_addr,
            "--public-url",
            &public,
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            "cfactory",
            "--oidc-client-secret",
            "secret",
            "--oidc-role",
            "readers=read",
            "--oidc-role",
            "admins=read+admin",
            "--poll-interval-seconds",
            "0",
        ],
        &[],
    )
    .unwrap()
}

/// Opens a browser session for `user` in the store; returns its cookie.
async fn session_for(store: &Store, tenant: &str, user: &str) -> String {
    let token = format!("sso_{}", cfactory_server::keys::random_text(40));
    let hash = cfactory_server::keys::hash_secret(&token);
    let ends = if store.url.starts_with("postgres") {
        "TIMESTAMPTZ '2100-01-01 00:00:00+00'".to_owned()
    } else {
        "4102444800000000".to_owned()
    };
    store
        .run_sql(&format!(
            "INSERT INTO user_sessions (token_sha256, tenant_id, user_id, expires_at) \
             VALUES ('{hash}', '{tenant}', '{user}', {ends})"
        ))
        .await;
    format!("cfactory_session={token}")
}

async fn with_cookie(server: &Server, path: &str, cookie: &str) -> u16 {
    server
        .http
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sessions_follow_provisioning(store: Store) {
    let (scim_id, scim) = key(&store, "scim", "acme");
    let (_, admin) = key(&store, "admin", "acme");
    let server = start_with_roles(&store);
    let k = Some(scim.as_str());
    let ada = create_user(&server, &scim, "ada@acme.test").await;
    let bo = create_user(&server, &scim, "bo@acme.test").await;
    let readers = create_group(&server, &scim, "readers", &[&ada, &bo]).await;
    let admins = create_group(&server, &scim, "admins", &[]).await;
    let ada_cookie = session_for(&store, "acme", &ada).await;
    let ada_second = session_for(&store, "acme", &ada).await;
    let bo_cookie = session_for(&store, "acme", &bo).await;

    // The provisioned group `readers` grants read, not admin.
    assert_eq!(
        with_cookie(&server, "/api/workitems", &ada_cookie).await,
        200
    );
    assert_eq!(with_cookie(&server, "/api/users", &ada_cookie).await, 403);
    // Joining `admins` grants admin at the next request; leaving every mapped group
    // ends access.
    let joined = call(
        &server,
        Method::PATCH,
        &format!("/scim/v2/Groups/{admins}"),
        k,
        Some(patch(json!([
            {"op": "add", "path": "members", "value": [{"value": ada}]},
        ]))),
    )
    .await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(with_cookie(&server, "/api/users", &ada_cookie).await, 200);
    let left = call(
        &server,
        Method::PATCH,
        &format!("/scim/v2/Groups/{admins}"),
        k,
        Some(patch(json!([
            {"op": "remove", "path": format!("members[value eq \"{ada}\"]")},
        ]))),
    )
    .await;
    assert_eq!(left.status, 200);
    assert_eq!(with_cookie(&server, "/api/users", &ada_cookie).await, 403);
    let put = call(
        &server,
        Method::PUT,
        &format!("/scim/v2/Groups/{readers}"),
        k,
        Some(json!({
            "schemas": [GROUP], "displayName": "readers", "members": [{"value": bo}],
        })),
    )
    .await;
    assert_eq!(put.status, 200);
    assert_eq!(
        with_cookie(&server, "/api/workitems", &ada_cookie).await,
        401
    );
    let back = call(
        &server,
        Method::PATCH,
        &format!("/scim/v2/Groups/{readers}"),
        k,
        Some(patch(json!([
            {"op": "add", "path": "members", "value": [{"value": ada}]},
        ]))),
    )
    .await;
    assert_eq!(back.status, 200);
    assert_eq!(
        with_cookie(&server, "/api/workitems", &ada_cookie).await,
        200
    );

    // Deactivating ends all of Ada's sessions at once, and only hers; reactivating does
    // not revive them.
    let off = call(
        &server,
        Method::PATCH,
        &format!("/scim/v2/Users/{ada}"),
        k,
        Some(patch(json!([
            {"op": "Replace", "path": "active", "value": "False"},
        ]))),
    )
    .await;
    assert_eq!(off.status, 200);
    assert_eq!(
        with_cookie(&server, "/api/workitems", &ada_cookie).await,
        401
    );
    assert_eq!(
        with_cookie(&server, "/api/workitems", &ada_second).await,
        401
    );
    assert_eq!(
        with_cookie(&server, "/api/workitems", &bo_cookie).await,
        200
    );
    let on = call(
        &server,
        Method::PUT,
        &format!("/scim/v2/Users/{ada}"),
        k,
        Some(user_body("ada@acme.test", None)),
    )
    .await;
    assert_eq!(on.body["active"], true);
    assert_eq!(
        with_cookie(&server, "/api/workitems", &ada_cookie).await,
        401
    );
    // So does a PUT with active false.
    let bo_again = session_for(&store, "acme", &bo).await;
    let mut off = user_body("bo@acme.test", None);
    off["active"] = json!(false);
    assert_eq!(
        call(
            &server,
            Method::PUT,
            &format!("/scim/v2/Users/{bo}"),
            k,
            Some(off)
        )
        .await
        .status,
        200
    );
    assert_eq!(with_cookie(&server, "/api/workitems", &bo_again).await, 401);

    // Deleting ends the sessions too.
    let ada_new = session_for(&store, "acme", &ada).await;
    assert_eq!(with_cookie(&server, "/api/workitems", &ada_new).await, 200);
    assert_eq!(
        call(
            &server,
            Method::DELETE,
            &format!("/scim/v2/Users/{ada}"),
            k,
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(with_cookie(&server, "/api/workitems", &ada_new).await, 401);

    // Every write is on the audit chain, naming the key.
    let (status, audit) = server.get_with("/api/audit?limit=100", Some(&admin)).await;
    assert_eq!(status, 200, "{audit}");
    let rows: Vec<(String, String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("scim."))
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let actor = format!("key:{scim_id}");
    assert!(rows.iter().all(|(_, a, _)| a == &actor), "{rows:?}");
    for (kind, target) in [
        ("scim.user.created", &ada),
        ("scim.user.created", &bo),
        ("scim.group.created", &readers),
        ("scim.group.patched", &admins),
        ("scim.group.replaced", &readers),
        ("scim.user.patched", &ada),
        ("scim.user.replaced", &bo),
        ("scim.user.deleted", &ada),
    ] {
        assert!(
            rows.iter().any(|(k, _, t)| k == kind && t == target),
            "{kind} {target} in {rows:?}"
        );
    }
    let (status, chain) = server.get_with("/api/audit/chain", Some(&admin)).await;
    assert_eq!(status, 200, "{chain}");
}

#[tokio::test]
async fn provisioning_ends_sessions_and_changes_scopes_on_sqlite() {
    sessions_follow_provisioning(Store::sqlite()).await;
}

#[tokio::test]
async fn provisioning_ends_sessions_and_changes_scopes_on_postgres() {
    sessions_follow_provisioning(Store::postgres().await).await;
}

#[tokio::test]
async fn the_people_view_lists_groups_roles_and_changes_users() {
    let store = Store::sqlite();
    let (_, scim) = key(&store, "scim", "acme");
    let (admin_id, admin) = key(&store, "admin", "acme");
    let (_, reader) = key(&store, "read", "acme");
    let server = start_with_roles(&store);
    let made = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        Some(&scim),
        Some(user_body("ada@acme.test", Some("okta-1"))),
    )
    .await;
    let ada = made.body["id"].as_str().unwrap().to_owned();
    let readers = create_group(&server, &scim, "readers", &[&ada]).await;
    create_group(&server, &scim, "unmapped", &[]).await;

    let (status, users) = server.get_with("/api/users", Some(&admin)).await;
    assert_eq!(status, 200, "{users}");
    let row = &users["users"][0];
    assert_eq!(row["id"], json!(ada));
    assert_eq!(row["source"], "scim");
    assert_eq!(row["user_name"], "ada@acme.test");
    assert_eq!(row["external_id"], "okta-1");
    assert_eq!(
        row["scim_groups"],
        json!([{"id": readers, "display_name": "readers"}])
    );
    assert_eq!(row["scopes"], json!(["read"]));

    let (status, groups) = server.get_with("/api/groups", Some(&admin)).await;
    assert_eq!(status, 200, "{groups}");
    assert_eq!(groups["groups"][0]["id"], json!(readers));
    assert_eq!(groups["groups"][0]["display_name"], "readers");
    assert_eq!(groups["groups"][0]["external_id"], Value::Null);
    assert_eq!(
        groups["groups"][0]["members"],
        json!([{"id": ada, "label": "ada@acme.test"}])
    );
    assert_eq!(groups["groups"][0]["scopes"], json!(["read"]));
    assert_eq!(groups["groups"][1]["scopes"], json!([]));

    let (status, roles) = server.get_with("/api/roles", Some(&admin)).await;
    assert_eq!(status, 200, "{roles}");
    assert_eq!(roles["sso"], true);
    assert_eq!(
        roles["roles"],
        json!([
            {"group": "admins", "scopes": ["read", "admin"]},
            {"group": "readers", "scopes": ["read"]},
        ])
    );
    for path in ["/api/groups", "/api/roles"] {
        assert_eq!(server.get_with(path, Some(&reader)).await.0, 403, "{path}");
    }

    let cookie = session_for(&store, "acme", &ada).await;
    assert_eq!(with_cookie(&server, "/api/workitems", &cookie).await, 200);
    let set = |active: bool, key: String| {
        let server = &server;
        let ada = ada.clone();
        async move {
            let response = server
                .http
                .patch(server.url(&format!("/api/users/{ada}")))
                .bearer_auth(key)
                .json(&json!({"active": active}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(set(false, reader.clone()).await.0, 403);
    let (status, view) = set(false, admin.clone()).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["active"], false);
    assert_eq!(with_cookie(&server, "/api/workitems", &cookie).await, 401);
    let (status, view) = set(true, admin.clone()).await;
    assert_eq!((status, view["active"].clone()), (200, json!(true)));

    let cookie = session_for(&store, "acme", &ada).await;
    let deleted = server
        .http
        .delete(server.url(&format!("/api/users/{ada}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(with_cookie(&server, "/api/workitems", &cookie).await, 401);
    let again = server
        .http
        .delete(server.url(&format!("/api/users/{ada}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 404);

    let (_, audit) = server.get_with("/api/audit?limit=100", Some(&admin)).await;
    let kinds: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let by_admin = format!("key:{admin_id}");
    for kind in ["user.deactivated", "user.activated", "user.deleted"] {
        assert!(
            kinds.iter().any(|(k, a)| k == kind && a == &by_admin),
            "{kind} in {kinds:?}"
        );
    }
}

/// Members added to one group by many PATCHes at the same instant, as a provisioning
/// client pushing a large group in parallel sends them, through two server processes on
/// one store: each PATCH reads the group, adds its member and writes back, so without a
/// version check the last writer drops the members the others added. Every one must be
/// in the group afterwards, each PATCH answered 200, and each audited.
async fn parallel_patches_lose_no_member(store: Store) {
    const PEOPLE: usize = 24;
    let (_, scim) = key(&store, "scim", "acme");
    let (_, admin) = key(&store, "admin", "acme");
    let server = Server::start(&store);
    let other = Server::start(&store);
    let mut people = Vec::new();
    for n in 0..PEOPLE {
        people.push(create_user(&server, &scim, &format!("p{n}@acme.test")).await);
    }
    let group = create_group(&server, &scim, "crowd", &[]).await;
    let path = format!("/scim/v2/Groups/{group}");
    let answers = futures::future::join_all(people.iter().enumerate().map(|(n, person)| {
        call(
            if n % 2 == 0 { &server } else { &other },
            Method::PATCH,
            &path,
            Some(&scim),
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": person}]}]),
            )),
        )
    }))
    .await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let read = call(&server, Method::GET, &path, Some(&scim), None).await;
    let mut members: Vec<&str> = read.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    members.sort_unstable();
    let mut expected: Vec<&str> = people.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(members, expected, "a member added in parallel was lost");
    let (status, audit) = server.get_with("/api/audit?limit=100", Some(&admin)).await;
    assert_eq!(status, 200, "{audit}");
    let patched = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "scim.group.patched")
        .count();
    assert_eq!(patched, PEOPLE, "one audit row per PATCH that took effect");
}

#[tokio::test]
async fn parallel_patches_lose_no_member_on_sqlite() {
    parallel_patches_lose_no_member(Store::sqlite()).await;
}

#[tokio::test]
async fn parallel_patches_lose_no_member_on_postgres() {
    parallel_patches_lose_no_member(Store::postgres().await).await;
}

/// A user as a first single sign-on stores them, before provisioning knows them.
async fn signed_in(store: &Store, tenant: &str, id: &str, subject: &str, email: &str) {
    let now = if store.url.starts_with("postgres") {
        "now()".to_owned()
    } else {
        "1767225600000000".to_owned()
    };
    store
        .run_sql(&format!(
            "INSERT INTO users (id, tenant_id, subject, email, display_name, active, \
             created_at, updated_at, last_sign_in_at) \
             VALUES ('{id}', '{tenant}', '{subject}', '{email}', 'Signed In', true, \
             {now}, {now}, {now})"
        ))
        .await;
}

/// Provisioning turned on after people signed in: a POST for someone whose sign-in made
/// their user adopts that user (same id, their session still good) when exactly one
/// unprovisioned sign-in of the tenant matches by subject (Okta: externalId) or email;
/// an ambiguous match, another tenant's user, or an already provisioned one never is.
async fn provisioning_adopts_earlier_sign_ins(store: Store) {
    let (_, scim) = key(&store, "scim", "acme");
    let (_, admin) = key(&store, "admin", "acme");
    signed_in(&store, "acme", "usr_ada", "00u_ada", "ada@acme.test").await;
    signed_in(&store, "acme", "usr_kim", "pairwise-kim", "Kim@Acme.test").await;
    signed_in(&store, "acme", "usr_twin1", "pairwise-t1", "twin@acme.test").await;
    signed_in(&store, "acme", "usr_twin2", "pairwise-t2", "twin@acme.test").await;
    signed_in(&store, "globex", "usr_zed", "pairwise-zed", "zed@acme.test").await;
    // Ada's sign-in said she is in `readers`, which grants read.
    store
        .run_sql("INSERT INTO user_groups (user_id, group_name) VALUES ('usr_ada', 'readers')")
        .await;
    let ada_cookie = session_for(&store, "acme", "usr_ada").await;
    let server = start_with_roles(&store);
    let k = Some(scim.as_str());
    let before = with_cookie(&server, "/api/workitems", &ada_cookie).await;
    assert_eq!(before, 200);

    // Okta: its user id is the OpenID subject and the SCIM externalId.
    let ada = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(user_body("ada.lovelace@acme.test", Some("00u_ada"))),
    )
    .await;
    assert_eq!(ada.status, 201, "{}", ada.body);
    assert_eq!(ada.body["id"], "usr_ada", "{}", ada.body);
    assert_eq!(ada.body["userName"], "ada.lovelace@acme.test");
    assert_eq!(
        with_cookie(&server, "/api/workitems", &ada_cookie).await,
        before,
        "the adopted user's session is untouched"
    );
    // Entra: a pairwise subject, matched by email (without regard to case).
    let kim = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(user_body("kim@acme.test", None)),
    )
    .await;
    assert_eq!(kim.status, 201, "{}", kim.body);
    assert_eq!(kim.body["id"], "usr_kim");
    // Provisioned now: a second POST for Kim is the usual uniqueness clash.
    let again = call(
        &server,
        Method::POST,
        "/scim/v2/Users",
        k,
        Some(user_body("kim@acme.test", None)),
    )
    .await;
    assert_scim_error(&again, 409, Some("uniqueness"));

    // Two sign-ins with the email: which one is a guess, so neither is taken.
    let twin = create_user(&server, &scim, "twin@acme.test").await;
    assert!(!twin.starts_with("usr_twin"), "{twin}");
    // Another tenant's sign-in is never adopted.
    let zed = create_user(&server, &scim, "zed@acme.test").await;
    assert_ne!(zed, "usr_zed");

    let (status, audit) = server.get_with("/api/audit?limit=100", Some(&admin)).await;
    assert_eq!(status, 200, "{audit}");
    let mut kinds: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("scim.user."))
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    let mut expected = vec![
        ("scim.user.adopted".to_owned(), "usr_ada".to_owned()),
        ("scim.user.adopted".to_owned(), "usr_kim".to_owned()),
        ("scim.user.created".to_owned(), twin.clone()),
        ("scim.user.created".to_owned(), zed.clone()),
    ];
    expected.sort();
    assert_eq!(kinds, expected);
}

#[tokio::test]
async fn provisioning_adopts_earlier_sign_ins_on_sqlite() {
    provisioning_adopts_earlier_sign_ins(Store::sqlite()).await;
}

#[tokio::test]
async fn provisioning_adopts_earlier_sign_ins_on_postgres() {
    provisioning_adopts_earlier_sign_ins(Store::postgres().await).await;
}

/// PATCHes to one user at the same instant, each replacing a different attribute: each
/// reads the user, changes its attribute and writes the whole user back, so without
/// taking turns one PATCH writes back the attributes as it read them and undoes the
/// others. After each round every attribute holds its round's value.
#[tokio::test]
async fn parallel_user_patches_keep_each_change() {
    let store = Store::sqlite();
    let (_, scim) = key(&store, "scim", "acme");
    let server = Server::start(&store);
    let ada = create_user(&server, &scim, "ada@acme.test").await;
    let path = format!("/scim/v2/Users/{ada}");
    let fields = [
        ("name.givenName", "/name/givenName"),
        ("name.familyName", "/name/familyName"),
        ("name.formatted", "/name/formatted"),
        ("displayName", "/displayName"),
        ("externalId", "/externalId"),
    ];
    for round in 0..8 {
        let answers = futures::future::join_all(fields.iter().map(|(field, _)| {
            call(
                &server,
                Method::PATCH,
                &path,
                Some(&scim),
                Some(patch(json!([{
                    "op": "replace",
                    "path": field,
                    "value": format!("{field} {round}"),
                }]))),
            )
        }))
        .await;
        for answer in &answers {
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
        let read = call(&server, Method::GET, &path, Some(&scim), None).await;
        for (field, pointer) in fields {
            assert_eq!(
                read.body.pointer(pointer),
                Some(&json!(format!("{field} {round}"))),
                "round {round}: {field} was undone by a parallel PATCH: {}",
                read.body
            );
        }
    }
}
