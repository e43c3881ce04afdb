//! Where an upstream lives and how to talk to it, validated once at construction.

use std::fmt;
use std::time::Duration;

/// Why an upstream's configuration was rejected. Messages never repeat the URL or token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The base URL does not parse as a URL.
    #[error("upstream base URL is not a valid URL")]
    InvalidUrl,
    /// The base URL is not `http` or `https`.
    #[error("upstream base URL must use http or https, not {0}")]
    UnsupportedScheme(String),
    /// The base URL carries something the adapter cannot keep (credentials, a query or a
    /// fragment).
    #[error("upstream base URL must not carry {0}")]
    Unsupported(&'static str),
    /// The timeout is zero.
    #[error("upstream timeout must be above zero")]
    ZeroTimeout,
}

/// One upstream's address, bearer token and per-call timeout.
///
/// Fields are private: a value that exists has an `http(s)` base URL without a trailing
/// slash, and a non-zero timeout. `Debug` never prints the token.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    base_url: String,
    token: Option<String>,
    timeout: Duration,
}

impl UpstreamConfig {
    /// Validates and builds a configuration. `token` may be `None` (or blank) for an
    /// upstream that runs without auth.
    pub fn new(
        base_url: impl Into<String>,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let base_url = base_url.into();
        let url = reqwest::Url::parse(base_url.trim()).map_err(|_| ConfigError::InvalidUrl)?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(ConfigError::UnsupportedScheme(other.to_owned())),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::InvalidUrl);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::Unsupported("credentials"));
        }
        if url.query().is_some() {
            return Err(ConfigError::Unsupported("a query"));
        }
        if url.fragment().is_some() {
            return Err(ConfigError::Unsupported("a fragment"));
        }
        if timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        Ok(Self {
            base_url: url.as_str().trim_end_matches('/').to_owned(),
            token,
            timeout,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bearer token, if one is set.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The timeout of one HTTP call (and of a WebSocket handshake).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The absolute URL of `path` (which starts with `/`) on this upstream.
    pub fn http_url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The `ws://` or `wss://` URL of `path` on this upstream.
    pub fn ws_url(&self, path: &str) -> String {
        let url = self.http_url(path);
        match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", url.trim_start_matches("http://")),
        }
    }

    /// Removes this upstream's URL, host and port from `text`, so messages shown to users
    /// never reveal where the upstream lives.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.base_url, "<upstream>");
        let url = reqwest::Url::parse(&self.base_url).ok();
        if let Some(host) = url.as_ref().and_then(|u| u.host_str()) {
            if let Some(port) = url.as_ref().and_then(reqwest::Url::port_or_known_default) {
                out = out.replace(&format!("{host}:{port}"), "<upstream>");
            }
            out = out.replace(host, "<upstream>");
        }
        out
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn accepts_http_and_https_and_trims_the_slash() {
        let c = UpstreamConfig::new("http://localhost:3101/", None, T).unwrap();
        assert_eq!(c.base_url(), "http://localhost:3101");
        assert_eq!(c.ws_url("/ws/events"), "ws://localhost:3101/ws/events");
        let c = UpstreamConfig::new("https://af.example/base/", Some("t".into()), T).unwrap();
        assert_eq!(
            c.http_url("/api/tasks"),
            "https://af.example/base/api/tasks"
        );
        assert_eq!(
            c.ws_url("/ws/progress"),
            "wss://af.example/base/ws/progress"
        );
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert_eq!(
            UpstreamConfig::new("not a url", None, T),
            Err(ConfigError::InvalidUrl)
        );
        assert_eq!(
            UpstreamConfig::new("ftp://host", None, T),
            Err(ConfigError::UnsupportedScheme("ftp".into()))
        );
        assert!(UpstreamConfig::new("http://u:p@host", None, T).is_err());
        assert!(UpstreamConfig::new("http://host?x=1", None, T).is_err());
        assert_eq!(
            UpstreamConfig::new("http://host", None, Duration::ZERO),
            Err(ConfigError::ZeroTimeout)
        );
    }

    #[test]
    fn debug_hides_the_token_and_blank_tokens_are_none() {
        let c = UpstreamConfig::new("http://h", Some("s3cret".into()), T).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = UpstreamConfig::new("http://h", Some("  ".into()), T).unwrap();
        assert_eq!(c.token(), None);
    }

    #[test]
    fn scrub_removes_url_and_host() {
        let c = UpstreamConfig::new("http://10.1.2.3:3101", None, T).unwrap();
        let s = c.scrub(
            "error sending request for url (http://10.1.2.3:3101/api): 10.1.2.3:3101 refused",
        );
        assert!(!s.contains("10.1.2.3"), "{s}");
    }
}
