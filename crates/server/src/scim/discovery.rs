//! What the server says about itself (RFC 7643 §5-§7, RFC 7644 §4): the
//! ServiceProviderConfig, the User and Group resource types, and their schemas, which
//! describe exactly the attributes [`super::resources`] reads and writes.

use serde::Serialize;
use utoipa::ToSchema;

use super::resources::{Base, GROUP_SCHEMA, USER_SCHEMA};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The most resources one list answers.
pub const MAX_RESULTS: usize = 200;

/// Whether a feature is offered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Supported {
    /// Whether it is.
    pub supported: bool,
}

/// Bulk's limits (bulk is not offered).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkDoc {
    /// Always false.
    pub supported: bool,
    /// Always 0.
    pub max_operations: u32,
    /// Always 0.
    pub max_payload_size: u32,
}

/// Filtering's limits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterDoc {
    /// Always true.
    pub supported: bool,
    /// The most resources one list answers.
    pub max_results: usize,
}

/// How a client authenticates.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSchemeDoc {
    /// `oauthbearertoken`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its name.
    pub name: &'static str,
    /// What to send.
    pub description: &'static str,
    /// Whether it is the one to use.
    pub primary: bool,
}

/// Metadata of a discovery resource.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryMeta {
    /// Its kind.
    pub resource_type: &'static str,
    /// Its address.
    pub location: String,
}

/// The ServiceProviderConfig.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProviderConfig {
    /// Its schema.
    pub schemas: Vec<&'static str>,
    /// Where the SCIM documentation is.
    pub documentation_uri: &'static str,
    /// PATCH: offered.
    pub patch: Supported,
    /// Bulk: not offered.
    pub bulk: BulkDoc,
    /// Filtering: `eq` on the attributes the docs list.
    pub filter: FilterDoc,
    /// Changing passwords: not offered.
    pub change_password: Supported,
    /// Sorting: not offered.
    pub sort: Supported,
    /// ETags: not offered (`meta.version` is informative).
    pub etag: Supported,
    /// How to authenticate.
    pub authentication_schemes: Vec<AuthSchemeDoc>,
    /// Metadata.
    pub meta: DiscoveryMeta,
}

/// This server's ServiceProviderConfig.
pub fn service_provider_config(base: &Base) -> ServiceProviderConfig {
    ServiceProviderConfig {
        schemas: vec![SPC_SCHEMA],
        documentation_uri: "https://github.com/cfactory/cfactory/blob/main/docs/security.md#provisioning-scim",
        patch: Supported { supported: true },
        bulk: BulkDoc {
            supported: false,
            max_operations: 0,
            max_payload_size: 0,
        },
        filter: FilterDoc {
            supported: true,
            max_results: MAX_RESULTS,
        },
        change_password: Supported { supported: false },
        sort: Supported { supported: false },
        etag: Supported { supported: false },
        authentication_schemes: vec![AuthSchemeDoc {
            kind: "oauthbearertoken",
            name: "API key",
            description: "A CFactory API key with the `scim` scope, sent as `Authorization: \
                          Bearer cfk_…`",
            primary: true,
        }],
        meta: DiscoveryMeta {
            resource_type: "ServiceProviderConfig",
            location: format!("{}/ServiceProviderConfig", base.0),
        },
    }
}

/// A resource type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTypeDoc {
    /// Its schema.
    pub schemas: Vec<&'static str>,
    /// `User` or `Group`.
    pub id: &'static str,
    /// The same.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Where its resources are, relative to `/scim/v2`.
    pub endpoint: &'static str,
    /// Its core schema's URN.
    pub schema: &'static str,
    /// Metadata.
    pub meta: DiscoveryMeta,
}

/// Both resource types.
pub fn resource_types(base: &Base) -> Vec<ResourceTypeDoc> {
    [
        ("User", "/Users", USER_SCHEMA, "A person of the tenant"),
        (
            "Group",
            "/Groups",
            GROUP_SCHEMA,
            "A group of the tenant's people; the [roles] table maps its name to scopes",
        ),
    ]
    .into_iter()
    .map(|(id, endpoint, schema, description)| ResourceTypeDoc {
        schemas: vec![RESOURCE_TYPE_SCHEMA],
        id,
        name: id,
        description,
        endpoint,
        schema,
        meta: DiscoveryMeta {
            resource_type: "ResourceType",
            location: format!("{}/ResourceTypes/{id}", base.0),
        },
    })
    .collect()
}

/// An attribute of a schema.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDoc {
    /// Its name.
    pub name: &'static str,
    /// `string`, `boolean`, `complex`, `reference`, `dateTime`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether it holds a list.
    pub multi_valued: bool,
    /// What it is.
    pub description: &'static str,
    /// Whether a request must give it.
    pub required: bool,
    /// Whether its values compare with regard to case.
    pub case_exact: bool,
    /// `readWrite`, `readOnly`, `immutable`.
    pub mutability: &'static str,
    /// `always`, `default`.
    pub returned: &'static str,
    /// `none` or `server`.
    pub uniqueness: &'static str,
    /// For a reference: what it refers to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<&'static str>,
    /// For a complex attribute: its parts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub sub_attributes: Vec<AttributeDoc>,
}

fn attr(name: &'static str, kind: &'static str, description: &'static str) -> AttributeDoc {
    AttributeDoc {
        name,
        kind,
        multi_valued: false,
        description,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        reference_types: Vec::new(),
        sub_attributes: Vec::new(),
    }
}

impl AttributeDoc {
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn unique(mut self) -> Self {
        self.uniqueness = "server";
        self
    }
    fn read_only(mut self) -> Self {
        self.mutability = "readOnly";
        self
    }
    fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn multi(mut self, parts: Vec<AttributeDoc>) -> Self {
        self.multi_valued = true;
        self.sub_attributes = parts;
        self
    }
    fn parts(mut self, parts: Vec<AttributeDoc>) -> Self {
        self.sub_attributes = parts;
        self
    }
    fn refers(mut self, to: &'static str) -> Self {
        self.reference_types = vec![to];
        self
    }
}

/// A schema.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaDoc {
    /// Its schema.
    pub schemas: Vec<&'static str>,
    /// Its URN.
    pub id: &'static str,
    /// `User` or `Group`.
    pub name: &'static str,
    /// What it describes.
    pub description: &'static str,
    /// Its attributes.
    pub attributes: Vec<AttributeDoc>,
    /// Metadata.
    pub meta: DiscoveryMeta,
}

/// The User and Group schemas, as this server serves them.
pub fn schemas(base: &Base) -> Vec<SchemaDoc> {
    let user = vec![
        attr(
            "userName",
            "string",
            "Unique within the tenant without regard to case; the \
              email a first sign-in by single sign-on is matched with",
        )
        .required()
        .unique(),
        attr("name", "complex", "The person's name in parts").parts(vec![
            attr(
                "formatted",
                "string",
                "The whole name, formatted for display",
            ),
            attr("familyName", "string", "Family name"),
            attr("givenName", "string", "Given name"),
        ]),
        attr("displayName", "string", "The name the cockpit shows"),
        attr(
            "active",
            "boolean",
            "Whether the person may sign in; false ends their sessions at once. Always \
             present: true unless set false",
        )
        .required(),
        attr(
            "emails",
            "complex",
            "Email addresses; one is kept: the primary, else one of type work, else the first",
        )
        .multi(vec![attr("value", "string", "The address")]),
        attr("groups", "complex", "The groups the person is a member of")
            .read_only()
            .multi(vec![
                attr("value", "string", "The group's id").read_only(),
                attr("$ref", "reference", "The group's address")
                    .read_only()
                    .refers("Group"),
                attr("display", "string", "The group's name").read_only(),
                attr("type", "string", "Always direct").read_only(),
            ]),
    ];
    let group = vec![
        attr(
            "displayName",
            "string",
            "Unique within the tenant without regard to case; \
              the name the [roles] table maps to scopes",
        )
        .required()
        .unique(),
        attr("members", "complex", "The group's members").multi(vec![
            attr("value", "string", "The member's user id").exact(),
            attr("$ref", "reference", "The member's address").refers("User"),
        ]),
    ];
    [
        (USER_SCHEMA, "User", "A person of the tenant", user),
        (
            GROUP_SCHEMA,
            "Group",
            "A group of the tenant's people",
            group,
        ),
    ]
    .into_iter()
    .map(|(id, name, description, attributes)| SchemaDoc {
        schemas: vec![SCHEMA_SCHEMA],
        id,
        name,
        description,
        attributes,
        meta: DiscoveryMeta {
            resource_type: "Schema",
            location: format!("{}/Schemas/{id}", base.0),
        },
    })
    .collect()
}
