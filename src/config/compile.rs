//! Compile: meaning and references across files, after every file passed its schema.
//!
//! Checks here need more than one value or more than one file: a source's provider and mapping
//! exist and agree, credentials match what the provider declares (and secret ones are not
//! literals), template placeholders are declared, joins name real streams, mappings fill
//! canonical fields with fitting types and values, precedence, subscriptions, triggers and
//! conditions name real sources, fields and event types. Each problem is reported at the key
//! it is about; all are collected.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use indexmap::IndexMap;

use super::deployment::{
    Conditions, Deployment, EVENT_TYPES, LifecycleEvent, Limits, Safety, Source,
};
use super::diag::{
    Diagnostic, Diagnostics, KeyPath, Severity, SourceFile, did_you_mean, quote_list, suggest,
};
use super::mapping::{FieldMapping, FieldSpec, MappingSpec, Unmapped, ValueType};
use super::person::{Field, FieldKind, FieldMappings};
use super::provider::{
    Auth, Body, CredentialDecl, CursorFormat, Incremental, Method, Pagination, ParamsIn,
    ProviderSpec, Request, SettingDecl, Stream, body_field_path, json_kind,
};
use super::secret::{CredentialValue, ProcessEnv, SecretRef};
use super::value::{CronExpr, DataSize, Duration, JsonPath, Name, Template};
use super::{Config, LoadOptions, Loaded, ReadFile};

/// A source with its references resolved and defaults applied.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// The source name.
    pub name: String,
    /// The provider spec name.
    pub provider: String,
    /// The mapping name.
    pub mapping: String,
    /// Canonical field mappings after the source's overrides.
    pub fields: FieldMappings,
    /// Custom field mappings after the source's overrides.
    pub custom: IndexMap<String, FieldMapping>,
    /// When it syncs.
    pub schedule: Schedule,
    /// False when the source is configured but never synced.
    pub enabled: bool,
    /// Effective safety thresholds.
    pub safety: SafetyPlan,
    /// Effective size limits (`limits:`, defaults applied).
    pub limits: LimitsPlan,
}

/// A resolved schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// At an interval with random jitter.
    Every {
        /// The interval.
        period: std::time::Duration,
        /// Most jitter added.
        jitter: std::time::Duration,
    },
    /// On a cron schedule in the company time zone.
    Cron(CronExpr),
}

/// Effective safety thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SafetyPlan {
    /// Largest share of a source's people one sync may remove without being held.
    pub max_removals: f64,
    /// Removals below this count are never held.
    pub min_removals_to_hold: u32,
    /// Hold a sync with an empty listing.
    pub hold_on_empty: bool,
}

/// Effective size limits, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsPlan {
    /// Longest value of one field as text; longer is a conversion failure of that field.
    pub max_field_bytes: u64,
    /// Largest raw record as JSON; larger is not mapped.
    pub max_record_bytes: u64,
}

impl Default for LimitsPlan {
    fn default() -> LimitsPlan {
        LimitsPlan {
            max_field_bytes: 8 << 10,
            max_record_bytes: 1 << 20,
        }
    }
}

/// Below this, ordinary values would fail: an email address alone may be 254 bytes.
const MIN_FIELD_BYTES: u64 = 256;

const DEFAULT_EVERY_SECS: u64 = 4 * 3600;
const DEFAULT_JITTER_SECS: u64 = 600;
const MIN_EVERY_SECS: u64 = 60;

/// Compiles the decoded files into a [`Config`]; `None` when any file did not decode.
pub(super) fn compile(
    dir: &Path,
    deployment: ReadFile<Deployment>,
    providers: BTreeMap<String, ReadFile<ProviderSpec>>,
    mappings: BTreeMap<String, ReadFile<MappingSpec>>,
    opts: &LoadOptions,
    diags: &mut Diagnostics,
) -> Option<Config> {
    for (name, read) in &providers {
        if let (Some(file), Some(spec)) = (&read.file, &read.spec) {
            let mut cx = Cx { file, diags };
            check_provider(&mut cx, name, spec);
        }
    }
    let custom_fields = custom_field_types(&mappings);
    for (name, read) in &mappings {
        if let (Some(file), Some(spec)) = (&read.file, &read.spec) {
            let mut cx = Cx { file, diags };
            check_mapping(&mut cx, name, spec, &providers);
        }
    }
    let mut plans = Vec::new();
    if let (Some(file), Some(spec)) = (&deployment.file, &deployment.spec) {
        let mut cx = Cx { file, diags };
        plans = check_deployment(
            &mut cx,
            dir,
            spec,
            &providers,
            &mappings,
            &custom_fields,
            opts,
        );
    }

    let deployment = Loaded {
        spec: deployment.spec?,
        origin: deployment.origin,
        file: deployment.file?,
    };
    let providers = loaded_all(providers)?;
    let mappings = loaded_all(mappings)?;
    Some(Config {
        dir: dir.to_path_buf(),
        deployment,
        providers,
        mappings,
        sources: plans,
        warnings: Diagnostics::default(),
    })
}

fn loaded_all<T>(files: BTreeMap<String, ReadFile<T>>) -> Option<BTreeMap<String, Loaded<T>>> {
    files
        .into_iter()
        .map(|(name, r)| {
            Some((
                name,
                Loaded {
                    spec: r.spec?,
                    origin: r.origin,
                    file: r.file?,
                },
            ))
        })
        .collect()
}

/// Diagnostics for one file.
struct Cx<'a> {
    file: &'a Arc<SourceFile>,
    diags: &'a mut Diagnostics,
}

impl Cx<'_> {
    fn error(&mut self, path: &KeyPath, message: impl Into<String>, help: Option<String>) {
        let d = self.file.error(path, message, help);
        self.diags.push(d);
    }

    fn key_error(&mut self, path: &KeyPath, message: impl Into<String>, help: Option<String>) {
        let d = self.file.key_error(path, message, help);
        self.diags.push(d);
    }

    fn warning(&mut self, path: &KeyPath, message: impl Into<String>, help: Option<String>) {
        let d = Diagnostic {
            severity: Severity::Warning,
            ..self.file.error(path, message, help)
        };
        self.diags.push(d);
    }

    fn check_names<'k>(
        &mut self,
        base: &KeyPath,
        keys: impl Iterator<Item = &'k String>,
        what: &str,
    ) {
        for k in keys {
            if let Err(e) = Name::parse(k) {
                self.key_error(
                    &base.key(k),
                    format!("`{k}` is not a valid {what} name"),
                    e.help,
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Provider specs

/// Which placeholders a template may use.
#[derive(Clone, Copy)]
struct Scope<'a> {
    credentials: Option<&'a IndexMap<String, CredentialDecl>>,
    settings: &'a IndexMap<String, SettingDecl>,
    vars: Option<&'a IndexMap<String, JsonPath>>,
}

impl Scope<'_> {
    fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(c) = self.credentials {
            out.extend(c.keys().map(|k| format!("credentials.{k}")));
        }
        out.extend(self.settings.keys().map(|k| format!("settings.{k}")));
        if let Some(v) = self.vars {
            out.extend(v.keys().map(|k| format!("var.{k}")));
        }
        out
    }

    fn knows(&self, var: &str) -> bool {
        match var.split_once('.') {
            Some(("credentials", n)) => self.credentials.is_some_and(|c| c.contains_key(n)),
            Some(("settings", n)) => self.settings.contains_key(n),
            Some(("var", n)) => self.vars.is_some_and(|v| v.contains_key(n)),
            _ => false,
        }
    }
}

fn check_template(
    cx: &mut Cx,
    path: &KeyPath,
    t: &Template,
    scope: Scope,
    used: &mut BTreeSet<String>,
) {
    for var in t.vars() {
        used.insert(var.to_string());
        if scope.knows(var) {
            continue;
        }
        let names = scope.names();
        let help = match did_you_mean(var, names.iter().map(String::as_str)) {
            Some(n) => format!("did you mean `{{{n}}}`?"),
            None => match var.split_once('.') {
                Some(("credentials", n)) if scope.credentials.is_some() => {
                    format!("declare `{n}` under `credentials:` in this provider spec")
                }
                Some(("credentials", _)) => {
                    "credentials cannot appear here (a URL ends up in logs); use a header or query parameter".into()
                }
                Some(("settings", n)) => format!("declare `{n}` under `settings:` in this provider spec"),
                Some(("var", n)) if scope.vars.is_some() => format!("declare `{n}` under `vars:` of this sub-request"),
                _ => "placeholders are `{credentials.NAME}`, `{settings.NAME}` and, in sub-requests, `{var.NAME}`".into(),
            },
        };
        cx.error(path, format!("unknown placeholder `{{{var}}}`"), Some(help));
    }
}

/// An `incremental:` block: its cursor parameter is not set twice, a full read comes round,
/// and the lookback covers clock skew at the cursor's granularity.
fn check_incremental(cx: &mut Cx, ip: &KeyPath, inc: &Incremental, stream: &Stream) {
    if stream.id.is_none() {
        cx.error(
            ip,
            "incremental reads need the stream's `id:`: a partial listing must say which stored record each of its records replaces",
            Some("add `id:` with the JSONPath of the record's id, e.g. `id: $.id`".into()),
        );
    }
    if stream.request.query.contains_key(&inc.param) {
        cx.error(
            &ip.key("param"),
            format!("`{}` is also set in `request.query`", inc.param),
            Some("remove it from `request.query`: Roster sets it on incremental reads".into()),
        );
    }
    if let Some(every) = &inc.full_every
        && every.get() < std::time::Duration::from_secs(60)
    {
        cx.error(
            &ip.key("full_every"),
            format!(
                "`full_every` is {}; only a full read removes people who left, so it must come round, at least a minute apart",
                every.as_str()
            ),
            Some(
                "use e.g. `24h` (the default); to read the whole listing on every run, remove `incremental:`"
                    .into(),
            ),
        );
    }
    let (least, name, unit) = match inc.format {
        CursorFormat::Date => (StdDuration::from_secs(24 * 3600), "date", "1d"),
        CursorFormat::Rfc3339 => (StdDuration::from_secs(60), "rfc3339", "1m"),
        CursorFormat::Unix => (StdDuration::from_secs(60), "unix", "1m"),
    };
    if let Some(lookback) = &inc.lookback {
        if lookback.get() < least {
            cx.error(
                &ip.key("lookback"),
                format!(
                    "`lookback` is {}, too short: records changed while the previous run was reading, or stamped by an HRIS whose clock runs behind this host's, would never be listed",
                    lookback.as_str()
                ),
                Some(format!(
                    "use at least `{unit}` with `format: {name}` (the default is `10m`, or `1d` for dates)"
                )),
            );
        } else if lookback.get() >= inc.full_every() {
            cx.error(
                &ip.key("lookback"),
                format!(
                    "`lookback` ({}) is not shorter than `full_every` ({}), so every incremental read would reach back past the last full read",
                    lookback.as_str(),
                    inc.full_every.as_ref().map_or("24h", |d| d.as_str())
                ),
                Some("use a lookback of minutes (default `10m`)".into()),
            );
        }
    }
}

fn check_request(
    cx: &mut Cx,
    path: &KeyPath,
    req: &Request,
    scope: Scope,
    used: &mut BTreeSet<String>,
) {
    check_template(cx, &path.key("path"), &req.path, scope, used);
    for (k, v) in &req.query {
        for t in v.templates() {
            check_template(cx, &path.key("query").key(k), t, scope, used);
        }
    }
    for (k, t) in &req.headers {
        check_template(cx, &path.key("headers").key(k), t, scope, used);
    }
    match &req.body {
        Some(Body::Form(form)) => {
            for (k, t) in form {
                check_template(cx, &path.key("body").key("form").key(k), t, scope, used);
            }
        }
        Some(Body::Json(json)) => {
            check_json_templates(cx, &path.key("body").key("json"), json, scope, used)
        }
        None => {}
    }
}

/// `in: body` paging: the request must be able to carry a JSON body, and each parameter name
/// must be a field name or a JSON Pointer that leads through objects of the declared body.
fn check_body_paging(cx: &mut Cx, sp: &KeyPath, stream: &Stream) {
    if stream.pagination.params_in() != ParamsIn::Body {
        return;
    }
    let pg = sp.key("pagination");
    let req = &stream.request;
    if req.method == Method::Get {
        cx.error(
            &pg.key("in"),
            "`in: body` sends the paging parameters in the request body, but the request is a GET",
            Some(
                "set `method: POST` (or the method the API documents) on the stream's `request`"
                    .into(),
            ),
        );
    }
    let json = match &req.body {
        Some(Body::Form(_)) => {
            cx.error(
                &sp.key("request").key("body").key("form"),
                "`in: body` puts the paging parameters into a JSON body, and this body is a form",
                Some("write the body as `body: {json: {...}}`".into()),
            );
            return;
        }
        Some(Body::Json(v)) => Some(v),
        None => None,
    };
    let params: Vec<(&str, &str)> = match &stream.pagination {
        Pagination::Offset {
            offset_param,
            limit_param,
            ..
        } => vec![("offset_param", offset_param), ("limit_param", limit_param)],
        Pagination::Page {
            page_param,
            size_param,
            ..
        } => [
            ("page_param", Some(page_param)),
            ("size_param", size_param.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?.as_str())))
        .collect(),
        Pagination::Cursor {
            param, size_param, ..
        } => [("param", Some(param)), ("size_param", size_param.as_ref())]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?.as_str())))
            .collect(),
        Pagination::None | Pagination::NextUrl { .. } | Pagination::LinkHeader => Vec::new(),
    };
    for (key, name) in params {
        let path = match body_field_path(name) {
            Ok(p) => p,
            Err(e) => {
                cx.error(
                    &pg.key(key),
                    format!("`{key}` is not a body field: {e}"),
                    Some(
                        "use a field name such as `page`, or a JSON Pointer such as `/paging/page`"
                            .into(),
                    ),
                );
                continue;
            }
        };
        // The field's container, and every step to it, must be an object (or absent: the
        // engine creates it).
        let mut at = json;
        let mut place = "the top level".to_string();
        for seg in &path[..path.len() - 1] {
            match at {
                Some(serde_json::Value::Object(m)) => {
                    at = m.get(seg);
                    place = format!("`{seg}`");
                }
                _ => break,
            }
        }
        if let Some(other) = at.filter(|v| !v.is_object() && !v.is_null()) {
            cx.error(
                &pg.key(key),
                format!(
                    "`{name}` needs an object at {place} of the request's `body.json`, which has {} there",
                    json_kind(other)
                ),
                Some("name a field that can be set, or change the body".into()),
            );
        }
    }
}

fn check_json_templates(
    cx: &mut Cx,
    path: &KeyPath,
    v: &serde_json::Value,
    scope: Scope,
    used: &mut BTreeSet<String>,
) {
    match v {
        serde_json::Value::String(s) => match Template::parse(s) {
            Ok(t) => check_template(cx, path, &t, scope, used),
            Err(e) => cx.error(path, e.message, e.help),
        },
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_json_templates(cx, &path.index(i), item, scope, used);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                check_json_templates(cx, &path.key(k), item, scope, used);
            }
        }
        _ => {}
    }
}

fn check_provider(cx: &mut Cx, _name: &str, spec: &ProviderSpec) {
    let root = KeyPath::root();
    let mut used = BTreeSet::new();
    let url_scope = Scope {
        credentials: None,
        settings: &spec.settings,
        vars: None,
    };
    let scope = Scope {
        credentials: Some(&spec.credentials),
        ..url_scope
    };
    check_template(
        cx,
        &root.key("base_url"),
        spec.base_url.template(),
        url_scope,
        &mut used,
    );
    for (k, t) in &spec.headers {
        check_template(cx, &root.key("headers").key(k), t, scope, &mut used);
    }

    let auth = root.key("auth");
    match &spec.auth {
        Auth::None => {}
        Auth::ApiKey { value, .. } => {
            check_template(cx, &auth.key("value"), value, scope, &mut used)
        }
        Auth::Headers { headers } => {
            for (k, t) in headers {
                check_template(cx, &auth.key("headers").key(k), t, scope, &mut used);
            }
        }
        Auth::Bearer { token } => check_template(cx, &auth.key("token"), token, scope, &mut used),
        Auth::Basic { username, password } => {
            check_template(cx, &auth.key("username"), username, scope, &mut used);
            if let Some(p) = password {
                check_template(cx, &auth.key("password"), p, scope, &mut used);
            }
        }
        Auth::TokenExchange { request, .. } => {
            check_request(cx, &auth.key("request"), request, scope, &mut used)
        }
        Auth::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            ..
        }
        | Auth::Oauth2RefreshToken {
            token_url,
            client_id,
            client_secret,
            ..
        } => {
            check_template(
                cx,
                &auth.key("token_url"),
                token_url.template(),
                url_scope,
                &mut used,
            );
            check_template(cx, &auth.key("client_id"), client_id, scope, &mut used);
            check_template(
                cx,
                &auth.key("client_secret"),
                client_secret,
                scope,
                &mut used,
            );
            if let Auth::Oauth2RefreshToken { refresh_token, .. } = &spec.auth {
                check_template(
                    cx,
                    &auth.key("refresh_token"),
                    refresh_token,
                    scope,
                    &mut used,
                );
            }
        }
    }

    if spec.streams.is_empty() {
        cx.error(
            &root.key("streams"),
            "a provider needs at least one stream",
            None,
        );
    }
    let stream_names: Vec<&str> = spec.streams.keys().map(Name::as_str).collect();
    for (sname, stream) in &spec.streams {
        let sp = root.key("streams").key(sname.as_str());
        check_request(cx, &sp.key("request"), &stream.request, scope, &mut used);
        let pg = sp.key("pagination");
        match &stream.pagination {
            Pagination::Offset { page_size, .. } | Pagination::Page { page_size, .. }
                if *page_size == 0 =>
            {
                cx.error(&pg.key("page_size"), "`page_size` must be at least 1", None);
            }
            Pagination::Page { first_page, .. } if *first_page > 1 => {
                cx.error(
                    &pg.key("first_page"),
                    format!("`first_page` is {first_page}; pages are numbered from 0 or 1"),
                    None,
                );
            }
            Pagination::Cursor {
                size_param: None,
                page_size: Some(_),
                ..
            } => cx.error(
                &pg.key("page_size"),
                "`page_size` needs `size_param`, the query parameter that carries it",
                None,
            ),
            _ => {}
        }
        check_body_paging(cx, &sp, stream);
        if stream.max_pages == Some(0) {
            cx.error(&sp.key("max_pages"), "`max_pages` must be at least 1", None);
        }
        let mut intos: HashSet<String> = HashSet::new();
        let mut check_into = |cx: &mut Cx, path: KeyPath, into: &str| {
            if into.is_empty() || into.starts_with('$') || into.contains('.') {
                cx.error(
                    &path,
                    format!("`into` must be a plain field name, not `{into}`"),
                    Some(
                        "e.g. `department`; the joined record is then read as `$.department.name`"
                            .into(),
                    ),
                );
            } else if !intos.insert(into.to_string()) {
                cx.error(&path, format!("`{into}` is already used by another join, lookup or sub-request of this stream"), None);
            }
        };
        // Joins and lookups both name another stream and match on its id or an explicit key.
        let joins = stream.join.iter().enumerate().map(|(i, j)| {
            (
                sp.key("join").index(i),
                &j.stream,
                &j.into,
                j.key.is_some(),
                "key",
            )
        });
        let lookups = stream.lookups.iter().enumerate().map(|(i, l)| {
            (
                sp.key("lookups").index(i),
                &l.stream,
                &l.into,
                l.matches.is_some(),
                "matches",
            )
        });
        for (path, target, into, explicit_key, key_name) in joins.chain(lookups) {
            check_into(cx, path.key("into"), into);
            check_stream_ref(
                cx,
                &path,
                sname,
                target,
                explicit_key,
                key_name,
                spec,
                &stream_names,
            );
        }
        for (i, s) in stream.subrequests.iter().enumerate() {
            let rp = sp.key("subrequests").index(i);
            check_into(cx, rp.key("into"), &s.into);
            let sub_scope = Scope {
                vars: Some(&s.vars),
                ..scope
            };
            check_request(cx, &rp.key("request"), &s.request, sub_scope, &mut used);
            if !(1..=64).contains(&s.concurrency) {
                cx.error(
                    &rp.key("concurrency"),
                    format!("`concurrency` is {}; use 1 to 64", s.concurrency),
                    None,
                );
            }
        }
        if let Some(inc) = &stream.incremental {
            check_incremental(cx, &sp.key("incremental"), inc, stream);
        }
    }
    if let Some(rl) = &spec.rate_limit {
        if rl.requests_per_minute == 0 {
            cx.error(
                &root.key("rate_limit").key("requests_per_minute"),
                "must be at least 1",
                None,
            );
        }
        if rl.burst == Some(0) {
            cx.error(
                &root.key("rate_limit").key("burst"),
                "must be at least 1",
                None,
            );
        }
    }
    if !(1..=20).contains(&spec.retry.max_attempts) {
        cx.error(
            &root.key("retry").key("max_attempts"),
            format!("`max_attempts` is {}; use 1 to 20", spec.retry.max_attempts),
            None,
        );
    }
    if spec.retry.initial_backoff.get() > spec.retry.max_backoff.get() {
        cx.error(
            &root.key("retry").key("initial_backoff"),
            "`initial_backoff` is longer than `max_backoff`",
            None,
        );
    }
    for name in spec.credentials.keys() {
        if !used.contains(&format!("credentials.{name}")) {
            cx.warning(
                &root.key("credentials").key(name),
                format!("credential `{name}` is declared but no template uses it"),
                Some(format!("use it as `{{credentials.{name}}}`, or remove it")),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_stream_ref(
    cx: &mut Cx,
    path: &KeyPath,
    from: &Name,
    target: &Name,
    explicit_key: bool,
    key_name: &str,
    spec: &ProviderSpec,
    stream_names: &[&str],
) {
    if target == from {
        cx.error(
            &path.key("stream"),
            format!("stream `{from}` cannot join or look up itself"),
            None,
        );
        return;
    }
    match spec.streams.get(target) {
        None => cx.error(
            &path.key("stream"),
            format!("unknown stream `{target}`"),
            suggest(target.as_str(), stream_names.iter().copied()),
        ),
        Some(t) if t.id.is_none() && !explicit_key => cx.error(
            path,
            format!("stream `{target}` has no `id`, so set `{key_name}` to say which of its values to match"),
            Some(format!("add `id:` to stream `{target}` or `{key_name}:` here")),
        ),
        Some(_) => {}
    }
}

// ------------------------------------------------------------------------------------------
// Mappings

/// The type of every custom field declared by any mapping, for triggers and conditions.
fn custom_field_types(
    mappings: &BTreeMap<String, ReadFile<MappingSpec>>,
) -> BTreeMap<String, ValueType> {
    let mut out = BTreeMap::new();
    for read in mappings.values() {
        if let Some(spec) = &read.spec {
            for (name, m) in &spec.custom {
                out.insert(name.clone(), m.spec().kind.unwrap_or(ValueType::String));
            }
        }
    }
    out
}

fn check_mapping(
    cx: &mut Cx,
    _name: &str,
    spec: &MappingSpec,
    providers: &BTreeMap<String, ReadFile<ProviderSpec>>,
) {
    let root = KeyPath::root();
    match providers.get(spec.provider.as_str()) {
        None => cx.error(
            &root.key("provider"),
            format!("unknown provider `{}`", spec.provider),
            suggest(spec.provider.as_str(), providers.keys().map(String::as_str)),
        ),
        Some(read) => {
            if let Some(p) = &read.spec {
                for (field, m) in spec.fields.iter() {
                    check_setting_refs(cx, &root.key("fields").key(field.name()), m, p);
                }
                for (name, m) in &spec.custom {
                    check_setting_refs(cx, &root.key("custom").key(name), m, p);
                }
            }
            if let Some(p) = &read.spec
                && !p.streams.contains_key(spec.stream.as_str())
            {
                let names: Vec<&str> = p.streams.keys().map(Name::as_str).collect();
                cx.error(
                    &root.key("stream"),
                    format!(
                        "provider `{}` has no stream `{}`",
                        spec.provider, spec.stream
                    ),
                    suggest(spec.stream.as_str(), names.iter().copied()),
                );
            }
        }
    }
    if spec.fields.work_email.is_none() {
        cx.error(
            &root.key("fields"),
            "`work_email` is not mapped",
            Some("work email is the identity of a person across sources; map it, e.g. `work_email: $.email`".into()),
        );
    }
    cx.check_names(&root.key("custom"), spec.custom.keys(), "custom field");

    let mapped: BTreeSet<String> = spec
        .fields
        .iter()
        .map(|(f, _)| f.name().to_string())
        .chain(spec.custom.keys().cloned())
        .collect();
    for (field, m) in spec.fields.iter() {
        check_field(
            cx,
            &root.key("fields").key(field.name()),
            Target::Canonical(field),
            m,
            &mapped,
        );
    }
    for (name, m) in &spec.custom {
        check_field(
            cx,
            &root.key("custom").key(name),
            Target::Custom,
            m,
            &mapped,
        );
    }
    check_template_cycles(
        cx,
        &root,
        spec.fields
            .iter()
            .map(|(f, m)| (f.name().to_string(), m))
            .chain(spec.custom.iter().map(|(k, m)| (k.clone(), m))),
    );

    for (i, rule) in spec.filter.exclude.iter().enumerate() {
        if rule.equals.is_some() == rule.empty {
            cx.error(
                &root.key("filter").key("exclude").index(i),
                "give exactly one of `equals` and `empty: true`",
                None,
            );
        }
    }
    for key in spec.coverage.keys() {
        // Custom fields are written `custom.NAME`, as everywhere a field is named.
        let ok = match key.strip_prefix("custom.") {
            Some(name) => spec.custom.contains_key(name),
            None => Field::from_name(key).is_some() && mapped.contains(key),
        };
        if !ok {
            let help = if spec.custom.contains_key(key.as_str()) {
                Some(format!("a custom field is written `custom.{key}`"))
            } else {
                suggest(key, mapped.iter().map(String::as_str))
            };
            cx.key_error(
                &root.key("coverage").key(key),
                format!("`{key}` is not a mapped field"),
                help,
            );
        }
    }
    for (i, t) in spec.tests.iter().enumerate() {
        let tp = root.key("tests").index(i);
        if t.expect.is_none() && !t.excluded {
            cx.error(&tp, "a test needs `expect:` or `excluded: true`", None);
        }
        for key in t.expect.iter().flat_map(|e| e.keys()) {
            let known = Field::from_name(key).is_some()
                || key
                    .strip_prefix("custom.")
                    .is_some_and(|n| spec.custom.contains_key(n));
            if !known {
                cx.key_error(
                    &tp.key("expect").key(key),
                    format!("`{key}` is not a field of the person"),
                    suggest(key, Field::names()),
                );
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Target {
    Canonical(Field),
    Custom,
}

/// True when `fmt` (strftime) reads back the date it writes: a sample date-time with an
/// offset and a zone, written with `fmt` and parsed again, gives the same calendar date. Time
/// parts (`%H:%M`), offsets and zone names are allowed; a format without the year, month or
/// day (`%H:%M`, `%Y`) is not.
fn date_format_reads_a_date(fmt: &str) -> bool {
    let Ok(sample) = "2024-02-29T13:45:30+01:00[Europe/Berlin]".parse::<jiff::Zoned>() else {
        return false;
    };
    let Ok(text) = jiff::fmt::strtime::format(fmt.as_bytes(), &sample) else {
        return false;
    };
    jiff::fmt::strtime::parse(fmt, &text)
        .and_then(|tm| tm.to_date())
        .is_ok_and(|d| d == sample.date())
}

fn check_field(
    cx: &mut Cx,
    path: &KeyPath,
    target: Target,
    m: &FieldMapping,
    mapped: &BTreeSet<String>,
) {
    let FieldMapping::Full(spec) = m else {
        return;
    };
    let spec: &FieldSpec = spec;
    let sources: Vec<&str> = [
        ("path", spec.path.is_some()),
        ("coalesce", spec.coalesce.is_some()),
        ("template", spec.template.is_some()),
        ("value", spec.value.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect();
    match sources.len() {
        0 if spec.default.is_none() => cx.error(
            path,
            "no source for this field",
            Some("give one of `path`, `coalesce`, `template` or `value`".into()),
        ),
        0 | 1 => {}
        _ => cx.error(
            &path.key(sources[1]),
            format!(
                "give only one of `path`, `coalesce`, `template` or `value`; found {}",
                sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            None,
        ),
    }
    if spec.coalesce.as_ref().is_some_and(Vec::is_empty) {
        cx.error(
            &path.key("coalesce"),
            "`coalesce` needs at least one JSONPath",
            None,
        );
    }
    if spec.latest.is_some() && spec.path.is_none() && spec.coalesce.is_none() {
        cx.error(
            &path.key("latest"),
            "`latest` picks the object that `path` or `coalesce` reads from, and this field has neither",
            Some("add the path into the picked object, e.g. `path: $.job_title`".into()),
        );
    }

    let kind = match target {
        Target::Canonical(field) => {
            let fits = match (field.kind(), spec.kind) {
                (_, None) => true,
                (FieldKind::Date, Some(t)) => t == ValueType::Date,
                (FieldKind::Email, Some(t)) => t == ValueType::Email,
                (FieldKind::Enum(_), Some(t)) => t == ValueType::Enum,
                (FieldKind::String, Some(t)) => matches!(t, ValueType::String | ValueType::Enum),
            };
            if !fits {
                cx.error(
                    &path.key("type"),
                    format!("`{}` holds {}; this `type` does not fit", field.name(), kind_noun(field.kind())),
                    Some("remove `type` (canonical fields have a fixed type), or map the value into a custom field".into()),
                );
            }
            match field.kind() {
                FieldKind::Date => ValueType::Date,
                FieldKind::Email => ValueType::Email,
                FieldKind::Enum(_) => ValueType::Enum,
                FieldKind::String => spec.kind.unwrap_or(ValueType::String),
            }
        }
        Target::Custom => spec.kind.unwrap_or(ValueType::String),
    };

    if let Some(fmt) = &spec.date_format {
        if kind != ValueType::Date {
            cx.error(
                &path.key("date_format"),
                "`date_format` applies to date fields only",
                None,
            );
        } else if !date_format_reads_a_date(fmt) {
            cx.error(
                &path.key("date_format"),
                format!("`{fmt}` is not a strftime format that reads a calendar date"),
                Some("it needs the year, month and day, e.g. `%d.%m.%Y` for 31.12.2024, `%m/%d/%Y` for 12/31/2024, or `%d.%m.%Y %H:%M` for 31.12.2024 17:30 (time parts are read and dropped: the date is kept as written)".into()),
            );
        }
    }

    let allowed: Option<&[&str]> = match target {
        Target::Canonical(f) => match f.mapped_kind() {
            FieldKind::Enum(values) => Some(values),
            _ => None,
        },
        Target::Custom => None,
    };
    if let Some(allowed) = allowed {
        for (from, to) in &spec.values {
            if !allowed.contains(&to.as_str()) {
                cx.error(
                    &path.key("values").key(from),
                    format!("`{to}` is not a canonical value"),
                    suggest(to, allowed.iter().copied()),
                );
            }
        }
        for (key, v) in [("value", &spec.value), ("default", &spec.default)] {
            if let Some(v) = v {
                let s = v.as_str().unwrap_or_default();
                if !allowed.contains(&s) {
                    cx.error(
                        &path.key(key),
                        format!("`{}` is not a canonical value", json_text(v)),
                        suggest(s, allowed.iter().copied()),
                    );
                }
            }
        }
    } else if kind == ValueType::Enum && spec.values.is_empty() {
        cx.error(
            path,
            "an `enum` field needs `values:` (provider value: stored value)",
            None,
        );
    }
    if !spec.values.is_empty() && matches!(kind, ValueType::Date | ValueType::Email) {
        cx.error(
            &path.key("values"),
            "a value map does not apply to dates or emails",
            Some(
                "for a value that means \"empty\" (such as `0000-00-00`) use `empty_values`".into(),
            ),
        );
    }
    if spec.unmapped == Some(Unmapped::Default) && spec.default.is_none() {
        cx.error(
            &path.key("unmapped"),
            "`unmapped: default` needs a `default`",
            None,
        );
    }
    if kind == ValueType::Date
        && let Some(d) = &spec.default
        && d.as_str()
            .and_then(|s| s.parse::<jiff::civil::Date>().ok())
            .is_none()
    {
        cx.error(
            &path.key("default"),
            format!("`{}` is not a date", json_text(d)),
            Some("write `YYYY-MM-DD`".into()),
        );
    }
    if let Some(t) = &spec.template {
        for var in t.vars() {
            if !mapped.contains(var) {
                cx.error(
                    &path.key("template"),
                    format!("`{{{var}}}` is not a mapped field of this mapping"),
                    suggest(var, mapped.iter().map(String::as_str)).or_else(|| Some("templates combine other mapped fields, e.g. `{first_name} {last_name}`".into())),
                );
            }
        }
    }
}

/// A mapping's `{settings.NAME}` placeholders must name settings its provider declares.
fn check_setting_refs(cx: &mut Cx, path: &KeyPath, m: &FieldMapping, provider: &ProviderSpec) {
    for name in m.spec().setting_refs() {
        if !provider.settings.contains_key(&name) {
            let declared: Vec<&str> = provider.settings.keys().map(String::as_str).collect();
            cx.error(
                path,
                format!("`{{settings.{name}}}` is not a setting of the provider"),
                suggest(&name, declared.iter().copied()).or_else(|| {
                    Some(format!(
                        "declare `{name}` under `settings:` in the provider spec"
                    ))
                }),
            );
        }
    }
}

/// Puts each source's settings into its fields' `{settings.NAME}` placeholders (the value
/// from roster.yaml, else the provider's default). A field whose setting is empty is not
/// mapped for this source. A value goes inside a quoted JSONPath name, so it must be a
/// plain name: letters, digits, `_`, `-` and `.`.
fn fill_settings(
    cx: &mut Cx,
    sp: &KeyPath,
    source: &Source,
    decls: &IndexMap<String, SettingDecl>,
    fields: FieldMappings,
    custom: IndexMap<String, FieldMapping>,
) -> (FieldMappings, IndexMap<String, FieldMapping>) {
    let mut refused = BTreeSet::new();
    let mut fill = |m: &FieldMapping| -> Option<FieldMapping> {
        let spec = m.spec();
        let refs = spec.setting_refs();
        if refs.is_empty() {
            return Some(m.clone());
        }
        let mut values = Vec::new();
        for name in refs {
            let value = source
                .settings
                .get(&name)
                .cloned()
                .or_else(|| decls.get(&name).and_then(|d| d.default.clone()))
                .unwrap_or_default();
            if value.is_empty() {
                return None;
            }
            let plain = value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !plain {
                if refused.insert(name.clone()) {
                    cx.error(
                        &sp.key("settings").key(&name),
                        format!("setting `{name}` is not a plain attribute name"),
                        Some("it names a field of the HRIS's records: letters, digits, `_`, `-` and `.` only, e.g. `dynamic_1146702`".into()),
                    );
                }
                return None;
            }
            values.push((format!("{{settings.{name}}}"), value));
        }
        let put = |t: &str| {
            values
                .iter()
                .fold(t.to_string(), |t, (from, to)| t.replace(from, to))
        };
        let reparse = |p: &JsonPath| JsonPath::parse(&put(p.as_str())).ok();
        let mut filled = spec.into_owned();
        filled.path = match &filled.path {
            Some(p) => Some(reparse(p)?),
            None => None,
        };
        filled.coalesce = match &filled.coalesce {
            Some(ps) => Some(ps.iter().map(reparse).collect::<Option<Vec<_>>>()?),
            None => None,
        };
        filled.absent = filled.absent.as_deref().map(put);
        Some(FieldMapping::Full(Box::new(filled)))
    };
    let mut out = FieldMappings::default();
    for (f, m) in fields.iter() {
        if let Some(m) = fill(m) {
            out.set(f, m);
        }
    }
    let custom = custom
        .iter()
        .filter_map(|(k, m)| Some((k.clone(), fill(m)?)))
        .collect();
    (out, custom)
}

fn kind_noun(k: FieldKind) -> &'static str {
    match k {
        FieldKind::String => "text",
        FieldKind::Email => "an email address",
        FieldKind::Date => "a date",
        FieldKind::Enum(_) => "one of a fixed set of values",
    }
}

fn json_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Templates may name other fields, which may be templates too: refuse cycles.
fn check_template_cycles<'a>(
    cx: &mut Cx,
    root: &KeyPath,
    fields: impl Iterator<Item = (String, &'a FieldMapping)>,
) {
    let deps: BTreeMap<String, Vec<String>> = fields
        .filter_map(|(name, m)| match m {
            FieldMapping::Full(s) => s
                .template
                .as_ref()
                .map(|t| (name, t.vars().map(str::to_string).collect())),
            FieldMapping::Path(_) => None,
        })
        .collect();
    for start in deps.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in deps.get(&at).into_iter().flatten() {
                if next == start {
                    let cycle = trail
                        .iter()
                        .chain([next])
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(" -> ");
                    let section = if Field::from_name(start).is_some() {
                        "fields"
                    } else {
                        "custom"
                    };
                    cx.error(
                        &root.key(section).key(start).key("template"),
                        format!("template cycle: {cycle}"),
                        Some("break the cycle: one of these fields must come from a path".into()),
                    );
                    stack.clear();
                    break;
                }
                if !trail.contains(next) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The deployment

fn check_deployment(
    cx: &mut Cx,
    dir: &Path,
    spec: &Deployment,
    providers: &BTreeMap<String, ReadFile<ProviderSpec>>,
    mappings: &BTreeMap<String, ReadFile<MappingSpec>>,
    custom_fields: &BTreeMap<String, ValueType>,
    opts: &LoadOptions,
) -> Vec<SourcePlan> {
    let root = KeyPath::root();
    cx.check_names(&root.key("sources"), spec.sources.keys(), "source");
    cx.check_names(&root.key("webhooks"), spec.webhooks.keys(), "webhook");
    cx.check_names(&root.key("triggers"), spec.triggers.keys(), "trigger");
    if spec.sources.is_empty() {
        cx.warning(
            &root.key("sources"),
            "no sources are configured; nothing will sync",
            None,
        );
    }
    let default_safety = safety_plan(&spec.safety, None);
    let limits = limits_plan(cx, &root.key("limits"), &spec.limits);
    let mut plans = Vec::new();
    for (name, source) in &spec.sources {
        let sp = root.key("sources").key(name);
        if source.inbound.is_some() {
            let provider = providers
                .get(source.provider.as_str())
                .and_then(|p| p.spec.as_ref());
            if provider.is_some_and(|p| p.inbound.is_none()) {
                cx.error(
                    &sp.key("inbound"),
                    format!(
                        "provider `{}` does not say how its notifications are signed",
                        source.provider.as_str()
                    ),
                    Some("add `inbound:` (header, algorithm, encoding) to its provider spec, or remove `inbound` here; the README's provider sections say which HRIS can notify".into()),
                );
            }
            if spec.inbound.listen.is_none() {
                cx.error(
                    &sp.key("inbound"),
                    "no inbound endpoint to receive the notifications on",
                    Some("set `inbound.listen` in roster.yaml, e.g. `inbound: {listen: \"127.0.0.1:8788\"}` behind a TLS-terminating reverse proxy".into()),
                );
            }
        }
        if let Some(plan) = check_source(
            cx,
            &sp,
            name,
            source,
            providers,
            mappings,
            &default_safety,
            &spec.safety,
            limits,
        ) {
            plans.push(plan);
        }
    }

    let source_names: Vec<&str> = spec.sources.keys().map(String::as_str).collect();
    let pp = root.key("precedence");
    let mut seen = BTreeSet::new();
    for (i, s) in spec.precedence.default.iter().enumerate() {
        check_source_ref(cx, &pp.key("default").index(i), s, &source_names);
        if !seen.insert(s) {
            cx.error(
                &pp.key("default").index(i),
                format!("`{s}` is listed twice"),
                None,
            );
        }
    }
    for (field, order) in &spec.precedence.fields {
        check_field_name(cx, &pp.key("fields").key(field), field, custom_fields, true);
        for (i, s) in order.iter().enumerate() {
            check_source_ref(cx, &pp.key("fields").key(field).index(i), s, &source_names);
        }
    }

    let trigger_names: Vec<&str> = spec.triggers.keys().map(String::as_str).collect();
    for (name, hook) in &spec.webhooks {
        let wp = root.key("webhooks").key(name);
        if hook.events.is_empty() {
            cx.error(
                &wp.key("events"),
                "no event types",
                Some("subscribe to at least one, e.g. `[\"person.*\"]`".into()),
            );
        }
        for (i, pattern) in hook.events.iter().enumerate() {
            if !EVENT_TYPES.iter().any(|t| pattern_matches(pattern, t)) {
                cx.error(
                    &wp.key("events").index(i),
                    format!("`{pattern}` matches no event type"),
                    suggest(pattern, EVENT_TYPES.iter().copied()).or_else(|| {
                        Some(
                            "see `roster schema deployment` or the README's event catalogue".into(),
                        )
                    }),
                );
            }
        }
        for (i, t) in hook.triggers.iter().enumerate() {
            if !spec.triggers.contains_key(t.as_str()) {
                cx.error(
                    &wp.key("triggers").index(i),
                    format!("unknown trigger `{t}`"),
                    suggest(t.as_str(), trigger_names.iter().copied()),
                );
            }
        }
        check_conditions(cx, &wp.key("when"), &hook.when, custom_fields);
        if let Some(schedule) = &hook.retry_schedule
            && schedule.is_empty()
        {
            cx.error(
                &wp.key("retry_schedule"),
                "`retry_schedule` needs at least one delay",
                None,
            );
        }
        check_webhook_url(
            cx,
            &wp.key("url"),
            hook.url.url(),
            hook.allow_private_network,
        );
    }

    for (name, trigger) in &spec.triggers {
        let tp = root.key("triggers").key(name);
        match (&trigger.field, trigger.event) {
            (None, LifecycleEvent::Date) => cx.error(
                &tp,
                "`lifecycle.date` needs `field`, the date field to fire on",
                Some("e.g. `field: custom.visa_expiry`".into()),
            ),
            (Some(f), _) => check_date_field(cx, &tp.key("field"), f, custom_fields),
            (None, _) => {}
        }
        check_conditions(cx, &tp.key("when"), &trigger.when, custom_fields);
    }

    if let Some(listen) = &spec.admin.listen {
        match listen.parse::<std::net::SocketAddr>() {
            Err(_) => cx.error(
                &root.key("admin").key("listen"),
                format!("`{listen}` is not an address and port"),
                Some("e.g. `127.0.0.1:9187`".into()),
            ),
            Ok(a) if !a.ip().is_loopback() => cx.warning(
                &root.key("admin").key("listen"),
                format!("the admin endpoint listens on `{listen}`, beyond this host"),
                Some(
                    "it can trigger syncs; keep it on 127.0.0.1 unless a firewall protects it"
                        .into(),
                ),
            ),
            Ok(_) => {}
        }
    }

    let ip = root.key("inbound");
    if let Some(listen) = &spec.inbound.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            cx.error(
                &ip.key("listen"),
                format!("`{listen}` is not an address and port"),
                Some("e.g. `127.0.0.1:8788` behind a reverse proxy, or `0.0.0.0:8788`".into()),
            );
        }
        if spec
            .admin
            .listen
            .as_deref()
            .unwrap_or(super::deployment::DEFAULT_ADMIN)
            == listen
        {
            cx.error(
                &ip.key("listen"),
                "the inbound endpoint cannot share the admin endpoint's address",
                Some(
                    "the admin endpoint stays on loopback; give the inbound one its own port"
                        .into(),
                ),
            );
        }
        if !spec.sources.values().any(|s| s.inbound.is_some()) {
            cx.warning(
                &ip.key("listen"),
                "no source accepts notifications, so every request will be refused",
                Some(
                    "add `inbound: {secret: ...}` to the sources whose HRIS posts notifications"
                        .into(),
                ),
            );
        }
    }
    if spec.inbound.requests_per_minute == Some(0) {
        cx.error(&ip.key("requests_per_minute"), "must be at least 1", None);
    }

    if opts.check_secrets {
        let env = ProcessEnv {
            config_dir: dir.to_path_buf(),
        };
        let check = |cx: &mut Cx, path: KeyPath, r: &SecretRef| {
            if let Err(e) = r.resolve(&env) {
                cx.error(&path, format!("cannot read secret: {e}"), Some(e.help()));
            }
        };
        for (name, source) in spec.sources.iter().filter(|(_, s)| s.enabled) {
            for (k, v) in &source.credentials {
                if let CredentialValue::Secret(r) = v {
                    check(
                        cx,
                        root.key("sources").key(name).key("credentials").key(k),
                        r,
                    );
                }
            }
            if let Some(inbound) = &source.inbound {
                check(
                    cx,
                    root.key("sources").key(name).key("inbound").key("secret"),
                    &inbound.secret,
                );
            }
        }
        for (name, hook) in &spec.webhooks {
            check(
                cx,
                root.key("webhooks").key(name).key("secret"),
                &hook.secret,
            );
            for (i, r) in hook.rotating_secrets.iter().enumerate() {
                check(
                    cx,
                    root.key("webhooks")
                        .key(name)
                        .key("rotating_secrets")
                        .index(i),
                    r,
                );
            }
        }
    }
    plans
}

#[allow(clippy::too_many_arguments)]
fn check_source(
    cx: &mut Cx,
    sp: &KeyPath,
    name: &str,
    source: &Source,
    providers: &BTreeMap<String, ReadFile<ProviderSpec>>,
    mappings: &BTreeMap<String, ReadFile<MappingSpec>>,
    default_safety: &SafetyPlan,
    top_safety: &Safety,
    limits: LimitsPlan,
) -> Option<SourcePlan> {
    let provider_name = source.provider.as_str();
    let provider = match providers.get(provider_name) {
        Some(p) => p.spec.as_ref(),
        None => {
            let help = match did_you_mean(provider_name, providers.keys().map(String::as_str)) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!(
                    "known providers are {}; or add `providers/{provider_name}.yaml` to the config directory",
                    quote_list(&providers.keys().map(String::as_str).collect::<Vec<_>>())
                ),
            };
            cx.error(
                &sp.key("provider"),
                format!("unknown provider `{provider_name}`"),
                Some(help),
            );
            None
        }
    };
    let mapping_name = source.mapping.as_ref().map_or(provider_name, Name::as_str);
    let mapping = match mappings.get(mapping_name) {
        Some(m) => m.spec.as_ref(),
        // An unknown provider was just reported; its default mapping is missing for the same reason.
        None if source.mapping.is_none() && !providers.contains_key(provider_name) => None,
        None => {
            let (path, how) = if source.mapping.is_some() {
                (
                    sp.key("mapping"),
                    format!("unknown mapping `{mapping_name}`"),
                )
            } else {
                (
                    sp.key("provider"),
                    format!(
                        "no mapping named `{mapping_name}` (the default for provider `{provider_name}`)"
                    ),
                )
            };
            let help =
                suggest(mapping_name, mappings.keys().map(String::as_str)).unwrap_or_else(|| {
                    format!("add `mappings/{mapping_name}.yaml`, or set `mapping:` on this source")
                });
            cx.error(&path, how, Some(help));
            None
        }
    };
    if let Some(m) = mapping
        && m.provider.as_str() != provider_name
        && providers.contains_key(provider_name)
    {
        cx.error(
            &sp.key(if source.mapping.is_some() { "mapping" } else { "provider" }),
            format!("mapping `{mapping_name}` reads provider `{}`, but this source uses provider `{provider_name}`", m.provider),
            Some("use a mapping written for this provider".into()),
        );
    }

    if let Some(p) = provider {
        let declared: Vec<&str> = p.credentials.keys().map(String::as_str).collect();
        for (k, v) in &source.credentials {
            let kp = sp.key("credentials").key(k);
            match p.credentials.get(k) {
                None => cx.key_error(
                    &kp,
                    format!("provider `{provider_name}` has no credential `{k}`"),
                    suggest(k, declared.iter().copied()).or_else(|| Some("this provider needs no credentials".into())),
                ),
                Some(decl) if decl.secret && matches!(v, CredentialValue::Literal(_)) => cx.error(
                    &kp,
                    format!("credential `{k}` is a secret written as a literal"),
                    Some("reference it instead: `{env: NAME}`, `{file: PATH}` or `{credential: NAME}`, and remove the value from git history".into()),
                ),
                Some(_) => {}
            }
        }
        for (k, decl) in &p.credentials {
            if decl.required && !source.credentials.contains_key(k) {
                let what = decl
                    .description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                cx.error(
                    &sp.key("credentials"),
                    format!("missing credential `{k}` required by provider `{provider_name}`"),
                    Some(format!("add `{k}: {{env: NAME}}`{what}")),
                );
            }
        }
        let settings: Vec<&str> = p.settings.keys().map(String::as_str).collect();
        for k in source.settings.keys() {
            if !p.settings.contains_key(k) {
                cx.key_error(
                    &sp.key("settings").key(k),
                    format!("provider `{provider_name}` has no setting `{k}`"),
                    suggest(k, settings.iter().copied())
                        .or_else(|| Some("this provider takes no settings".into())),
                );
            }
        }
        for (k, decl) in &p.settings {
            if decl.default.is_none() && !source.settings.contains_key(k) {
                let what = decl
                    .description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                cx.error(
                    &sp.key("settings"),
                    format!("missing setting `{k}` required by provider `{provider_name}`"),
                    Some(format!("add `settings: {{{k}: ...}}`{what}")),
                );
            }
        }
    }

    let schedule = check_schedule(cx, &sp.key("schedule"), source);

    // Per-source field overrides on top of the mapping.
    let mut fields = mapping.map(|m| m.fields.clone()).unwrap_or_default();
    let mut custom = mapping.map(|m| m.custom.clone()).unwrap_or_default();
    for (key, m) in &source.fields {
        if let Some(f) = Field::from_name(key) {
            fields.set(f, m.clone());
        } else if let Some(n) = key.strip_prefix("custom.") {
            if let Err(e) = Name::parse(n) {
                cx.key_error(
                    &sp.key("fields").key(key),
                    format!("`{n}` is not a valid custom field name"),
                    e.help,
                );
            }
            custom.insert(n.to_string(), m.clone());
        } else {
            cx.key_error(
                &sp.key("fields").key(key),
                format!("`{key}` is not a canonical field"),
                suggest(key, Field::names())
                    .or_else(|| Some("custom fields are written `custom.NAME`".into())),
            );
        }
    }
    let mapped: BTreeSet<String> = fields
        .iter()
        .map(|(f, _)| f.name().to_string())
        .chain(custom.keys().cloned())
        .collect();
    for (key, m) in &source.fields {
        let target = Field::from_name(key).map_or(Target::Custom, Target::Canonical);
        check_field(cx, &sp.key("fields").key(key), target, m, &mapped);
    }
    if let Some(p) = provider {
        let (f, c) = fill_settings(cx, sp, source, &p.settings, fields, custom);
        (fields, custom) = (f, c);
    }

    let safety = safety_plan(
        source.safety.as_ref().unwrap_or(top_safety),
        Some(default_safety),
    );
    Some(SourcePlan {
        name: name.to_string(),
        provider: provider_name.to_string(),
        mapping: mapping_name.to_string(),
        fields,
        custom,
        schedule: schedule?,
        enabled: source.enabled,
        safety,
        limits,
    })
}

fn check_schedule(cx: &mut Cx, path: &KeyPath, source: &Source) -> Option<Schedule> {
    let s = &source.schedule;
    match (&s.every, &s.cron) {
        (Some(_), Some(_)) => {
            cx.error(&path.key("cron"), "give `every` or `cron`, not both", None);
            None
        }
        (None, Some(cron)) => {
            if s.jitter.is_some() {
                cx.error(
                    &path.key("jitter"),
                    "`jitter` applies to `every` only; a cron schedule runs on time",
                    None,
                );
            }
            Some(Schedule::Cron(cron.clone()))
        }
        (every, None) => {
            let period = every.as_ref().map_or(
                std::time::Duration::from_secs(DEFAULT_EVERY_SECS),
                Duration::get,
            );
            if period.as_secs() < MIN_EVERY_SECS {
                cx.error(
                    &path.key("every"),
                    "syncing more often than once a minute would hammer the HRIS",
                    Some("use `1m` or more; `roster sync --now` syncs on demand".into()),
                );
            }
            let jitter = s.jitter.as_ref().map_or(
                std::time::Duration::from_secs(DEFAULT_JITTER_SECS).min(period / 2),
                Duration::get,
            );
            if jitter > period / 2 {
                cx.error(
                    &path.key("jitter"),
                    "`jitter` is more than half of `every`",
                    Some("keep jitter well below the interval".into()),
                );
            }
            Some(Schedule::Every { period, jitter })
        }
    }
}

/// `limits:` with defaults applied. A field limit too small for ordinary values, or larger
/// than the record limit (a field cannot be larger than its record), is an error.
fn limits_plan(cx: &mut Cx, path: &KeyPath, l: &Limits) -> LimitsPlan {
    let default = LimitsPlan::default();
    let plan = LimitsPlan {
        max_field_bytes: l
            .max_field_bytes
            .as_ref()
            .map_or(default.max_field_bytes, |s| s.bytes()),
        max_record_bytes: l
            .max_record_bytes
            .as_ref()
            .map_or(default.max_record_bytes, |s| s.bytes()),
    };
    let shown = |v: &Option<DataSize>, default: &str| {
        v.as_ref()
            .map_or(format!("`{default}` (the default)"), |s| format!("`{s}`"))
    };
    let field = shown(&l.max_field_bytes, "8KiB");
    let record = shown(&l.max_record_bytes, "1MiB");
    if plan.max_field_bytes < MIN_FIELD_BYTES {
        cx.error(
            &path.key("max_field_bytes"),
            format!(
                "{field} is too small for ordinary values (an email address alone may be 254 bytes)"
            ),
            Some("use at least `1KiB`; the default is `8KiB`".into()),
        );
    } else if plan.max_field_bytes > plan.max_record_bytes {
        // Point at the limit that was written (both may be).
        let at = if l.max_field_bytes.is_some() {
            "max_field_bytes"
        } else {
            "max_record_bytes"
        };
        cx.error(
            &path.key(at),
            format!(
                "`max_field_bytes` {field} is more than `max_record_bytes` {record}; a field cannot be larger than its record"
            ),
            Some("lower `max_field_bytes` or raise `max_record_bytes`".into()),
        );
    }
    plan
}

fn safety_plan(s: &Safety, base: Option<&SafetyPlan>) -> SafetyPlan {
    SafetyPlan {
        max_removals: s
            .max_removals
            .map(|r| r.get())
            .or(base.map(|b| b.max_removals))
            .unwrap_or(0.2),
        min_removals_to_hold: s
            .min_removals_to_hold
            .or(base.map(|b| b.min_removals_to_hold))
            .unwrap_or(3),
        hold_on_empty: s
            .hold_on_empty
            .or(base.map(|b| b.hold_on_empty))
            .unwrap_or(true),
    }
}

fn check_source_ref(cx: &mut Cx, path: &KeyPath, s: &Name, sources: &[&str]) {
    if !sources.contains(&s.as_str()) {
        cx.error(
            path,
            format!("unknown source `{s}`"),
            suggest(s.as_str(), sources.iter().copied()),
        );
    }
}

/// A field name in precedence, conditions and triggers: canonical, or `custom.NAME`.
fn check_field_name(
    cx: &mut Cx,
    path: &KeyPath,
    name: &str,
    custom: &BTreeMap<String, ValueType>,
    at_key: bool,
) -> Option<FieldRef> {
    if let Some(f) = Field::from_name(name) {
        return Some(FieldRef::Canonical(f));
    }
    if let Some(n) = name.strip_prefix("custom.") {
        if let Some(t) = custom.get(n) {
            return Some(FieldRef::Custom(*t));
        }
        let help = suggest(n, custom.keys().map(String::as_str))
            .unwrap_or_else(|| "declare it under `custom:` in a mapping".into());
        let msg = format!("no mapping declares custom field `{n}`");
        if at_key {
            cx.key_error(path, msg, Some(help))
        } else {
            cx.error(path, msg, Some(help))
        }
        return None;
    }
    let help = suggest(name, Field::names())
        .or_else(|| Some("custom fields are written `custom.NAME`".into()));
    let msg = format!("`{name}` is not a field of the person");
    if at_key {
        cx.key_error(path, msg, help)
    } else {
        cx.error(path, msg, help)
    }
    None
}

enum FieldRef {
    Canonical(Field),
    Custom(ValueType),
}

fn check_date_field(cx: &mut Cx, path: &KeyPath, name: &str, custom: &BTreeMap<String, ValueType>) {
    let is_date = match check_field_name(cx, path, name, custom, false) {
        None => return,
        Some(FieldRef::Canonical(f)) => f.kind() == FieldKind::Date,
        Some(FieldRef::Custom(t)) => t == ValueType::Date,
    };
    if !is_date {
        let dates: Vec<&str> = Field::date_names().collect();
        cx.error(
            path,
            format!("`{name}` is not a date field"),
            Some(format!(
                "date fields are {} and custom fields of `type: date`",
                quote_list(&dates)
            )),
        );
    }
}

fn check_conditions(
    cx: &mut Cx,
    path: &KeyPath,
    conds: &Conditions,
    custom: &BTreeMap<String, ValueType>,
) {
    for (field, values) in conds {
        let fp = path.key(field);
        let Some(FieldRef::Canonical(f)) = check_field_name(cx, &fp, field, custom, true) else {
            continue;
        };
        if let FieldKind::Enum(allowed) = f.kind() {
            for (i, v) in values.values().iter().enumerate() {
                if !allowed.contains(&v.as_str()) {
                    let vp = if values.values().len() == 1
                        && matches!(values, super::deployment::OneOrMany::One(_))
                    {
                        fp.clone()
                    } else {
                        fp.index(i)
                    };
                    cx.error(
                        &vp,
                        format!("`{v}` is not a value of `{field}`"),
                        suggest(v, allowed.iter().copied()),
                    );
                }
            }
        }
    }
}

/// `person.*` matches `person.created`; `*` matches everything.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = event_type.split('.').collect();
    p.len() == t.len() && p.iter().zip(&t).all(|(a, b)| *a == "*" || a == b)
}

fn check_webhook_url(cx: &mut Cx, path: &KeyPath, url: &url::Url, allow_private: bool) {
    let special = match url.host() {
        Some(url::Host::Ipv4(ip)) => special_address(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => special_address(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => special_name(d),
        None => None,
    };
    match special {
        // The URL names the address itself, so a metadata address written out passes.
        Some(s) if s.refused(allow_private, true) => cx.error(
            path,
            format!("`{}` points to {s}", url.host_str().unwrap_or_default()),
            Some(s.help().into()),
        ),
        None if url.scheme() == "http" => cx.warning(
            path,
            "the webhook URL uses plain http",
            Some("event bodies carry personal data; use https".into()),
        ),
        _ => {}
    }
}

/// Host names that always mean this host, whatever DNS says (RFC 6761): `localhost` and
/// its subdomains, with or without the trailing dot of a fully qualified name.
fn special_name(domain: &str) -> Option<Special> {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    (d == "localhost" || d.ends_with(".localhost")).then_some(Special {
        what: "a loopback address",
        reach: Reach::Internal,
        embedded: None,
    })
}

/// How a special-purpose address may be used as a webhook destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// An internal network (loopback, private, link-local, shared, benchmarking, reserved):
    /// only with `allow_private_network: true`.
    Internal,
    /// A cloud metadata service, which hands out the host's credentials: only with
    /// `allow_private_network: true` and a URL that names this exact address as an IP
    /// literal. A host name resolving to it, or the address embedded in IPv6, never passes.
    Metadata,
    /// Never a receiver: unspecified, broadcast, multicast, documentation, discard-only.
    Never,
}

/// A special-purpose address (IANA IPv4 and IPv6 special-purpose registries, multicast, and
/// the cloud metadata services): what it is, for messages, and how it may be used.
///
/// `Display` reads "a loopback address", or for IPv4 inside IPv6 "127.0.0.1, a loopback
/// address, inside an IPv4-mapped address (::ffff:0:0/96)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Special {
    /// What the range is, with an article: "a loopback address".
    pub what: &'static str,
    /// How it may be used.
    pub reach: Reach,
    /// The IPv4 address an IPv6 address carries, and the form that carries it.
    pub embedded: Option<(std::net::Ipv4Addr, &'static str)>,
}

/// The help every refusal of an internal address gives.
pub const PRIVATE_HELP: &str = "webhooks go to public receivers by default (SSRF protection); set \
     `allow_private_network: true` if this receiver really is on this host or network";

impl Special {
    /// Whether a webhook may not connect here. `named`: the URL names this address as an
    /// IP literal (rather than a host name that resolves to it).
    pub fn refused(&self, allow_private_network: bool, named: bool) -> bool {
        match self.reach {
            Reach::Internal => !allow_private_network,
            Reach::Metadata => !(allow_private_network && named && self.embedded.is_none()),
            Reach::Never => true,
        }
    }

    /// What to do about a refusal.
    pub fn help(&self) -> &'static str {
        match self.reach {
            Reach::Internal => PRIVATE_HELP,
            Reach::Metadata => {
                "cloud metadata services hand out this host's credentials (SSRF protection): \
                 webhooks never go there, even with `allow_private_network: true`, unless the \
                 URL names this exact address as an IP literal and `allow_private_network: true` \
                 is set; point the webhook at the real receiver"
            }
            Reach::Never => {
                "no receiver can listen on such an address (`allow_private_network` does not \
                 change that); point the webhook at the receiver's real address"
            }
        }
    }
}

impl std::fmt::Display for Special {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.embedded {
            Some((v4, form)) => write!(f, "{v4}, {}, inside {form}", self.what),
            None => f.write_str(self.what),
        }
    }
}

use Reach::{Internal, Metadata, Never};

/// IPv4 special-purpose ranges, most specific first (the first match wins).
#[rustfmt::skip]
const V4_RANGES: &[([u8; 4], u8, &str, Reach)] = &[
    // Cloud metadata services: AWS/GCP/Azure/OCI/DigitalOcean, ECS task metadata, EKS Pod
    // Identity, Alibaba Cloud, Azure's WireServer (a public address on every Azure host).
    ([169, 254, 169, 254], 32, "a cloud metadata address", Metadata),
    ([169, 254, 170, 2], 32, "a cloud metadata address", Metadata),
    ([169, 254, 170, 23], 32, "a cloud metadata address", Metadata),
    ([100, 100, 100, 200], 32, "a cloud metadata address", Metadata),
    ([168, 63, 129, 16], 32, "a cloud metadata address", Metadata),
    ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address", Never),
    ([10, 0, 0, 0], 8, "a private address", Internal),
    ([100, 64, 0, 0], 10, "a private (shared, carrier-grade NAT) address", Internal),
    ([127, 0, 0, 0], 8, "a loopback address", Internal),
    ([169, 254, 0, 0], 16, "a link-local address", Internal),
    ([172, 16, 0, 0], 12, "a private address", Internal),
    ([192, 0, 0, 0], 24, "an IETF protocol assignment address (192.0.0.0/24)", Internal),
    ([192, 0, 2, 0], 24, "a documentation address (192.0.2.0/24)", Never),
    ([192, 88, 99, 0], 24, "a deprecated 6to4 relay address (192.88.99.0/24)", Internal),
    ([192, 168, 0, 0], 16, "a private address", Internal),
    ([198, 18, 0, 0], 15, "a benchmarking address (198.18.0.0/15)", Internal),
    ([198, 51, 100, 0], 24, "a documentation address (198.51.100.0/24)", Never),
    ([203, 0, 113, 0], 24, "a documentation address (203.0.113.0/24)", Never),
    ([224, 0, 0, 0], 4, "a multicast address", Never),
    ([255, 255, 255, 255], 32, "the broadcast address", Never),
    ([240, 0, 0, 0], 4, "a reserved address (240.0.0.0/4)", Internal),
];

/// IPv6 special-purpose ranges, most specific first, after IPv4 embedded in IPv6 was taken
/// out (`embedded_v4`). Global unicast is 2000::/3; anything else left is reserved.
#[rustfmt::skip]
const V6_RANGES: &[([u16; 8], u8, &str, Reach)] = &[
    // AWS's IPv6 instance metadata and EKS Pod Identity.
    ([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128, "a cloud metadata address", Metadata),
    ([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23], 128, "a cloud metadata address", Metadata),
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, "an unspecified address", Never),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, "a loopback address", Internal),
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "a local-use NAT64 address (64:ff9b:1::/48)", Internal),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "a discard-only address (100::/64)", Never),
    ([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "a dummy-prefix address (100:0:0:1::/64)", Never),
    ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, "a benchmarking address (2001:2::/48)", Internal),
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "an IETF protocol assignment address (2001::/23)", Internal),
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "a documentation address (2001:db8::/32)", Never),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "a documentation address (3fff::/20)", Never),
    ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "an SRv6 segment address (5f00::/16)", Internal),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "a private address", Internal),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "a link-local address", Internal),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "a site-local address (deprecated, fec0::/10)", Internal),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "a multicast address", Never),
];

/// Whether `bits` starts with the first `len` bits of `net`.
fn in_prefix(bits: u128, net: u128, len: u8, width: u8) -> bool {
    let shift = width - len;
    len == 0 || (bits >> shift) == (net >> shift)
}

/// The IPv4 address an IPv6 address carries, and the form: IPv4-mapped, IPv4-translated
/// (SIIT), IPv4-compatible (deprecated), NAT64 (well-known and local-use prefix, the /96
/// layout), 6to4, and Teredo (the client's address, stored inverted). Each is classified as
/// the IPv4 address it reaches.
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<(std::net::Ipv4Addr, &'static str)> {
    let bits = u128::from(v6);
    let low = std::net::Ipv4Addr::from(bits as u32);
    let seg = v6.segments();
    if bits >> 32 == 0xffff {
        Some((low, "an IPv4-mapped address (::ffff:0:0/96)"))
    } else if bits >> 32 == 0xffff_0000 {
        Some((low, "an IPv4-translated address (::ffff:0:0:0/96)"))
    } else if bits >> 32 == 0 && bits > 1 {
        Some((low, "an IPv4-compatible address (::/96)"))
    } else if bits >> 32 == 0x0064_ff9b_u128 << 64 {
        Some((low, "a NAT64 address (64:ff9b::/96)"))
    } else if seg[..3] == [0x64, 0xff9b, 1] {
        Some((low, "a local-use NAT64 address (64:ff9b:1::/48)"))
    } else if seg[0] == 0x2002 {
        Some((
            std::net::Ipv4Addr::from((bits >> 80) as u32),
            "a 6to4 address (2002::/16)",
        ))
    } else if seg[..2] == [0x2001, 0] {
        Some((
            std::net::Ipv4Addr::from(!(bits as u32)),
            "a Teredo address (2001::/32)",
        ))
    } else {
        None
    }
}

/// The one classification of special-purpose addresses, used by `validate` (IP literals in
/// webhook URLs) and at connect time (IP literals, and every address DNS gives for a name).
/// `None`: an ordinary public unicast address.
pub fn special_address(ip: IpAddr) -> Option<Special> {
    let v6 = match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            return V4_RANGES
                .iter()
                .find(|(net, len, ..)| {
                    in_prefix(bits.into(), u32::from_be_bytes(*net).into(), *len, 32)
                })
                .map(|&(_, _, what, reach)| Special {
                    what,
                    reach,
                    embedded: None,
                });
        }
        IpAddr::V6(v6) => v6,
    };
    let bits = u128::from(v6);
    let listed = |bits: u128| {
        V6_RANGES.iter().find(|(net, len, ..)| {
            in_prefix(bits, u128::from(std::net::Ipv6Addr::from(*net)), *len, 128)
        })
    };
    // Metadata, unspecified and loopback are exact addresses inside the embedding forms.
    if let Some(&(_, 128, what, reach)) = listed(bits) {
        return Some(Special {
            what,
            reach,
            embedded: None,
        });
    }
    if let Some((v4, form)) = embedded_v4(v6) {
        if let Some(s) = special_address(IpAddr::V4(v4)) {
            return Some(Special {
                embedded: Some((v4, form)),
                ..s
            });
        }
    }
    if let Some(&(_, _, what, reach)) = listed(bits) {
        // Teredo carries a public client address: a tunnel, not an internal network.
        if bits >> 96 == 0x2001_0000 {
            return None;
        }
        return Some(Special {
            what,
            reach,
            embedded: None,
        });
    }
    let global_unicast = bits >> 125 == 0b001;
    let embeds_public = embedded_v4(v6).is_some();
    (!global_unicast && !embeds_public).then_some(Special {
        what: "a reserved address (outside 2000::/3)",
        reach: Internal,
        embedded: None,
    })
}

#[cfg(test)]
#[rustfmt::skip]
/// Every IANA special-purpose range (and multicast, broadcast, metadata), with an
/// address inside it, what it reads as, and whether it passes without and with
/// `allow_private_network` when the URL names it literally. Shared with the connect-time
/// tests in `webhook::attempt`.
pub(crate) const SPECIAL_CASES: &[(&str, Option<&str>, bool, bool)] = &[
    // IPv4
    ("0.0.0.0", Some("an unspecified (\"this network\") address"), false, false),
    ("0.1.2.3", Some("an unspecified (\"this network\") address"), false, false),
    ("10.1.2.3", Some("a private address"), false, true),
    ("100.64.0.1", Some("a private (shared, carrier-grade NAT) address"), false, true),
    ("100.127.255.254", Some("a private (shared, carrier-grade NAT) address"), false, true),
    ("127.0.0.1", Some("a loopback address"), false, true),
    ("127.255.0.9", Some("a loopback address"), false, true),
    ("169.254.1.1", Some("a link-local address"), false, true),
    ("172.16.0.1", Some("a private address"), false, true),
    ("172.31.255.1", Some("a private address"), false, true),
    ("192.0.0.8", Some("an IETF protocol assignment address (192.0.0.0/24)"), false, true),
    ("192.0.2.10", Some("a documentation address (192.0.2.0/24)"), false, false),
    ("192.88.99.1", Some("a deprecated 6to4 relay address (192.88.99.0/24)"), false, true),
    ("192.168.0.10", Some("a private address"), false, true),
    ("198.18.0.1", Some("a benchmarking address (198.18.0.0/15)"), false, true),
    ("198.19.255.1", Some("a benchmarking address (198.18.0.0/15)"), false, true),
    ("198.51.100.7", Some("a documentation address (198.51.100.0/24)"), false, false),
    ("203.0.113.9", Some("a documentation address (203.0.113.0/24)"), false, false),
    ("224.0.0.251", Some("a multicast address"), false, false),
    ("239.255.255.250", Some("a multicast address"), false, false),
    ("240.0.0.1", Some("a reserved address (240.0.0.0/4)"), false, true),
    ("255.255.255.254", Some("a reserved address (240.0.0.0/4)"), false, true),
    ("255.255.255.255", Some("the broadcast address"), false, false),
    // Cloud metadata: literal and allowed is the only way through.
    ("169.254.169.254", Some("a cloud metadata address"), false, true),
    ("169.254.170.2", Some("a cloud metadata address"), false, true),
    ("169.254.170.23", Some("a cloud metadata address"), false, true),
    ("100.100.100.200", Some("a cloud metadata address"), false, true),
    ("168.63.129.16", Some("a cloud metadata address"), false, true),
    ("fd00:ec2::254", Some("a cloud metadata address"), false, true),
    ("fd00:ec2::23", Some("a cloud metadata address"), false, true),
    // IPv6
    ("::", Some("an unspecified address"), false, false),
    ("::1", Some("a loopback address"), false, true),
    ("100::1", Some("a discard-only address (100::/64)"), false, false),
    ("100:0:0:1::1", Some("a dummy-prefix address (100:0:0:1::/64)"), false, false),
    ("2001:2::1", Some("a benchmarking address (2001:2::/48)"), false, true),
    ("2001:10::1", Some("an IETF protocol assignment address (2001::/23)"), false, true),
    ("2001:db8::1", Some("a documentation address (2001:db8::/32)"), false, false),
    ("3fff::1", Some("a documentation address (3fff::/20)"), false, false),
    ("5f00::1", Some("an SRv6 segment address (5f00::/16)"), false, true),
    ("fc00::1", Some("a private address"), false, true),
    ("fd12:3456::1", Some("a private address"), false, true),
    ("fe80::1", Some("a link-local address"), false, true),
    ("fec0::1", Some("a site-local address (deprecated, fec0::/10)"), false, true),
    ("ff02::1", Some("a multicast address"), false, false),
    ("4000::1", Some("a reserved address (outside 2000::/3)"), false, true),
    ("64:ff9b:1::808:808", Some("a local-use NAT64 address (64:ff9b:1::/48)"), false, true),
    // IPv4 inside IPv6: classified as the IPv4 address.
    ("::ffff:127.0.0.1", Some("127.0.0.1, a loopback address, inside an IPv4-mapped address (::ffff:0:0/96)"), false, true),
    ("::ffff:0:10.0.0.1", Some("10.0.0.1, a private address, inside an IPv4-translated address (::ffff:0:0:0/96)"), false, true),
    ("::127.0.0.1", Some("127.0.0.1, a loopback address, inside an IPv4-compatible address (::/96)"), false, true),
    ("64:ff9b::7f00:1", Some("127.0.0.1, a loopback address, inside a NAT64 address (64:ff9b::/96)"), false, true),
    ("64:ff9b::a9fe:a9fe", Some("169.254.169.254, a cloud metadata address, inside a NAT64 address (64:ff9b::/96)"), false, false),
    ("64:ff9b:1::a00:1", Some("10.0.0.1, a private address, inside a local-use NAT64 address (64:ff9b:1::/48)"), false, true),
    ("2002:a9fe:a9fe::1", Some("169.254.169.254, a cloud metadata address, inside a 6to4 address (2002::/16)"), false, false),
    ("2002:c000:0201::1", Some("192.0.2.1, a documentation address (192.0.2.0/24), inside a 6to4 address (2002::/16)"), false, false),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some("127.0.0.1, a loopback address, inside a Teredo address (2001::/32)"), false, true),
    ("::ffff:224.0.0.1", Some("224.0.0.1, a multicast address, inside an IPv4-mapped address (::ffff:0:0/96)"), false, false),
    // Public
    ("93.184.216.34", None, true, true),
    ("8.8.8.8", None, true, true),
    ("2606:4700::1111", None, true, true),
    ("::ffff:8.8.8.8", None, true, true),
    ("64:ff9b::808:808", None, true, true),
    ("2002:808:808::1", None, true, true),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None, true, true),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_formats_must_read_a_calendar_date_and_may_have_time_parts() {
        for ok in [
            "%d.%m.%Y",
            "%m/%d/%Y",
            "%d.%m.%Y %H:%M",
            "%m/%d/%Y %I:%M %p",
            "%Y-%m-%dT%H:%M:%S%z",
            "%d %B %Y",
            "%F %T",
        ] {
            assert!(date_format_reads_a_date(ok), "{ok}");
        }
        for bad in ["%H:%M", "%Y", "%m/%Y", "31.12.2024", "%d.%m"] {
            assert!(!date_format_reads_a_date(bad), "{bad}");
        }
    }

    #[test]
    fn event_patterns() {
        assert!(pattern_matches("person.*", "person.created"));
        assert!(pattern_matches("*", "sync.held"));
        assert!(pattern_matches("*.held", "sync.held"));
        assert!(!pattern_matches("person.*", "lifecycle.birthday"));
        assert!(!pattern_matches("person", "person.created"));
    }

    #[test]
    fn special_addresses() {
        for &(addr, what, public_ok, allowed_ok) in SPECIAL_CASES {
            let ip: IpAddr = addr.parse().unwrap();
            let s = special_address(ip);
            assert_eq!(s.map(|s| s.to_string()).as_deref(), what, "{addr}");
            let passes = |allow| s.is_none_or(|s| !s.refused(allow, true));
            assert_eq!(
                passes(false),
                public_ok,
                "{addr} without allow_private_network"
            );
            assert_eq!(
                passes(true),
                allowed_ok,
                "{addr} with allow_private_network"
            );
            // Found by a name instead of written out, metadata never passes.
            if s.is_some_and(|s| s.reach == Reach::Metadata) {
                assert!(s.unwrap().refused(true, false), "{addr} by name");
            }
        }
    }

    #[test]
    fn localhost_names_are_loopback() {
        for name in ["localhost", "localhost.", "a.localhost", "a.b.localhost."] {
            assert_eq!(
                special_name(name).map(|s| s.to_string()).as_deref(),
                Some("a loopback address"),
                "{name}"
            );
        }
        for name in ["notlocalhost", "localhost.example.com", "example.com."] {
            assert_eq!(special_name(name), None, "{name}");
        }
    }
}
