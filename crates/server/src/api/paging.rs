//! The one rule for paged routes' `limit` and `cursor` query parameters, so every list
//! answers a bad page request the same way: a blank value means the default, a
//! whole number from 1 is clamped to the route's most, anything else is a 422 naming the
//! parameter; a cursor the server did not issue is a 422 naming `cursor`.
//!
//! A route takes its page as a [`Paging`] extractor; its [`PageRule`] names the
//! page-size parameter (`limit`, or `top` for the rollups), its default and most, and
//! the cursor it issues, if any. The same rule documents the parameters in
//! `/openapi.json` (`params(Paging<Rule>)`).

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Query};
use axum::http::Uri;
use axum::http::request::Parts;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Required, Schema};

use crate::problem::ApiError;

/// One route's paging: its page-size parameter and its cursor.
pub trait PageRule: Send + Sync + 'static {
    /// The page-size parameter's name.
    const FIELD: &'static str = "limit";
    /// The page size when the parameter is absent or blank.
    const DEFAULT: u32;
    /// The most a page holds; larger asks are clamped to it.
    const MAX: u32;
    /// What the page size means, for the OpenAPI document (the default and most are
    /// added to it).
    const ABOUT: &'static str = "Page size";
    /// What the `cursor` parameter is, for the OpenAPI document; `None` for a route that
    /// takes no cursor (a `cursor` parameter is then ignored, like any unknown one).
    const CURSOR_ABOUT: Option<&'static str> = None;
    /// What a cursor decodes to ([`NoCursor`] for a route that takes none).
    type Cursor: Send;
    /// Decodes a cursor this route issued; `None` for any other text (and for all text,
    /// unless overridden).
    fn decode(_text: &str) -> Option<Self::Cursor> {
        None
    }
}

/// The cursor of a route that takes none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCursor {}

/// Decodes an arrival-order cursor (a row id or seq from 1), as the audit log and the
/// activity feed issue.
pub fn seq_cursor(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|n| *n > 0)
}

/// A route's page, read from the query string under its [`PageRule`]: a bad page size
/// or cursor is rejected with a 422 naming the parameter.
pub struct Paging<R: PageRule> {
    /// The page size: the default, or what was asked clamped to the most.
    pub limit: u32,
    /// The decoded cursor; `None` when absent or blank (and always for routes that take
    /// none).
    pub cursor: Option<R::Cursor>,
    rule: PhantomData<R>,
}

impl<R: PageRule> std::fmt::Debug for Paging<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paging")
            .field("limit", &self.limit)
            .field("cursor", &self.cursor.is_some())
            .finish()
    }
}

impl<R: PageRule> Paging<R> {
    /// The first page at the default size.
    #[cfg(test)]
    pub(crate) fn first() -> Self {
        Self {
            limit: R::DEFAULT,
            cursor: None,
            rule: PhantomData,
        }
    }

    /// The page `uri`'s query string asks for.
    pub fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| {
            ApiError::BadRequest {
                detail: e.body_text(),
            }
        })?;
        let limit = limit(R::FIELD, single(&pairs, R::FIELD)?, R::DEFAULT, R::MAX)?;
        let cursor = match R::CURSOR_ABOUT {
            Some(_) => cursor(single(&pairs, "cursor")?, R::decode)?,
            None => None,
        };
        Ok(Self {
            limit,
            cursor,
            rule: PhantomData,
        })
    }
}

/// The one value of `name` in `pairs`; a 422 naming it when it is given twice.
fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::field(
            name,
            format!("`{name}` is given more than once"),
        ));
    }
    Ok(first)
}

impl<S: Send + Sync, R: PageRule> FromRequestParts<S> for Paging<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Self::from_uri(&parts.uri)
    }
}

impl<R: PageRule> IntoParams for Paging<R> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let bounds = if R::DEFAULT == R::MAX {
            format!("default and at most {}", R::MAX)
        } else {
            format!("default {}, at most {}", R::DEFAULT, R::MAX)
        };
        let size = Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(u32::MAX))
                .build(),
        );
        let mut params = vec![
            ParameterBuilder::new()
                .name(R::FIELD)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(format!(
                    "{} ({bounds}; larger values are clamped; blank means the default).",
                    R::ABOUT
                )))
                .schema(Some(size))
                .build(),
        ];
        if let Some(about) = R::CURSOR_ABOUT {
            params.push(
                ParameterBuilder::new()
                    .name("cursor")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(about))
                    .schema(Some(Schema::Object(
                        ObjectBuilder::new().schema_type(Type::String).build(),
                    )))
                    .build(),
            );
        }
        params
    }
}

/// The page size `text` asks for under `field`: `default` when absent or blank, at most
/// `max`.
fn limit(field: &str, text: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
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
fn cursor<T>(
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
        assert_eq!(cursor(None, seq_cursor).unwrap(), None);
        assert_eq!(cursor(Some(""), seq_cursor).unwrap(), None);
        assert_eq!(cursor(Some("12"), seq_cursor).unwrap(), Some(12));
        assert!(cursor(Some("abc"), seq_cursor).is_err());
        assert!(cursor(Some("0"), seq_cursor).is_err());
    }

    struct Seq;
    impl PageRule for Seq {
        const DEFAULT: u32 = 50;
        const MAX: u32 = 500;
        const CURSOR_ABOUT: Option<&'static str> = Some("The previous page's `next_cursor`.");
        type Cursor = i64;
        fn decode(text: &str) -> Option<i64> {
            seq_cursor(text)
        }
    }

    struct Top;
    impl PageRule for Top {
        const FIELD: &'static str = "top";
        const DEFAULT: u32 = 25;
        const MAX: u32 = 1000;
        type Cursor = NoCursor;
    }

    fn page<R: PageRule>(query: &str) -> Result<Paging<R>, Option<String>> {
        let uri: Uri = format!("/x{query}").parse().unwrap();
        Paging::<R>::from_uri(&uri).map_err(|e| match e {
            ApiError::Unprocessable { field, .. } => field,
            other => panic!("not a 422: {other:?}"),
        })
    }

    #[test]
    fn the_extractor_reads_the_query_under_the_routes_rule() {
        let p = page::<Seq>("").unwrap();
        assert_eq!((p.limit, p.cursor), (50, None));
        let p = page::<Seq>("?limit=&cursor=").unwrap();
        assert_eq!((p.limit, p.cursor), (50, None));
        let p = page::<Seq>("?other=1&limit=%207%20&cursor=12").unwrap();
        assert_eq!((p.limit, p.cursor), (7, Some(12)));
        assert_eq!(page::<Seq>("?limit=9000").unwrap().limit, 500);
        for bad in ["0", "-1", "ten", "1.5"] {
            assert_eq!(
                page::<Seq>(&format!("?limit={bad}"))
                    .unwrap_err()
                    .as_deref(),
                Some("limit"),
                "{bad}"
            );
        }
        for bad in ["abc", "0", "%%%"] {
            assert_eq!(
                page::<Seq>(&format!("?cursor={bad}"))
                    .unwrap_err()
                    .as_deref(),
                Some("cursor"),
                "{bad}"
            );
        }
        assert_eq!(
            page::<Seq>("?limit=1&limit=2").unwrap_err().as_deref(),
            Some("limit")
        );

        // Another name; `limit` and `cursor` mean nothing to this route.
        let p = page::<Top>("?top=1&limit=zero&cursor=zz").unwrap();
        assert_eq!((p.limit, p.cursor), (1, None));
        assert_eq!(page::<Top>("").unwrap().limit, 25);
        assert_eq!(page::<Top>("?top=0").unwrap_err().as_deref(), Some("top"));
    }

    #[test]
    fn the_rule_documents_its_parameters() {
        let params = Paging::<Seq>::into_params(|| None);
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["limit", "cursor"]);
        let doc = params[0].description.as_deref().unwrap();
        assert!(doc.contains("default 50, at most 500"), "{doc}");
        let params = Paging::<Top>::into_params(|| None);
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["top"]);
    }
}
