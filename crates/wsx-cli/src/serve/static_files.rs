//! The demo pages, embedded in the binary: the chat page (`web/index.html`, `web/app.js`,
//! `web/stomp.js`: the STOMP client of its STOMP mode, `web/style.css`, `web/favicon.svg`) and
//! the quote page of `--demo-quotes` (`web/quotes.html`, `web/quotes.js`, on the same
//! `stomp.js` and `style.css`) from the repository, served by the router for `GET /`,
//! `GET /quotes` and friends.

/// An embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The Content-Security-Policy of the page: everything from this origin, images also from
/// `blob:` (received files) and `data:`, WebSockets to any host (same host in practice; `'self'`
/// does not cover `ws:` in every browser), nothing inline, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; \
     connect-src 'self' ws: wss:; script-src 'self'; style-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const APP_JS: &str = include_str!("../../../../web/app.js");
const STOMP_JS: &str = include_str!("../../../../web/stomp.js");
const STYLE_CSS: &str = include_str!("../../../../web/style.css");
const QUOTES_HTML: &str = include_str!("../../../../web/quotes.html");
const QUOTES_JS: &str = include_str!("../../../../web/quotes.js");
const FAVICON_SVG: &str = include_str!("../../../../web/favicon.svg");

/// The embedded file served at `path`, if any.
pub fn lookup(path: &str) -> Option<Asset> {
    let (content_type, body) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/stomp.js" => ("text/javascript; charset=utf-8", STOMP_JS),
        "/quotes" | "/quotes.html" => ("text/html; charset=utf-8", QUOTES_HTML),
        "/quotes.js" => ("text/javascript; charset=utf-8", QUOTES_JS),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "/favicon.svg" | "/favicon.ico" => ("image/svg+xml", FAVICON_SVG),
        _ => return None,
    };
    Some(Asset {
        content_type,
        body: body.as_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_and_assets_are_embedded() {
        let index = lookup("/").map(|a| a.body).unwrap_or_default();
        let index = std::str::from_utf8(index).unwrap_or_default();
        assert!(index.contains("<title>wsx chat</title>"));
        assert!(index.contains("/app.js") && index.contains("/style.css"));
        assert!(lookup("/app.js").is_some_and(|a| a.content_type.starts_with("text/javascript")));
        assert!(index.contains("/stomp.js"));
        assert!(lookup("/stomp.js").is_some_and(|a| a.content_type.starts_with("text/javascript")));
        let quotes = lookup("/quotes").map(|a| a.body).unwrap_or_default();
        let quotes = std::str::from_utf8(quotes).unwrap_or_default();
        assert!(quotes.contains("<title>wsx quotes</title>"));
        assert!(quotes.contains("/stomp.js") && quotes.contains("/quotes.js"));
        assert!(
            lookup("/quotes.js").is_some_and(|a| a.content_type.starts_with("text/javascript"))
        );
        assert!(lookup("/nope").is_none());
    }
}
