//! The browser guard: what a web page must not be able to make this server do, checked
//! before any handler runs.
//!
//! - **DNS rebinding.** In open mode (loopback, no keys) anything that reaches the port is
//!   trusted, so a request whose `Host` is not one of the server's own names (a loopback
//!   name or address with a listening port, or `--public-url`'s host) is refused with 421:
//!   a page on `evil.example` that re-resolves its name to 127.0.0.1 still sends
//!   `Host: evil.example`.
//! - **Cross-site writes.** A request that can change something (anything but GET, HEAD
//!   and OPTIONS) and carries an `Origin` must name the server's own origin (the request's
//!   `Host`, or `--public-url`), in every auth mode: 403 otherwise.
//! - **Simple requests.** A body sent to the API or `/mcp` must be declared JSON: a
//!   cross-site form or `text/plain` fetch cannot declare it without a preflight, which
//!   this server never grants. 415 otherwise.
//! - **Deadlines.** [`deadline`] answers 503 when a request runs past
//!   `--request-timeout-seconds`, so a stuck upstream or store cannot hold a connection
//!   and its memory forever.
//! - **Framing.** The cockpit's pages carry a `Content-Security-Policy` that forbids
//!   framing and foreign scripts, and `X-Frame-Options: DENY`.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::ApiError;
use crate::settings::PublicUrl;
use crate::state::AppState;

/// The cockpit's content security policy: its own scripts and styles only (inline style
/// attributes, which the charts set, allowed), its own API and WebSocket, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The names this server answers to.
#[derive(Debug, Clone, Default)]
pub struct OwnNames {
    /// The listening ports; empty: any port (a router built without listeners).
    pub ports: Vec<u16>,
    /// `--public-url`.
    pub public: Option<PublicUrl>,
}

/// A `Host` value split into its name (lower-cased, IPv6 without brackets) and port.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim();
    if host.is_empty() {
        return None;
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (name, port)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') => (name, Some(port)),
            Some(_) => return None,
            None => (host, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((name.to_ascii_lowercase(), port))
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl OwnNames {
    /// Whether `host` (a `Host` header) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if let Some(public) = &self.public {
            let public_name = public.host.trim_start_matches('[').trim_end_matches(']');
            if name == public_name && port.unwrap_or(public.port) == public.port {
                return true;
            }
        }
        is_loopback_name(&name)
            && (self.ports.is_empty() || self.ports.contains(&port.unwrap_or(80)))
    }

    /// Whether a browser's `Origin` is this server's own: the scheme and authority of the
    /// request's `Host`, or `--public-url`'s origin. `null` and anything unparsable fail.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if let Some(public) = &self.public
            && origin == public.origin()
        {
            return true;
        }
        let Some(authority) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false;
        };
        match host {
            Some(host) => !authority.is_empty() && authority == host.trim().to_ascii_lowercase(),
            None => false,
        }
    }
}

/// The request's `Host`: the header, or the URI's authority (HTTP/2).
fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
}

/// Whether the request carries a body (a length above zero or a chunked one).
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Whether `Content-Type` declares JSON (`application/json`, or a `+json` type).
pub fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Whether `path` takes JSON bodies: the API and the MCP endpoint.
fn takes_json(path: &str) -> bool {
    path.starts_with("/api/") || path == "/mcp"
}

fn can_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the server is in open mode right now (loopback, no active key).
async fn open_mode(state: &AppState) -> bool {
    state.open_mode_allowed && matches!(state.keys.has_active_keys().await, Ok(false))
}

/// The guard, as an axum middleware over both routers.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request_host(&request);
    let verdict = check(
        &state,
        request.method(),
        request.uri().path(),
        request.headers(),
        host.as_deref(),
    );
    if let Err(refused) = verdict.await {
        return refused.into_response();
    }
    let cockpit_page = !takes_json(request.uri().path()) && request.uri().path() != "/metrics";
    let mut response = next.run(request).await;
    if cockpit_page {
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn check(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    host: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(host) = host
        && !state.own_names.host_allowed(host)
        && open_mode(state).await
    {
        return Err(ApiError::Misdirected {
            detail: format!(
                "this server does not answer to the host `{host}`: open mode only answers its \
                 loopback names (set --public-url to serve it under another name)"
            ),
        });
    }
    if can_change(method)
        && let Some(origin) = headers.get(header::ORIGIN)
    {
        let origin = origin.to_str().unwrap_or("");
        if !state.own_names.origin_allowed(origin, host) {
            return Err(ApiError::Forbidden {
                detail: format!(
                    "a request from the origin `{origin}` may not change anything here: only \
                     the cockpit's own origin may"
                ),
            });
        }
    }
    if can_change(method) && takes_json(path) && has_body(headers) && !declares_json(headers) {
        return Err(ApiError::UnsupportedMediaType {
            detail: "this route takes JSON: send `Content-Type: application/json`".into(),
        });
    }
    Ok(())
}

/// Whether a browser's `Origin` may open a WebSocket or write here; no `Origin` (not a
/// browser) passes.
pub fn browser_origin_allowed(names: &OwnNames, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    origin
        .to_str()
        .is_ok_and(|origin| names.origin_allowed(origin, host))
}

/// Routes that hold their connection on purpose or bound themselves: the live WebSocket
/// and the agent consoles' (upgraded at once, then long-lived), MCP (which may stream)
/// and copilot chat (each model call bounded by the model timeout, the turns by their own
/// limit).
fn streams(path: &str) -> bool {
    matches!(
        path,
        "/api/ws" | "/ws/cockpit" | "/mcp" | "/api/copilot/chat"
    ) || (path.starts_with("/api/live-agents/") && path.ends_with("/ws"))
}

/// Answers 503 with `Retry-After` when a request is not answered within
/// `--request-timeout-seconds` (streams excepted). The handler's future is dropped there.
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if streams(request.uri().path()) {
        return next.run(request).await;
    }
    let limit = state.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::TimedOut {
            detail: format!(
                "the request was not answered within {} s (--request-timeout-seconds)",
                limit.as_secs()
            ),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ports: &[u16], public: Option<&str>) -> OwnNames {
        OwnNames {
            ports: ports.to_vec(),
            public: public.map(|p| PublicUrl::parse(p).unwrap()),
        }
    }

    #[test]
    fn loopback_names_on_a_listening_port_are_our_own() {
        let n = names(&[3110, 3111], None);
        for ok in [
            "127.0.0.1:3110",
            "localhost:3111",
            "LOCALHOST:3110",
            "[::1]:3111",
            "127.0.0.2:3110",
            "cockpit.localhost:3110",
        ] {
            assert!(n.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:3110",
            "127.0.0.1:8080",
            "localhost",
            "127.0.0.1.evil.example:3110",
            "[::1",
            "a:b:c",
            "",
            "10.0.0.1:3110",
        ] {
            assert!(!n.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn the_public_url_adds_its_host() {
        let n = names(&[3110], Some("https://cockpit.example.com"));
        assert!(n.host_allowed("cockpit.example.com"));
        assert!(n.host_allowed("cockpit.example.com:443"));
        assert!(!n.host_allowed("cockpit.example.com:8443"));
        assert!(!n.host_allowed("other.example.com"));
        assert!(n.origin_allowed("https://cockpit.example.com", Some("127.0.0.1:3110")));
        assert!(!n.origin_allowed("http://cockpit.example.com", Some("127.0.0.1:3110")));
    }

    #[test]
    fn an_origin_must_be_the_requests_own_host() {
        let n = names(&[], None);
        assert!(n.origin_allowed("http://127.0.0.1:3110", Some("127.0.0.1:3110")));
        assert!(n.origin_allowed("HTTP://LocalHost:3110", Some("localhost:3110")));
        assert!(!n.origin_allowed("http://127.0.0.1:3110", Some("127.0.0.1:3111")));
        assert!(!n.origin_allowed("http://evil.example", Some("127.0.0.1:3110")));
        assert!(!n.origin_allowed("null", Some("127.0.0.1:3110")));
        assert!(!n.origin_allowed("http://127.0.0.1:3110", None));
    }

    #[test]
    fn the_sockets_hold_their_connection_past_the_deadline() {
        for long in ["/api/ws", "/ws/cockpit", "/api/live-agents/601/ws", "/mcp"] {
            assert!(streams(long), "{long}");
        }
        for short in [
            "/api/live-agents",
            "/api/workitems/601",
            "/api/live-agents/601",
        ] {
            assert!(!streams(short), "{short}");
        }
    }

    #[test]
    fn json_is_declared_by_media_type_not_by_guesswork() {
        let mut h = HeaderMap::new();
        assert!(!declares_json(&h));
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
            ("text/json", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(declares_json(&h), ok, "{value}");
        }
    }
}
