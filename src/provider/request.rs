//! Turning a provider spec's request into a concrete one: templates filled from credentials,
//! settings and sub-request vars, the URL joined to the base, static auth applied, and every
//! secret value known so it can be masked wherever it might appear.
//!
//! Every secret value that goes into a request is handed to a [`Redactor`] (see
//! [`super::redact`]), which masks it in any form wherever it appears.
//!
//! Not here: sending (the engine), token acquisition (auth flows hand a token to
//! [`Plan::with_token`]).

use std::collections::BTreeMap;

use base64::Engine as _;

pub use super::redact::{ROTATING_KEPT, Redactor};
use crate::config::provider::{Auth, Body, KeyLocation, Method, ProviderSpec, QueryValue, Request};
use crate::config::secret::Secret;
use crate::config::value::Template;

/// Why a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A placeholder has no value (validation makes this rare: an optional credential unset).
    #[error("`{{{0}}}` has no value; set it in the source's credentials or settings")]
    Missing(String),
    /// The filled-in URL is not valid.
    #[error("the request URL `{0}` is not valid")]
    BadUrl(String),
    /// A paging parameter cannot go where the pagination's `in: body` says (validation
    /// reports this for the spec's own body).
    #[error("cannot put the paging parameter `{name}` into the request body: {why}")]
    BodyField {
        /// The parameter name or JSON Pointer.
        name: String,
        /// What is in the way.
        why: String,
    },
}

/// Values for placeholders, each marked secret or not.
#[derive(Clone, Default)]
pub struct Context {
    values: BTreeMap<String, (String, bool)>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.values.keys().collect();
        f.debug_struct("Context")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for one source: its resolved credentials (secret unless the provider says
    /// otherwise) and its settings, defaults applied.
    pub fn new(
        spec: &ProviderSpec,
        credentials: &BTreeMap<String, Secret>,
        settings: &BTreeMap<String, String>,
    ) -> Context {
        let mut values = BTreeMap::new();
        for (name, value) in credentials {
            let secret = spec.credentials.get(name).is_none_or(|d| d.secret);
            values.insert(
                format!("credentials.{name}"),
                (value.expose().to_string(), secret),
            );
        }
        for (name, decl) in &spec.settings {
            if let Some(v) = settings.get(name).or(decl.default.as_ref()) {
                values.insert(format!("settings.{name}"), (v.clone(), false));
            }
        }
        Context { values }
    }

    /// This context plus sub-request vars (`{var.NAME}`), which are record data, not secrets.
    pub fn with_vars(&self, vars: &BTreeMap<String, String>) -> Context {
        let mut c = self.clone();
        for (k, v) in vars {
            c.values.insert(format!("var.{k}"), (v.clone(), false));
        }
        c
    }

    /// Fills a template; the result is secret when any placeholder was.
    pub fn render(&self, t: &Template) -> Result<(String, bool), RenderError> {
        let mut secret = false;
        let mut missing = None;
        let text = t.render(|name| match self.values.get(name) {
            Some((v, s)) => {
                secret |= *s;
                Some(v.clone())
            }
            None => {
                missing = Some(name.to_string());
                None
            }
        });
        match text {
            Some(text) => Ok((text, secret)),
            None => Err(RenderError::Missing(missing.unwrap_or_default())),
        }
    }

    /// A redactor for every secret value in this context.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(
            self.values
                .values()
                .filter(|(_, s)| *s)
                .map(|(v, _)| v.clone()),
        )
    }
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The method.
    pub method: Method,
    /// The full URL, query included.
    pub url: url::Url,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<PlannedBody>,
    /// Values derived from secrets that do not contain them verbatim (a basic-auth header's
    /// base64), for [`Plan::redactor`].
    derived_secrets: Vec<String>,
}

/// A rendered body.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedBody {
    /// JSON.
    Json(serde_json::Value),
    /// Form fields.
    Form(Vec<(String, String)>),
}

impl Plan {
    /// Builds the request: `base_url` joined with the path (an absolute path or URL is used as
    /// is), the provider's headers, the request's query and headers, `extra_query` (paging)
    /// last so it wins, and static auth.
    pub fn build(
        spec: &ProviderSpec,
        req: &Request,
        ctx: &Context,
        extra_query: &[(String, String)],
    ) -> Result<Plan, RenderError> {
        Plan::build_with(spec, req, ctx, extra_query, true)
    }

    /// Like [`Plan::build`] without the provider's auth: the login request itself.
    pub fn build_unauthenticated(
        spec: &ProviderSpec,
        req: &Request,
        ctx: &Context,
    ) -> Result<Plan, RenderError> {
        Plan::build_with(spec, req, ctx, &[], false)
    }

    /// A form POST to an absolute URL (an OAuth token endpoint).
    pub fn post_form(url: &str, form: Vec<(String, String)>) -> Result<Plan, RenderError> {
        Ok(Plan {
            method: Method::Post,
            url: url::Url::parse(url).map_err(|_| RenderError::BadUrl(url.to_string()))?,
            headers: vec![("Accept".into(), "application/json".into())],
            body: Some(PlannedBody::Form(form)),
            derived_secrets: Vec::new(),
        })
    }

    /// Sets HTTP basic authentication from secret values.
    pub fn set_basic(&mut self, user: &str, password: &str) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        set(&mut self.headers, "Authorization", format!("Basic {b64}"));
        self.derived_secrets.push(b64);
    }

    fn build_with(
        spec: &ProviderSpec,
        req: &Request,
        ctx: &Context,
        extra_query: &[(String, String)],
        apply_auth: bool,
    ) -> Result<Plan, RenderError> {
        let (base, _) = ctx.render(spec.base_url.template())?;
        let (path, _) = ctx.render(&req.path)?;
        let mut url = join(&base, &path)?;
        let mut query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        for (k, v) in &req.query {
            match v {
                QueryValue::One(t) => set(&mut query, k, ctx.render(t)?.0),
                QueryValue::Many(ts) => {
                    // Repeated: every item, in order, in place of any the path had.
                    query.retain(|(q, _)| !q.eq_ignore_ascii_case(k));
                    for t in ts {
                        query.push((k.clone(), ctx.render(t)?.0));
                    }
                }
            }
        }
        for (k, v) in extra_query {
            set(&mut query, k, v.clone());
        }
        let mut headers = Vec::new();
        let mut derived_secrets = Vec::new();
        for (k, t) in spec.headers.iter().chain(&req.headers) {
            set(&mut headers, k, ctx.render(t)?.0);
        }
        let auth = if apply_auth { &spec.auth } else { &Auth::None };
        match auth {
            Auth::ApiKey {
                location,
                name,
                value,
            } => {
                let v = ctx.render(value)?.0;
                match location {
                    KeyLocation::Header => set(&mut headers, name, v),
                    KeyLocation::Query => set(&mut query, name, v),
                }
            }
            Auth::Headers { headers: h } => {
                for (k, t) in h {
                    set(&mut headers, k, ctx.render(t)?.0);
                }
            }
            Auth::Bearer { token } => {
                let t = ctx.render(token)?.0;
                set(&mut headers, "Authorization", with_prefix("Bearer ", &t));
            }
            Auth::Basic { username, password } => {
                let (user, user_secret) = ctx.render(username)?;
                let (pass, pass_secret) = match password {
                    Some(p) => ctx.render(p)?,
                    None => (String::new(), false),
                };
                let b64 =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                if user_secret || pass_secret {
                    derived_secrets.push(b64.clone());
                }
                set(&mut headers, "Authorization", format!("Basic {b64}"));
            }
            // Token-based kinds get their header from `with_token` once a token is known.
            Auth::None
            | Auth::TokenExchange { .. }
            | Auth::Oauth2ClientCredentials { .. }
            | Auth::Oauth2RefreshToken { .. } => {}
        }
        if query.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(&query);
        }
        let body = match &req.body {
            None => None,
            Some(Body::Json(v)) => Some(PlannedBody::Json(render_json(v, ctx)?)),
            Some(Body::Form(f)) => Some(PlannedBody::Form(
                f.iter()
                    .map(|(k, t)| Ok((k.clone(), ctx.render(t)?.0)))
                    .collect::<Result<_, RenderError>>()?,
            )),
        };
        Ok(Plan {
            method: req.method,
            url,
            headers,
            body,
            derived_secrets,
        })
    }

    /// Sets paging parameters as fields of the JSON body (see `in: body` in the provider
    /// spec): each name is a top-level field or a JSON Pointer; missing objects on the way
    /// are created, and a request without a body gets a JSON object.
    pub fn set_body_fields(
        &mut self,
        fields: &[(String, serde_json::Value)],
    ) -> Result<(), RenderError> {
        if fields.is_empty() {
            return Ok(());
        }
        let body = self
            .body
            .get_or_insert_with(|| PlannedBody::Json(serde_json::json!({})));
        let PlannedBody::Json(json) = body else {
            return Err(RenderError::BodyField {
                name: fields[0].0.clone(),
                why: "the request's body is a form, not JSON".into(),
            });
        };
        for (name, value) in fields {
            let err = |why: String| RenderError::BodyField {
                name: name.clone(),
                why,
            };
            let path = crate::config::provider::body_field_path(name).map_err(err)?;
            let (last, parents) = path.split_last().expect("a field path has a segment");
            let mut at = &mut *json;
            for seg in parents {
                at = object_of(at)
                    .map_err(err)?
                    .entry(seg.clone())
                    .or_insert_with(|| serde_json::json!({}));
            }
            object_of(at)
                .map_err(err)?
                .insert(last.clone(), value.clone());
        }
        Ok(())
    }

    /// Sets a token header (`prefix` + token, unless the token already carries the prefix,
    /// as Kenjo's does).
    pub fn with_token(mut self, header: &str, prefix: &str, token: &str) -> Plan {
        set(&mut self.headers, header, with_prefix(prefix, token));
        self
    }

    /// `base` (the source's redactor) plus what this request derived from secrets.
    pub fn redactor(&self, base: &Redactor) -> Redactor {
        let mut r = base.clone();
        for v in &self.derived_secrets {
            r.add(v);
        }
        r
    }

    /// `GET /v1/employees?limit=100&api_key=***`: method, path and query, secrets masked,
    /// for logs, errors and `roster fetch --show-requests`.
    pub fn describe(&self, redactor: &Redactor) -> String {
        let method = match self.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        };
        let mut target = self.url.path().to_string();
        if let Some(q) = self.url.query() {
            target.push('?');
            target.push_str(q);
        }
        self.redactor(redactor)
            .redact(&format!("{method} {target}"))
    }
}

/// `prefix` + `token`, not doubling a prefix the token already has (case-insensitively).
pub fn with_prefix(prefix: &str, token: &str) -> String {
    let has = token.len() >= prefix.len()
        && token.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
    if prefix.is_empty() || has {
        token.to_string()
    } else {
        format!("{prefix}{token}")
    }
}

/// The object at a step of a body field path; a null becomes an empty object.
fn object_of(
    v: &mut serde_json::Value,
) -> Result<&mut serde_json::Map<String, serde_json::Value>, String> {
    if v.is_null() {
        *v = serde_json::json!({});
    }
    match v {
        serde_json::Value::Object(m) => Ok(m),
        other => Err(format!(
            "the body has {} there, not an object",
            crate::config::provider::json_kind(other)
        )),
    }
}

fn set(pairs: &mut Vec<(String, String)>, key: &str, value: String) {
    match pairs.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        Some(p) => p.1 = value,
        None => pairs.push((key.to_string(), value)),
    }
}

/// `spec` with its `base_url` replaced by `base` (a source's `base_url:`), for the settings in
/// `ctx`. Every absolute URL in the spec on the origin (scheme, host, port) of the old base URL
/// moves to the new origin with its path kept: an OAuth `token_url`, a login request, a
/// stream's absolute path. URLs on other hosts are left alone.
pub fn rebase(spec: &ProviderSpec, ctx: &Context, base: &url::Url) -> ProviderSpec {
    let mut out = spec.clone();
    let Ok(new_base) = crate::config::value::UrlTemplate::parse(base.as_str()) else {
        return out;
    };
    out.base_url = new_base;
    let old = ctx
        .render(spec.base_url.template())
        .ok()
        .and_then(|(u, _)| url::Url::parse(&u).ok());
    let Some(old) = old else {
        return out;
    };
    // The same URL on the new origin, when it is on the old one.
    let moved = |t: &Template| -> Option<String> {
        let (text, _) = ctx.render(t).ok()?;
        let mut u = url::Url::parse(&text).ok()?;
        if u.origin() != old.origin() {
            return None;
        }
        u.set_scheme(base.scheme()).ok()?;
        u.set_host(base.host_str()).ok()?;
        u.set_port(base.port()).ok()?;
        Some(u.to_string())
    };
    let rebase_request = |req: &mut Request| {
        if let Some(t) = moved(&req.path).and_then(|u| Template::parse(&u).ok()) {
            req.path = t;
        }
    };
    match &mut out.auth {
        Auth::Oauth2ClientCredentials { token_url, .. }
        | Auth::Oauth2RefreshToken { token_url, .. } => {
            if let Some(u) = moved(token_url.template())
                .and_then(|u| crate::config::value::UrlTemplate::parse(&u).ok())
            {
                *token_url = u;
            }
        }
        Auth::TokenExchange { request, .. } => rebase_request(request),
        _ => {}
    }
    for stream in out.streams.values_mut() {
        rebase_request(&mut stream.request);
    }
    out
}

/// Joins a path to the base URL: `/employees` on `https://h/v1` is `https://h/v1/employees`
/// (the base's path is kept, unlike RFC 3986 resolution), and an absolute URL replaces it.
pub fn join(base: &str, path: &str) -> Result<url::Url, RenderError> {
    if path.starts_with("http://") || path.starts_with("https://") {
        return url::Url::parse(path).map_err(|_| RenderError::BadUrl(path.to_string()));
    }
    let joined = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url::Url::parse(&joined).map_err(|_| RenderError::BadUrl(joined))
}

fn render_json(v: &serde_json::Value, ctx: &Context) -> Result<serde_json::Value, RenderError> {
    use serde_json::Value as J;
    Ok(match v {
        J::String(s) => match Template::parse(s) {
            Ok(t) => J::String(ctx.render(&t)?.0),
            Err(_) => J::String(s.clone()), // validation reported it; send as written
        },
        J::Array(items) => J::Array(
            items
                .iter()
                .map(|i| render_json(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, i)| Ok((k.clone(), render_json(i, ctx)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(auth: &str) -> ProviderSpec {
        let yaml = format!(
            "base_url: https://{{settings.host}}/api/v1\ncredentials:\n  client_id: {{secret: false}}\n  api_key: {{}}\nsettings:\n  host: {{default: hr.example.com}}\nheaders:\n  Accept: application/json\nauth: {auth}\nstreams:\n  people:\n    request:\n      path: /people\n      query: {{status: all}}\n    records: $.data[*]\n"
        );
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            &yaml,
        ))
        .unwrap()
    }

    fn ctx(spec: &ProviderSpec) -> Context {
        let creds = BTreeMap::from([
            ("client_id".to_string(), Secret::new("client-123")),
            ("api_key".to_string(), Secret::new("k3y/CANARY+1")),
        ]);
        Context::new(spec, &creds, &BTreeMap::new())
    }

    fn header<'a>(p: &'a Plan, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn api_key_in_the_query_is_sent_and_masked_in_descriptions() {
        let s = spec("{kind: api_key, in: query, name: api_key, value: '{credentials.api_key}'}");
        let c = ctx(&s);
        let p = Plan::build(
            &s,
            &s.streams["people"].request,
            &c,
            &[("offset".into(), "100".into())],
        )
        .unwrap();
        assert_eq!(
            p.url.as_str(),
            "https://hr.example.com/api/v1/people?status=all&offset=100&api_key=k3y%2FCANARY%2B1"
        );
        assert_eq!(header(&p, "accept"), Some("application/json"));
        assert_eq!(
            p.describe(&c.redactor()),
            "GET /api/v1/people?status=all&offset=100&api_key=***"
        );
    }

    #[test]
    fn a_sources_base_url_moves_the_urls_on_the_specs_host_and_leaves_others() {
        let yaml = "base_url: https://{settings.host}/api/v1\nsettings:\n  host: {default: public-api.example.com}\ncredentials:\n  id: {secret: false}\n  secret: {}\nauth: {kind: oauth2_client_credentials, token_url: 'https://{settings.host}/oauth/token', client_id: '{credentials.id}', client_secret: '{credentials.secret}'}\nstreams:\n  people:\n    request: {path: /people}\n    records: $.data[*]\n  extra:\n    request: {path: 'https://public-api.example.com:443/v2/extra'}\n    records: $.data[*]\n  elsewhere:\n    request: {path: 'https://files.example.net/x'}\n    records: $.data[*]\n";
        let s: ProviderSpec = serde_yaml::with::singleton_map_recursive::deserialize(
            serde_yaml::Deserializer::from_str(yaml),
        )
        .unwrap();
        let ctx = Context::new(&s, &BTreeMap::new(), &BTreeMap::new());
        let base = url::Url::parse("http://127.0.0.1:8080/mock/v1").unwrap();
        let r = rebase(&s, &ctx, &base);
        assert_eq!(r.base_url.as_str(), "http://127.0.0.1:8080/mock/v1");
        let Auth::Oauth2ClientCredentials { token_url, .. } = &r.auth else {
            panic!("{:?}", r.auth);
        };
        assert_eq!(token_url.as_str(), "http://127.0.0.1:8080/oauth/token");
        assert_eq!(r.streams["people"].request.path.as_str(), "/people");
        assert_eq!(
            r.streams["extra"].request.path.as_str(),
            "http://127.0.0.1:8080/v2/extra"
        );
        assert_eq!(
            r.streams["elsewhere"].request.path.as_str(),
            "https://files.example.net/x"
        );
        // Requests go to the new host.
        let ctx = Context::new(&r, &BTreeMap::new(), &BTreeMap::new());
        let p = Plan::build(&r, &r.streams["people"].request, &ctx, &[]).unwrap();
        assert_eq!(p.url.as_str(), "http://127.0.0.1:8080/mock/v1/people");
    }

    #[test]
    fn a_list_repeats_the_query_parameter_in_order() {
        let yaml = "base_url: https://hr.example.com/v1\nsettings:\n  extra: {default: offboarding}\nauth: {kind: none}\nstreams:\n  people:\n    request:\n      path: /people?hiring_statuses=ignored\n      query: {hiring_statuses: [hired, active, '{settings.extra}'], limit: '50'}\n    records: $.data[*]\n";
        let s: ProviderSpec = serde_yaml::with::singleton_map_recursive::deserialize(
            serde_yaml::Deserializer::from_str(yaml),
        )
        .unwrap();
        let p = Plan::build(
            &s,
            &s.streams["people"].request,
            &Context::new(&s, &BTreeMap::new(), &BTreeMap::new()),
            &[("offset".into(), "0".into())],
        )
        .unwrap();
        assert_eq!(
            p.url.as_str(),
            "https://hr.example.com/v1/people?hiring_statuses=hired&hiring_statuses=active&hiring_statuses=offboarding&limit=50&offset=0"
        );
    }

    #[test]
    fn bearer_basic_and_headers() {
        let s = spec("{kind: bearer, token: '{credentials.api_key}'}");
        let p = Plan::build(&s, &s.streams["people"].request, &ctx(&s), &[]).unwrap();
        assert_eq!(header(&p, "Authorization"), Some("Bearer k3y/CANARY+1"));

        let s = spec("{kind: basic, username: '{credentials.api_key}', password: x}");
        let p = Plan::build(&s, &s.streams["people"].request, &ctx(&s), &[]).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("k3y/CANARY+1:x");
        assert_eq!(
            header(&p, "authorization"),
            Some(format!("Basic {b64}").as_str())
        );
        assert_eq!(
            p.redactor(&ctx(&s).redactor())
                .redact(&format!("sent Basic {b64}")),
            "sent Basic ***",
            "the basic header is masked too"
        );

        let s = spec(
            "{kind: headers, headers: {Authorization: 'Bearer {credentials.api_key}', X-Account-Token: '{credentials.client_id}'}}",
        );
        let p = Plan::build(&s, &s.streams["people"].request, &ctx(&s), &[]).unwrap();
        assert_eq!(header(&p, "x-account-token"), Some("client-123"));
    }

    #[test]
    fn tokens_keep_a_prefix_they_already_have() {
        assert_eq!(with_prefix("Bearer ", "abc"), "Bearer abc");
        assert_eq!(
            with_prefix("Bearer ", "Bearer abc"),
            "Bearer abc",
            "Kenjo's token starts with Bearer"
        );
        assert_eq!(with_prefix("Bearer ", "bearer abc"), "bearer abc");
        assert_eq!(with_prefix("", "abc"), "abc");
        let s = spec("{kind: none}");
        let p = Plan::build(&s, &s.streams["people"].request, &ctx(&s), &[])
            .unwrap()
            .with_token("Authorization", "Bearer ", "Bearer eyJ");
        assert_eq!(header(&p, "authorization"), Some("Bearer eyJ"));
    }

    #[test]
    fn urls_join_like_people_expect() {
        assert_eq!(
            join("https://h/v1", "/employees").unwrap().as_str(),
            "https://h/v1/employees"
        );
        assert_eq!(
            join("https://h/v1/", "employees").unwrap().as_str(),
            "https://h/v1/employees"
        );
        assert_eq!(
            join("https://h/v1", "https://other/next?page=2")
                .unwrap()
                .as_str(),
            "https://other/next?page=2"
        );
    }

    #[test]
    fn sub_request_vars_and_json_bodies() {
        let s = spec("{kind: none}");
        let c = ctx(&s).with_vars(&BTreeMap::from([("id".to_string(), "42".to_string())]));
        let req: Request = serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            "method: POST\npath: /people/{var.id}/employments\nbody:\n  json: {owner: '{var.id}', key: '{credentials.api_key}', n: 3}\n",
        ))
        .unwrap();
        let p = Plan::build(&s, &req, &c, &[]).unwrap();
        assert_eq!(p.url.path(), "/api/v1/people/42/employments");
        assert_eq!(
            p.body,
            Some(PlannedBody::Json(
                serde_json::json!({"owner": "42", "key": "k3y/CANARY+1", "n": 3})
            ))
        );
    }

    #[test]
    fn paging_parameters_go_into_the_json_body_by_name_or_pointer() {
        let s = spec("{kind: none}");
        let req: Request = serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            "method: POST\npath: /datasets/employee/data\nbody:\n  json: {fields: [firstName, status], page: 1, paging: null, meta: {a~b: x}}\n",
        ))
        .unwrap();
        let mut p = Plan::build(&s, &req, &ctx(&s), &[]).unwrap();
        p.set_body_fields(&[
            ("page".into(), serde_json::json!(3)),
            ("pageSize".into(), serde_json::json!(500)),
            ("/paging/cursor".into(), serde_json::json!("c/2")),
            ("/meta/a~0b".into(), serde_json::json!("y")),
        ])
        .unwrap();
        assert_eq!(
            p.body,
            Some(PlannedBody::Json(serde_json::json!({
                "fields": ["firstName", "status"],
                "page": 3,
                "pageSize": 500,
                "paging": {"cursor": "c/2"},
                "meta": {"a~b": "y"},
            })))
        );
        assert_eq!(p.url.query(), None, "nothing in the query");
        // No body yet: a JSON object; a field in the way: an error naming it.
        let mut p = Plan::build(&s, &s.streams["people"].request, &ctx(&s), &[]).unwrap();
        p.set_body_fields(&[("/a/b".into(), serde_json::json!(1))])
            .unwrap();
        assert_eq!(
            p.body,
            Some(PlannedBody::Json(serde_json::json!({"a": {"b": 1}})))
        );
        let e = p
            .set_body_fields(&[("/a/b/c".into(), serde_json::json!(1))])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot put the paging parameter `/a/b/c` into the request body: the body has a number there, not an object"
        );
    }

    #[test]
    fn redaction_is_by_value_everywhere() {
        let s = spec("{kind: none}");
        let mut r = ctx(&s).redactor();
        let echoed = "401 Unauthorized: key k3y/CANARY+1 (k3y%2FCANARY%2B1) is revoked";
        assert_eq!(
            r.redact(echoed),
            "401 Unauthorized: key *** (***) is revoked"
        );
        assert_eq!(
            r.redact("client-123"),
            "client-123",
            "non-secret credentials stay readable"
        );
        r.add("eyJhbGciOi-token");
        assert_eq!(
            r.redact("token eyJhbGciOi-token expired"),
            "token *** expired"
        );
    }

    #[test]
    fn a_missing_value_names_the_placeholder() {
        let s = spec("{kind: bearer, token: '{credentials.api_key}'}");
        let c = Context::new(&s, &BTreeMap::new(), &BTreeMap::new());
        let e = Plan::build(&s, &s.streams["people"].request, &c, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`{credentials.api_key}` has no value; set it in the source's credentials or settings"
        );
    }
}
