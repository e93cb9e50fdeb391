//! Issue 15.1: a secret the HRIS echoes back in any encoding stays out of every error text.
//! A fake HRIS (axum on 127.0.0.1:0) rejects the request and echoes the bearer token it
//! received in its error body: JSON-escaped the way PHP, Java and hand-written encoders do,
//! percent-encoded in either case, as base64 in both alphabets, inside a basic-auth blob, as
//! hex. The error's `Display` (logs, stderr), `Debug` and public message (events, the
//! directory) must show none of it, not even a fragment.

use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use roster::provider::fetch::FetchError;

use crate::fetch::{client, fetch, spec};

/// Canaries with the characters escapers treat specially (`/`, `+`, `=`, a space, `"`, `\`)
/// and non-ASCII ones (a BMP char and one that JSON writes as a surrogate pair).
const CANARIES: [&str; 3] = [
    "CANARY/k3y+s3cr=t",
    "CANARY-ünï/cödé=+",
    "CANARY pass\"w\\rd/🔑==",
];

/// Every way the fake echoes the token it received.
fn echoes(token: &str) -> Vec<(&'static str, String)> {
    let b = token.as_bytes();
    let std64 = base64::engine::general_purpose::STANDARD;
    let url64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json = serde_json::to_string(token).unwrap();
    let json = &json[1..json.len() - 1];
    let percent: String = url::form_urlencoded::byte_serialize(b).collect();
    let every_char_u: String = token
        .encode_utf16()
        .map(|u| format!("\\u{u:04x}"))
        .collect();
    vec![
        // PHP's json_encode: `/` as `\/`, non-ASCII as `\uXXXX`.
        (
            "php",
            json.replace('/', "\\/")
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_string()
                    } else {
                        c.encode_utf16(&mut [0; 2])
                            .iter()
                            .map(|u| format!("\\u{u:04x}"))
                            .collect()
                    }
                })
                .collect(),
        ),
        ("json \\u002F", json.replace('/', "\\u002F")),
        (
            "json every char as \\uXXXX",
            every_char_u.to_uppercase().replace("\\U", "\\u"),
        ),
        ("percent upper", percent.clone()),
        ("percent lower", lower_hex_escapes(&percent)),
        ("base64", std64.encode(b)),
        ("base64 url-safe", url64.encode(b)),
        ("basic auth blob", std64.encode(format!("svc-user:{token}"))),
        ("base64 PHP-escaped", std64.encode(b).replace('/', "\\/")),
        (
            "hex",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
        ),
        (
            "HEX",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>(),
        ),
    ]
}

/// `%2F` → `%2f`: the hex digits of percent-escapes in lower case, the rest untouched.
fn lower_hex_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut rest = 0;
    for c in s.chars() {
        if c == '%' {
            rest = 2;
            out.push(c);
        } else if rest > 0 {
            rest -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A fake HRIS that rejects every request with 401 and a JSON-ish error body echoing the
/// bearer token in the form named by the path (`/v1/echo/3` = the fourth form).
async fn echoing_hris() -> String {
    let app = axum::Router::new().fallback(|uri: Uri, headers: HeaderMap| async move {
        let token = headers
            .get("authorization")
            // Not `to_str`: that refuses the non-ASCII canaries.
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let token = token.strip_prefix("Bearer ").unwrap_or_default().to_string();
        let form: usize = uri.path().rsplit('/').next().unwrap().parse().unwrap();
        let (_, echoed) = &echoes(&token)[form];
        // Written by hand, as the PHP or Java service would: the echo is inserted as is.
        let body = format!(
            "{{\"error\":\"invalid_token\",\"message\":\"The access token {echoed} is not valid for this tenant\"}}"
        );
        (StatusCode::UNAUTHORIZED, body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

async fn fail(base: &str, form: usize, token: &str) -> FetchError {
    let s = spec(
        base,
        &format!(
            "credentials:\n  api_key: {{}}\nauth: {{kind: bearer, token: '{{credentials.api_key}}'}}\nstreams:\n  people:\n    request: {{path: /echo/{form}}}\n    records: $.data[*]\n"
        ),
    );
    let (_, r) = fetch(&client(&s, &[("api_key", token)]), "people").await;
    r.expect_err("the fake rejects every request")
}

/// True when `text` holds any 6-character window of `secret_form`: a fragment long enough to
/// narrow a guess, even when the whole is masked.
fn leaks(text: &str, secret_form: &str) -> Option<String> {
    let chars: Vec<char> = secret_form.chars().collect();
    chars
        .windows(6)
        .map(|w| w.iter().collect::<String>())
        .find(|w| text.contains(w.as_str()))
}

#[tokio::test]
async fn a_token_echoed_in_any_encoding_is_masked_in_every_error_text() {
    let base = echoing_hris().await;
    for token in CANARIES {
        for (form, (name, echoed)) in echoes(token).into_iter().enumerate() {
            let e = fail(&base, form, token).await;
            let display = e.to_string();
            assert!(
                display.contains("HTTP 401: {\"error\":\"invalid_token\",\"message\":\"The access token *** is not valid"),
                "{name}: the excerpt is kept, the token masked: {display}"
            );
            for (what, text) in [
                ("Display", display.clone()),
                ("Debug", format!("{e:?}")),
                ("public message", e.public_message()),
            ] {
                assert!(!text.contains("CANARY"), "{name} {what}: {text}");
                assert!(!text.contains(&echoed), "{name} {what}: {text}");
                if let Some(fragment) = leaks(&text, &echoed) {
                    panic!("{name} {what}: `{fragment}` of `{echoed}` in {text}");
                }
            }
            assert_eq!(e.code(), "hris_auth_rejected");
            assert!(
                !e.public_message().contains("invalid_token"),
                "no body in public"
            );
        }
    }
}

/// The masking happens before the excerpt is cut, so a secret that straddles the cut does
/// not leave its first half behind.
#[tokio::test]
async fn a_secret_across_the_excerpt_cut_leaves_no_half() {
    let token = "CANARY/across+the=cut";
    let app = axum::Router::new().fallback(move || async move {
        // 190 characters of padding, then the token: the 200-character cut falls inside it.
        (
            StatusCode::FORBIDDEN,
            format!("{}{}", "x".repeat(190), token.replace('/', "\\/")),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let e = fail(&format!("http://{addr}/v1"), 0, token).await;
    let display = e.to_string();
    assert!(
        display.contains(&format!("{}***", "x".repeat(190))),
        "{display}"
    );
    assert!(!display.contains("CANARY"), "{display}");
    assert_eq!(e.code(), "hris_forbidden");
}
