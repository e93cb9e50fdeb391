//! What a failed fetch tells whom.
//!
//! A [`FetchError`] has two faces, after dropshot's split between internal and external
//! messages:
//!
//! - `Display` (and `Debug`) is for the operator's own log and terminal: the request (method,
//!   path and query, secrets masked) and at most a 200-character excerpt of the HRIS's
//!   response body, secrets masked in every encoding (see [`super::redact`]).
//! - [`FetchError::code`] and [`FetchError::public_message`] are what may leave the process
//!   (events, the published directory's `sync_runs.error`): a stable code and Roster's own
//!   sentence, with no byte of any response body and no query string. An HRIS's error text
//!   can hold anything (personal data, internal hostnames, a token we failed to recognise),
//!   so it never reaches a webhook receiver or a directory reader.
//!
//! Not here: deciding which error happened (the engine) or what help to give (the engine
//! knows the provider spec).

use super::paginate::PageError;
use super::request::RenderError;

/// A fetch failure, with where it happened and what to do.
#[derive(Debug, thiserror::Error)]
#[error("source `{source_name}`: {}{kind}{}", request.as_ref().map(|r| format!("{r}: ")).unwrap_or_default(), help.as_ref().map(|h| format!(" (help: {h})")).unwrap_or_default())]
pub struct FetchError {
    /// The source.
    pub source_name: String,
    /// The request, described with secrets masked (for logs only: it has the query string).
    pub request: Option<String>,
    /// The stream being read when it failed, when known (a related stream's name when reading
    /// it for a join failed).
    /// (`Box<str>`s keep the error under clippy's `result_large_err` limit: it travels
    /// through every `?` of a fetch.)
    pub stream: Option<Box<str>>,
    /// The 1-based page of that stream, when known.
    pub page: Option<u32>,
    /// The sub-request (its `into` field) that failed, when one did.
    pub sub_request: Option<Box<str>>,
    /// What went wrong (boxed: errors travel through every `?`, and should stay small).
    pub kind: Box<FetchErrorKind>,
    /// What to do: Roster's words, from the provider spec and the error, never from a
    /// response.
    pub help: Option<String>,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum FetchErrorKind {
    /// A non-success status after retries.
    #[error("HTTP {status}{detail}")]
    Status {
        /// The status.
        status: u16,
        /// A short, redacted excerpt of the body, with a leading separator.
        detail: String,
    },
    /// Login (token exchange, OAuth) failed.
    #[error("login failed with HTTP {status}{detail}")]
    Login {
        /// The status.
        status: u16,
        /// A short, redacted excerpt of the body.
        detail: String,
    },
    /// The login response had no token where the spec says.
    #[error("the login response has no token at `{0}`")]
    NoToken(String),
    /// DNS, TCP or TLS failure before any response.
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// The host.
        host: String,
        /// Why (redacted; the URL left out, the request names it).
        reason: String,
        /// The TLS handshake failed (an untrusted or invalid certificate).
        tls: bool,
        /// The port answered the TLS handshake with something that is not TLS (most likely
        /// plain HTTP): deterministic, so not retried.
        not_tls: bool,
    },
    /// No answer in time.
    #[error("no answer from {host} in time")]
    Timeout {
        /// The host.
        host: String,
    },
    /// The whole fetch took longer than `timeouts.fetch`.
    #[error("reading stream `{stream}` took longer than {limit}")]
    FetchTimeout {
        /// The stream.
        stream: String,
        /// The limit, e.g. `30m` or `300ms`.
        limit: String,
    },
    /// The body is not JSON (and not merely cut short: that is [`FetchErrorKind::Truncated`]).
    #[error("{} is not valid JSON: {reason}", page_name(*page))]
    Json {
        /// 1-based page number; 0 for the login response.
        page: u32,
        /// The parser's message (a position, never the body's text).
        reason: String,
    },
    /// The response ended early, on every attempt.
    #[error("{}", truncated(*page, *received, *expected, *cut))]
    Truncated {
        /// 1-based page number; 0 for the login response.
        page: u32,
        /// Bytes of the body that arrived.
        received: u64,
        /// What `Content-Length` announced, if it did.
        expected: Option<u64>,
        /// How it ended.
        cut: Cut,
    },
    /// The selector matched nothing in a body that has content.
    #[error("page {page} has content but `{selector}` selects no records")]
    SchemaDrift {
        /// 1-based page number.
        page: u32,
        /// The stream's record selector.
        selector: String,
    },
    /// Paging failed (repeated cursor, too many pages, incomplete listing).
    #[error("stream `{stream}`: {error}")]
    Paging {
        /// The stream.
        stream: String,
        /// The paging error.
        error: PageError,
    },
    /// A request could not be built.
    #[error("{0}")]
    Render(#[from] RenderError),
    /// The spec asks for something this build cannot do yet.
    #[error("{0}")]
    Unsupported(String),
    /// The HTTP client could not be set up (e.g. an unreadable CA file), or a rotated token
    /// could not be read or saved.
    #[error("{0}")]
    Setup(String),
}

/// How a response ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The connection closed before the body was complete (fewer bytes than `Content-Length`,
    /// or a chunked body without its last chunk).
    MidTransfer,
    /// The body arrived whole by HTTP's account, but its JSON stops in the middle (a server
    /// that sent what it had, then closed).
    IncompleteJson,
    /// A success status with no body at all.
    Empty,
}

fn page_name(page: u32) -> String {
    match page {
        0 => "the login response".to_string(),
        p => format!("page {p}"),
    }
}

fn truncated(page: u32, received: u64, expected: Option<u64>, cut: Cut) -> String {
    let page = page_name(page);
    match cut {
        Cut::MidTransfer => format!(
            "the connection closed after {received} bytes of {page}{}; the response was cut mid-transfer",
            expected
                .map(|n| format!(" (of {n} announced)"))
                .unwrap_or_default()
        ),
        Cut::IncompleteJson => format!(
            "{page} ended after {received} bytes, before its JSON was complete; the response was cut short"
        ),
        Cut::Empty => format!("{page} arrived empty: a success status with no body"),
    }
}

impl FetchError {
    /// Records where the error happened, unless an inner read already did (a join's related
    /// stream keeps its own name).
    pub fn at(mut self, stream: &str, page: u32) -> FetchError {
        if self.stream.is_none() {
            self.stream = Some(stream.into());
            self.page = (page > 0).then_some(page);
        }
        self
    }

    /// Records that a sub-request (named by its `into` field) failed.
    pub fn in_sub_request(mut self, into: &str) -> FetchError {
        if self.sub_request.is_none() {
            self.sub_request = Some(into.into());
        }
        self
    }

    /// A stable, snake_case code for what went wrong; safe to publish, match on and count.
    ///
    /// | code | meaning |
    /// |---|---|
    /// | `hris_auth_rejected` | HTTP 401 after the one re-login: the credentials are wrong, revoked or expired |
    /// | `hris_forbidden` | HTTP 403: the credentials work but may not read this endpoint |
    /// | `hris_not_found` | HTTP 404: wrong `base_url`, path or setting (such as a subdomain) |
    /// | `hris_rate_limited` | HTTP 429 after every retry |
    /// | `hris_server_error` | HTTP 5xx after every retry |
    /// | `hris_http_error` | any other non-success status |
    /// | `hris_login_failed` | the login request (token exchange, OAuth token endpoint) failed |
    /// | `hris_login_no_token` | the login succeeded but its response has no token where the spec says |
    /// | `hris_unreachable` | DNS, TCP connect or a reset before any response, after every retry |
    /// | `hris_tls` | the TLS handshake failed (untrusted or invalid certificate) |
    /// | `hris_timeout` | no answer within the read or connect timeout, after every retry |
    /// | `fetch_timeout` | the whole stream took longer than `timeouts.fetch` |
    /// | `invalid_json` | a page (or the login response) is not JSON |
    /// | `truncated_body` | a response was cut mid-transfer, ended mid-JSON, or was empty, on every attempt |
    /// | `schema_drift` | the first page has content but the stream's `records` selector selects nothing |
    /// | `listing_incomplete` | fewer records arrived than the API reported |
    /// | `paging_error` | paging went wrong otherwise: a repeated cursor or next link, more than `max_pages`, a total that is not a number |
    /// | `request_invalid` | a request could not be built (a placeholder without a value, an invalid URL) |
    /// | `unsupported` | the spec asks for something Roster cannot do (an unknown stream, refresh tokens without a state directory) |
    /// | `client_setup_failed` | the HTTP client or the token store could not be set up (an unreadable CA file, an unwritable token file) |
    pub fn code(&self) -> &'static str {
        match &*self.kind {
            FetchErrorKind::Status { status, .. } => match status {
                401 => "hris_auth_rejected",
                403 => "hris_forbidden",
                404 => "hris_not_found",
                429 => "hris_rate_limited",
                500..=599 => "hris_server_error",
                _ => "hris_http_error",
            },
            FetchErrorKind::Login { .. } => "hris_login_failed",
            FetchErrorKind::NoToken(_) => "hris_login_no_token",
            FetchErrorKind::Connect { tls: true, .. } => "hris_tls",
            FetchErrorKind::Connect { tls: false, .. } => "hris_unreachable",
            FetchErrorKind::Timeout { .. } => "hris_timeout",
            FetchErrorKind::FetchTimeout { .. } => "fetch_timeout",
            FetchErrorKind::Json { .. } => "invalid_json",
            FetchErrorKind::Truncated { .. } => "truncated_body",
            FetchErrorKind::SchemaDrift { .. } => "schema_drift",
            FetchErrorKind::Paging {
                error: PageError::Incomplete { .. },
                ..
            } => "listing_incomplete",
            FetchErrorKind::Paging { .. } => "paging_error",
            FetchErrorKind::Render(_) => "request_invalid",
            FetchErrorKind::Unsupported(_) => "unsupported",
            FetchErrorKind::Setup(_) => "client_setup_failed",
        }
    }

    /// Roster's own sentence about the failure, for what leaves the process (events, the
    /// published directory): the source, stream, page, HTTP status and what to do. It holds
    /// no excerpt of any response body, no URL query string and no value a server sent
    /// (cursors, totals, next links).
    pub fn public_message(&self) -> String {
        let at = self.location();
        let what = match &*self.kind {
            FetchErrorKind::Status { status, .. } => match status {
                401 => format!("the HRIS rejected the credentials (HTTP 401){at}"),
                403 => format!("the HRIS refused access (HTTP 403){at}"),
                404 => format!("the HRIS answered not found (HTTP 404){at}"),
                429 => format!("the HRIS kept rate limiting (HTTP 429) after every retry{at}"),
                s @ 500..=599 => format!("the HRIS failed with HTTP {s} after every retry{at}"),
                s => format!("the HRIS answered HTTP {s}{at}"),
            },
            FetchErrorKind::Login { status, .. } => {
                format!("login to the HRIS failed with HTTP {status}{at}")
            }
            FetchErrorKind::NoToken(path) => {
                format!("the login response has no token at `{path}`{at}")
            }
            FetchErrorKind::Connect {
                host,
                not_tls: true,
                ..
            } => {
                format!(
                    "the TLS handshake with `{host}` failed: the port answered in plain HTTP, not TLS{at}"
                )
            }
            FetchErrorKind::Connect {
                host, tls: true, ..
            } => {
                format!("the TLS handshake with `{host}` failed{at}")
            }
            FetchErrorKind::Connect { host, .. } => {
                format!("cannot connect to `{host}` after every retry{at}")
            }
            FetchErrorKind::Timeout { host } => {
                format!("`{host}` did not answer in time, after every retry{at}")
            }
            FetchErrorKind::FetchTimeout { stream, limit } => {
                format!("reading stream `{stream}` took longer than {limit}")
            }
            FetchErrorKind::Json { page: 0, .. } => {
                format!("the login response is not valid JSON{at}")
            }
            FetchErrorKind::Json { .. } => format!("the response{at} is not valid JSON"),
            FetchErrorKind::Truncated {
                page,
                received,
                cut,
                ..
            } => {
                let subject = match page {
                    0 => format!("the login response{at}"),
                    _ => format!("the response{at}"),
                };
                match cut {
                    Cut::MidTransfer => format!(
                        "the connection closed after {received} bytes of {subject}; it was cut mid-transfer"
                    ),
                    Cut::IncompleteJson => format!(
                        "{subject} ended after {received} bytes, before its JSON was complete"
                    ),
                    Cut::Empty => format!("{subject} was empty"),
                }
            }
            FetchErrorKind::SchemaDrift { selector, .. } => {
                format!("the response{at} has content but `{selector}` selects no records")
            }
            FetchErrorKind::Paging { stream, error } => match error {
                // Roster's own words and numbers; no cursor, link or total value as sent.
                PageError::Repeated { page, what, .. } => format!(
                    "page {page} of stream `{stream}` repeats the {what} of an earlier page; paging would never end"
                ),
                PageError::BadTotal { path, .. } => {
                    format!("the total at `{path}` in stream `{stream}` is not a whole number")
                }
                PageError::TooManyPages { .. } | PageError::Incomplete { .. } => {
                    format!("stream `{stream}`: {error}")
                }
            },
            FetchErrorKind::Render(RenderError::BadUrl(_)) => {
                format!("a request URL{at} is not valid")
            }
            FetchErrorKind::Render(
                e @ (RenderError::Missing(_) | RenderError::BodyField { .. }),
            ) => {
                format!("{e}{at}")
            }
            FetchErrorKind::Unsupported(text) | FetchErrorKind::Setup(text) => text.clone(),
        };
        let help = self
            .help
            .as_ref()
            .map(|h| format!(" (help: {h})"))
            .unwrap_or_default();
        format!("source `{}`: {what}{help}", self.source_name)
    }

    /// " on page 2 of stream `people`", or what is known of it.
    fn location(&self) -> String {
        let page = match self.page {
            Some(p) => format!("page {p} of "),
            None => String::new(),
        };
        match (&self.stream, &self.sub_request) {
            (Some(s), Some(sub)) => {
                format!(" in sub-request `{sub}` for a record on {page}stream `{s}`")
            }
            (Some(s), None) if self.page.is_some() => format!(" on {page}stream `{s}`"),
            (Some(s), None) => format!(" while reading stream `{s}`"),
            (None, _) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: FetchErrorKind) -> FetchError {
        FetchError {
            source_name: "hr".into(),
            request: Some("GET /v1/people?api_key=***&offset=200".into()),
            stream: None,
            page: None,
            sub_request: None,
            kind: Box::new(kind),
            help: None,
        }
        .at("people", 3)
    }

    const BODY: &str = ": {\"error\": \"ada.lovelace@example.com is not allowed\"}";

    #[test]
    fn codes_and_public_messages_say_what_happened_without_the_body() {
        let cases: Vec<(FetchErrorKind, &str, &str)> = vec![
            (
                FetchErrorKind::Status {
                    status: 401,
                    detail: BODY.into(),
                },
                "hris_auth_rejected",
                "source `hr`: the HRIS rejected the credentials (HTTP 401) on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Status {
                    status: 403,
                    detail: BODY.into(),
                },
                "hris_forbidden",
                "source `hr`: the HRIS refused access (HTTP 403) on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Status {
                    status: 404,
                    detail: BODY.into(),
                },
                "hris_not_found",
                "source `hr`: the HRIS answered not found (HTTP 404) on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Status {
                    status: 429,
                    detail: BODY.into(),
                },
                "hris_rate_limited",
                "source `hr`: the HRIS kept rate limiting (HTTP 429) after every retry on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Status {
                    status: 502,
                    detail: BODY.into(),
                },
                "hris_server_error",
                "source `hr`: the HRIS failed with HTTP 502 after every retry on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Status {
                    status: 418,
                    detail: BODY.into(),
                },
                "hris_http_error",
                "source `hr`: the HRIS answered HTTP 418 on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Login {
                    status: 400,
                    detail: BODY.into(),
                },
                "hris_login_failed",
                "source `hr`: login to the HRIS failed with HTTP 400 on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::NoToken("$.token".into()),
                "hris_login_no_token",
                "source `hr`: the login response has no token at `$.token` on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Connect {
                    host: "hr.example".into(),
                    reason: "dns error".into(),
                    tls: false,
                    not_tls: false,
                },
                "hris_unreachable",
                "source `hr`: cannot connect to `hr.example` after every retry on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Connect {
                    host: "hr.example".into(),
                    reason: "invalid peer certificate".into(),
                    tls: true,
                    not_tls: false,
                },
                "hris_tls",
                "source `hr`: the TLS handshake with `hr.example` failed on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::Timeout {
                    host: "hr.example".into(),
                },
                "hris_timeout",
                "source `hr`: `hr.example` did not answer in time, after every retry on page 3 of stream `people`",
            ),
            (
                FetchErrorKind::FetchTimeout {
                    stream: "people".into(),
                    limit: "30m".into(),
                },
                "fetch_timeout",
                "source `hr`: reading stream `people` took longer than 30m",
            ),
            (
                FetchErrorKind::Json {
                    page: 3,
                    reason: "expected value at line 1 column 1".into(),
                },
                "invalid_json",
                "source `hr`: the response on page 3 of stream `people` is not valid JSON",
            ),
            (
                FetchErrorKind::Truncated {
                    page: 3,
                    received: 100,
                    expected: Some(1000),
                    cut: Cut::MidTransfer,
                },
                "truncated_body",
                "source `hr`: the connection closed after 100 bytes of the response on page 3 of stream `people`; it was cut mid-transfer",
            ),
            (
                FetchErrorKind::Truncated {
                    page: 3,
                    received: 0,
                    expected: None,
                    cut: Cut::Empty,
                },
                "truncated_body",
                "source `hr`: the response on page 3 of stream `people` was empty",
            ),
            (
                FetchErrorKind::SchemaDrift {
                    page: 3,
                    selector: "$.data[*]".into(),
                },
                "schema_drift",
                "source `hr`: the response on page 3 of stream `people` has content but `$.data[*]` selects no records",
            ),
            (
                FetchErrorKind::Paging {
                    stream: "people".into(),
                    error: PageError::Incomplete {
                        reported: 500,
                        delivered: 50,
                    },
                },
                "listing_incomplete",
                "source `hr`: stream `people`: incomplete listing: the API reported 500 records but 50 arrived",
            ),
            (
                FetchErrorKind::Paging {
                    stream: "people".into(),
                    error: PageError::Repeated {
                        page: 3,
                        what: "next link",
                        value: "https://h/v1/people?token=ada.lovelace@example.com".into(),
                    },
                },
                "paging_error",
                "source `hr`: page 3 of stream `people` repeats the next link of an earlier page; paging would never end",
            ),
            (
                FetchErrorKind::Paging {
                    stream: "people".into(),
                    error: PageError::BadTotal {
                        path: "$.total".into(),
                        found: "\"ada.lovelace@example.com\"".into(),
                    },
                },
                "paging_error",
                "source `hr`: the total at `$.total` in stream `people` is not a whole number",
            ),
            (
                FetchErrorKind::Render(RenderError::BadUrl(
                    "https://ada.lovelace@example.com:x/".into(),
                )),
                "request_invalid",
                "source `hr`: a request URL on page 3 of stream `people` is not valid",
            ),
            (
                FetchErrorKind::Unsupported("no stream `x` (streams: people)".into()),
                "unsupported",
                "source `hr`: no stream `x` (streams: people)",
            ),
            (
                FetchErrorKind::Setup("cannot read CA file /etc/ca.pem: not found".into()),
                "client_setup_failed",
                "source `hr`: cannot read CA file /etc/ca.pem: not found",
            ),
        ];
        for (kind, code, message) in cases {
            let e = error(kind);
            assert_eq!(e.code(), code, "{e}");
            let public = e.public_message();
            assert_eq!(public, message);
            assert!(!public.contains("ada.lovelace"), "{public}");
            assert!(!public.contains("api_key"), "no query string: {public}");
        }
    }

    #[test]
    fn the_log_message_keeps_the_request_and_the_excerpt() {
        let e = error(FetchErrorKind::Status {
            status: 401,
            detail: ": token *** is revoked".into(),
        });
        assert_eq!(
            e.to_string(),
            "source `hr`: GET /v1/people?api_key=***&offset=200: HTTP 401: token *** is revoked"
        );
    }

    #[test]
    fn help_and_sub_requests_are_in_the_public_message() {
        let mut e = error(FetchErrorKind::Status {
            status: 404,
            detail: BODY.into(),
        })
        .in_sub_request("employments");
        e.help = Some("check `base_url`".into());
        assert_eq!(
            e.public_message(),
            "source `hr`: the HRIS answered not found (HTTP 404) in sub-request `employments` for a record on page 3 of stream `people` (help: check `base_url`)"
        );
        assert_eq!(e.code(), "hris_not_found");
    }

    #[test]
    fn the_first_location_wins() {
        let e = error(FetchErrorKind::Json {
            page: 1,
            reason: "x".into(),
        })
        .at("accounts", 7);
        assert_eq!((e.stream.as_deref(), e.page), (Some("people"), Some(3)));
    }
}
