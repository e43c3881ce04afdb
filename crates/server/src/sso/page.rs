//! The pages a browser lands on when a single sign-on callback is refused: plain HTML
//! that says what happened and what to do, with no script and a policy that allows none.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The pages' Content-Security-Policy: nothing loads, nothing runs, nothing frames them.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                           form-action 'none'; frame-ancestors 'none'";

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A refusal page: `status`, a heading, and paragraphs of plain text (escaped here).
pub fn refusal(status: StatusCode, heading: &str, paragraphs: &[String]) -> Response {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>\n", escape(p)))
        .collect();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · CFactory</title>\n\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;\
         padding:0 1rem;color:#1f2328}}h1{{font-size:1.4rem}}code{{background:#f0f0f0;\
         padding:0 .2em}}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\
         <p><a href=\"/\">Back to the CFactory sign-in page</a></p>\n</main>\n</body>\n</html>\n",
        title = escape(heading),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refusal_page_escapes_what_it_is_given() {
        let response = refusal(
            StatusCode::FORBIDDEN,
            "No <access>",
            &["groups: \"<script>\" & co".into()],
        );
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("<h1>No &lt;access&gt;</h1>"), "{text}");
        assert!(
            text.contains("&quot;&lt;script&gt;&quot; &amp; co"),
            "{text}"
        );
        assert!(!text.contains("<script>"), "{text}");
    }
}
