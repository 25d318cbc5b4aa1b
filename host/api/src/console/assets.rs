//! The console's scripts and styles, and the API reference page: vendored at pinned versions
//! (`host/api/assets/VENDORED.md` says where each came from) and embedded in the binary, so
//! the console and `/docs` work on a machine with no internet.

use std::io::Read;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// An embedded asset.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// The bytes are gzipped (sent as such to clients that take gzip).
    gzipped: bool,
}

/// Every asset, by the name it is served under (`/assets/{name}`). Vendored files carry their
/// version in the name, so they are cached for a year; the console's own files for an hour.
const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx-2.0.11.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/htmx-2.0.11.min.js"),
        gzipped: false,
    },
    Asset {
        name: "scalar-api-reference-1.76.4.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/scalar-api-reference-1.76.4.js.gz"),
        gzipped: true,
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/console.css"),
        gzipped: false,
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console.js"),
        gzipped: false,
    },
    Asset {
        name: "docs.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/docs.js"),
        gzipped: false,
    },
];

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let versioned = a.name.chars().any(|c| c.is_ascii_digit());
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    let mut r = if a.gzipped {
        let takes_gzip = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        if takes_gzip {
            let mut r = a.bytes.into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        } else {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(a.bytes)
                .read_to_end(&mut out)
                .is_err()
            {
                return (StatusCode::INTERNAL_SERVER_ERROR, "a damaged asset").into_response();
            }
            out.into_response()
        }
    } else {
        a.bytes.into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    r
}

/// `GET /docs`: the API reference, Scalar's page over `/openapi.json`, all of it served here.
pub async fn docs() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>heatbill admin API</title>
</head>
<body>
<div id="app"></div>
<script src="/assets/scalar-api-reference-1.76.4.js"></script>
<script src="/assets/docs.js"></script>
</body>
</html>
"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gzipped_asset_inflates() {
        let a = ASSETS.iter().find(|a| a.gzipped).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(a.bytes)
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.len() > 1_000_000, "{}", out.len());
        assert!(String::from_utf8_lossy(&out).contains("createApiReference"));
    }
}
