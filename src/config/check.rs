//! Structural check of a spanned YAML tree against the generated JSON Schema.
//!
//! This walks the subset of draft-07 that schemars emits (`$ref`, `allOf`, `oneOf`/`anyOf`,
//! `type`, `properties`, `required`, `additionalProperties`, `enum`, `const`, `items`,
//! `minimum`/`maximum`, `minItems`/`minLength`, `format`) and collects every violation with
//! the node's position, instead of stopping at the first like serde does.
//!
//! Why not a general JSON Schema validator crate: its errors speak in JSON pointers and
//! "not valid under any of the given schemas"; users need "unknown key `fliter` (did you mean
//! `filter`?)" at a line and column, and the right branch of a tagged union (`kind: bearer`)
//! picked by its tag. The schema remains the contract: a test validates every example against
//! it with an independent implementation.
//!
//! Roster's own formats (`roster-duration`, ...) are checked with the value types' parsers,
//! and `x-roster-secret` marks positions where a literal string is refused without echoing it.

use serde_json::{Map, Value as J};

use super::diag::{KeyPath, quote_list, suggest};
use super::value::check_format;
use super::yaml::{Node, Span, Value};

/// One structural problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// Position of the offending key or value.
    pub span: Span,
    /// Key path of the value.
    pub path: KeyPath,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// Checks `node` against `root` (a whole generated schema) and returns every problem.
pub fn check(root: &J, node: &Node) -> Vec<Issue> {
    let mut c = Checker {
        root,
        out: Vec::new(),
    };
    c.check(node, root, &KeyPath::root());
    c.out
}

struct Checker<'s> {
    root: &'s J,
    out: Vec<Issue>,
}

impl<'s> Checker<'s> {
    fn issue(&mut self, span: Span, path: &KeyPath, message: String, help: Option<String>) {
        self.out.push(Issue {
            span,
            path: path.clone(),
            message,
            help,
        });
    }

    /// Follows `$ref` (`#/definitions/Name`) until a schema without one.
    fn resolve(&self, mut schema: &'s J) -> &'s J {
        for _ in 0..32 {
            let Some(r) = schema.get("$ref").and_then(J::as_str) else {
                return schema;
            };
            let Some(target) = r.strip_prefix('#').and_then(|p| self.root.pointer(p)) else {
                return schema;
            };
            schema = target;
        }
        schema
    }

    fn check(&mut self, node: &Node, schema: &'s J, path: &KeyPath) {
        let schema = self.resolve(schema);
        let obj = match schema {
            J::Bool(true) => return,
            J::Bool(false) => {
                self.issue(node.span, path, "no value is allowed here".into(), None);
                return;
            }
            J::Object(o) => o,
            _ => return,
        };

        if obj.get("x-roster-secret") == Some(&J::Bool(true))
            && !matches!(node.value, Value::Map(_) | Value::Null)
        {
            // Never echo the value: it is probably the secret itself.
            self.issue(
                node.span,
                path,
                "a literal secret is not allowed here".into(),
                Some("reference it instead: `{env: NAME}`, `{file: PATH}` or `{credential: NAME}`, and remove the value from git history".into()),
            );
            return;
        }

        if let Some(J::Array(all)) = obj.get("allOf") {
            for s in all {
                self.check(node, s, path);
            }
        }
        if let Some(J::Array(branches)) = obj.get("oneOf").or_else(|| obj.get("anyOf")) {
            self.check_union(node, branches, path);
            return;
        }
        if let Some(c) = obj.get("const") {
            if !equals(node, c) {
                let want = display_json(c);
                self.issue(node.span, path, format!("expected `{want}`"), None);
            }
            return;
        }
        if let Some(J::Array(values)) = obj.get("enum") {
            self.check_enum(node, values, path);
            return;
        }
        if let Some(types) = obj.get("type") {
            let types: Vec<&str> = match types {
                J::String(t) => vec![t.as_str()],
                J::Array(ts) => ts.iter().filter_map(J::as_str).collect(),
                _ => vec![],
            };
            if !types.is_empty() && !types.iter().any(|t| type_matches(t, &node.value)) {
                self.type_issue(node, &types, path);
                return;
            }
        }
        match &node.value {
            Value::Map(_) => self.check_object(node, obj, path),
            Value::Seq(items) => {
                if let Some(min) = obj.get("minItems").and_then(J::as_u64)
                    && (items.len() as u64) < min
                {
                    self.issue(
                        node.span,
                        path,
                        format!(
                            "needs at least {min} item{}",
                            if min == 1 { "" } else { "s" }
                        ),
                        None,
                    );
                }
                if let Some(item_schema) = obj.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, item_schema, &path.index(i));
                    }
                }
            }
            Value::Str(s) => {
                if let Some(min) = obj.get("minLength").and_then(J::as_u64)
                    && (s.chars().count() as u64) < min
                {
                    self.issue(node.span, path, "must not be empty".into(), None);
                }
                if let Some(fmt) = obj.get("format").and_then(J::as_str)
                    && let Some(Err(e)) = check_format(fmt, s)
                {
                    self.issue(node.span, path, e.message, e.help);
                }
            }
            Value::Int(_) | Value::Float(_) => {
                let v = match node.value {
                    Value::Int(i) => i as f64,
                    Value::Float(f) => f,
                    _ => unreachable!(),
                };
                if let Some(min) = obj.get("minimum").and_then(J::as_f64)
                    && v < min
                {
                    self.issue(node.span, path, format!("must be at least {min}"), None);
                }
                if let Some(max) = obj.get("maximum").and_then(J::as_f64)
                    && v > max
                {
                    self.issue(node.span, path, format!("must be at most {max}"), None);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn check_object(&mut self, node: &Node, obj: &'s Map<String, J>, path: &KeyPath) {
        let Value::Map(entries) = &node.value else {
            return;
        };
        static EMPTY: std::sync::OnceLock<Map<String, J>> = std::sync::OnceLock::new();
        let props = obj
            .get("properties")
            .and_then(J::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new));
        let additional = obj.get("additionalProperties");
        for (key, value) in entries {
            let child = path.key(&key.name);
            if let Some(ps) = props.get(&key.name) {
                self.check(value, ps, &child);
                continue;
            }
            match additional {
                Some(J::Bool(false)) => {
                    let help = suggest(&key.name, props.keys().map(String::as_str))
                        .or_else(|| Some("this key is not part of this block".into()));
                    self.issue(
                        key.span,
                        &child,
                        format!("unknown key `{}`", key.name),
                        help,
                    );
                }
                Some(s @ J::Object(_)) => self.check(value, s, &child),
                _ => {}
            }
        }
        if let Some(J::Array(required)) = obj.get("required") {
            for r in required.iter().filter_map(J::as_str) {
                if !entries.iter().any(|(k, _)| k.name == r) {
                    let help = props
                        .get(r)
                        .map(|p| self.resolve(p))
                        .and_then(|p| p.get("description"))
                        .and_then(J::as_str)
                        .map(first_sentence);
                    self.issue(node.span, path, format!("missing required key `{r}`"), help);
                }
            }
        }
    }

    fn check_enum(&mut self, node: &Node, values: &[J], path: &KeyPath) {
        if values.iter().any(|v| equals(node, v)) {
            return;
        }
        let names: Vec<String> = values.iter().map(display_json).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match &node.value {
            Value::Str(s) => {
                let help = suggest(s, names.iter().copied());
                self.issue(node.span, path, format!("unknown value `{s}`"), help);
            }
            other => self.issue(
                node.span,
                path,
                format!(
                    "expected one of {}, found {}",
                    quote_list(&names),
                    other.noun()
                ),
                None,
            ),
        }
    }

    fn type_issue(&mut self, node: &Node, types: &[&str], path: &KeyPath) {
        let wanted: Vec<&str> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| type_noun(t))
            .collect();
        let wanted = if wanted.is_empty() {
            "nothing".to_string()
        } else {
            wanted.join(" or ")
        };
        let (found, help) = match node.value {
            Value::Null => (
                "nothing".to_string(),
                Some("write a value after the colon, or remove the key".to_string()),
            ),
            ref v => (v.noun().to_string(), None),
        };
        self.issue(
            node.span,
            path,
            format!("expected {wanted}, found {found}"),
            help,
        );
    }

    fn check_union(&mut self, node: &Node, branches: &'s [J], path: &KeyPath) {
        let branches: Vec<&'s J> = branches.iter().map(|b| self.resolve(b)).collect();
        let is_null_branch = |b: &J| b.get("type").and_then(J::as_str) == Some("null");
        if matches!(node.value, Value::Null) && branches.iter().any(|b| is_null_branch(b)) {
            return;
        }
        let branches: Vec<&'s J> = branches
            .into_iter()
            .filter(|b| !is_null_branch(b))
            .collect();
        if branches.len() == 1 {
            self.check(node, branches[0], path);
            return;
        }

        // A set of constants (an enum whose variants have doc comments).
        let consts: Option<Vec<&J>> = branches.iter().map(|b| single_value(b)).collect();
        if let Some(consts) = consts {
            let values: Vec<J> = consts.into_iter().cloned().collect();
            self.check_enum(node, &values, path);
            return;
        }

        // A tagged union: every branch fixes the same property to a constant.
        if let Some(tag) = tag_property(&branches) {
            let tags: Vec<String> = branches
                .iter()
                .filter_map(|b| {
                    b.pointer(&format!("/properties/{tag}"))
                        .and_then(single_value)
                })
                .map(display_json)
                .collect();
            let tag_names: Vec<&str> = tags.iter().map(String::as_str).collect();
            let Value::Map(entries) = &node.value else {
                self.issue(
                    node.span,
                    path,
                    format!(
                        "expected a mapping with `{tag}`, found {}",
                        node.value.noun()
                    ),
                    Some(format!("set `{tag}` to one of {}", quote_list(&tag_names))),
                );
                return;
            };
            let Some((key, value)) = entries.iter().find(|(k, _)| k.name == tag) else {
                self.issue(
                    node.span,
                    path,
                    format!("missing required key `{tag}`"),
                    Some(format!("set `{tag}` to one of {}", quote_list(&tag_names))),
                );
                return;
            };
            for b in &branches {
                if let Some(v) = b
                    .pointer(&format!("/properties/{tag}"))
                    .and_then(single_value)
                    && equals(value, v)
                {
                    self.check(node, b, path);
                    return;
                }
            }
            let shown = match &value.value {
                Value::Str(s) => s.clone(),
                v => v.kind().to_string(),
            };
            let help = suggest(&shown, tag_names.iter().copied());
            let _ = key;
            self.issue(
                value.span,
                &path.key(&tag),
                format!("unknown {tag} `{shown}`"),
                help,
            );
            return;
        }

        // Untagged: accepted if any branch accepts it; otherwise report the closest branch.
        let mut best: Option<(usize, Vec<Issue>)> = None;
        for b in &branches {
            let mut sub = Checker {
                root: self.root,
                out: Vec::new(),
            };
            sub.check(node, b, path);
            if sub.out.is_empty() {
                return;
            }
            if !branch_accepts_kind(self, b, &node.value) {
                continue;
            }
            if best.as_ref().is_none_or(|(n, _)| sub.out.len() < *n) {
                best = Some((sub.out.len(), sub.out));
            }
        }
        match best {
            Some((_, issues)) => self.out.extend(issues),
            None => {
                let mut nouns: Vec<&str> = Vec::new();
                for b in &branches {
                    for t in branch_types(self, b) {
                        let noun = type_noun(t);
                        if t != "null" && !nouns.contains(&noun) {
                            nouns.push(noun);
                        }
                    }
                }
                self.issue(
                    node.span,
                    path,
                    format!(
                        "expected {}, found {}",
                        nouns.join(" or "),
                        node.value.noun()
                    ),
                    None,
                );
            }
        }
    }
}

/// The first sentence of a description (a period followed by a capital letter ends it, so
/// "e.g. `x`" does not).
fn first_sentence(s: &str) -> String {
    let s = s.trim();
    let end = s
        .match_indices(". ")
        .find(|(i, _)| s[i + 2..].starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|(i, _)| i);
    match end {
        Some(i) => s[..=i].to_string(),
        None => s.to_string(),
    }
}

/// The constant a schema allows, if it allows exactly one (`const` or a one-item `enum`).
fn single_value(schema: &J) -> Option<&J> {
    if let Some(c) = schema.get("const") {
        return Some(c);
    }
    match schema.get("enum") {
        Some(J::Array(v)) if v.len() == 1 => v.first(),
        _ => None,
    }
}

/// The property every branch fixes to a constant, if there is one (serde's `tag = "kind"`).
fn tag_property(branches: &[&J]) -> Option<String> {
    let first = branches.first()?.get("properties")?.as_object()?;
    first
        .iter()
        .filter(|(_, s)| single_value(s).is_some())
        .map(|(k, _)| k)
        .find(|k| {
            branches.iter().all(|b| {
                b.pointer(&format!("/properties/{k}"))
                    .and_then(single_value)
                    .is_some()
            })
        })
        .cloned()
}

fn branch_types<'a>(c: &Checker<'a>, b: &'a J) -> Vec<&'a str> {
    let b = c.resolve(b);
    match b.get("type") {
        Some(J::String(t)) => vec![t.as_str()],
        Some(J::Array(ts)) => ts.iter().filter_map(J::as_str).collect(),
        _ => {
            if b.get("properties").is_some() {
                vec!["object"]
            } else if let Some(J::Array(subs)) = b
                .get("oneOf")
                .or_else(|| b.get("anyOf"))
                .or_else(|| b.get("allOf"))
            {
                subs.iter().flat_map(|s| branch_types(c, s)).collect()
            } else {
                vec![]
            }
        }
    }
}

fn branch_accepts_kind(c: &Checker<'_>, b: &J, v: &Value) -> bool {
    let types = branch_types(c, b);
    types.is_empty() || types.iter().any(|t| type_matches(t, v))
}

fn type_matches(t: &str, v: &Value) -> bool {
    matches!(
        (t, v),
        ("null", Value::Null)
            | ("boolean", Value::Bool(_))
            | ("integer", Value::Int(_))
            | ("number", Value::Int(_) | Value::Float(_))
            | ("string", Value::Str(_))
            | ("array", Value::Seq(_))
            | ("object", Value::Map(_))
    )
}

fn type_noun(t: &str) -> &'static str {
    match t {
        "null" => "nothing",
        "boolean" => "true or false",
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        "object" => "a mapping",
        _ => "a value",
    }
}

fn equals(node: &Node, v: &J) -> bool {
    match (&node.value, v) {
        (Value::Str(a), J::String(b)) => a == b,
        (Value::Bool(a), J::Bool(b)) => a == b,
        (Value::Int(a), J::Number(b)) => b.as_i64() == Some(*a),
        (Value::Float(a), J::Number(b)) => b.as_f64() == Some(*a),
        (Value::Null, J::Null) => true,
        _ => false,
    }
}

fn display_json(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{FileKind, schema};
    use crate::config::yaml::parse;

    fn issues(kind: FileKind, yaml: &str) -> Vec<String> {
        let root = parse(yaml).root.unwrap();
        check(schema(kind), &root)
            .into_iter()
            .map(|i| {
                format!(
                    "{}:{} {}: {} ({})",
                    i.span.line,
                    i.span.col,
                    i.path,
                    i.message,
                    i.help.unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn unknown_keys_get_suggestions_and_positions() {
        let got = issues(
            FileKind::Deployment,
            "time_zone: UTC\nsorces: {}\nsources:\n  a:\n    provider: x\n    shedule: {}\n",
        );
        assert_eq!(
            got,
            [
                "2:1 sorces: unknown key `sorces` (did you mean `sources`?)",
                "6:5 sources.a.shedule: unknown key `shedule` (did you mean `schedule`?)",
            ]
        );
    }

    #[test]
    fn tagged_unions_pick_the_branch_by_tag() {
        let base = "base_url: https://x.example\nstreams:\n  e:\n    request: {path: /e}\n    records: $.data[*]\n";
        let got = issues(
            FileKind::Provider,
            &format!("{base}auth:\n  kind: bearer\n  tokn: x\n"),
        );
        assert_eq!(
            got,
            [
                "8:3 auth.tokn: unknown key `tokn` (did you mean `token`?)",
                "7:3 auth: missing required key `token` (The token, e.g. `{credentials.api_token}`.)",
            ]
        );
        let got = issues(
            FileKind::Provider,
            &format!("{base}auth: {{kind: baerer}}\n"),
        );
        assert_eq!(
            got,
            ["6:14 auth.kind: unknown kind `baerer` (did you mean `bearer`?)"]
        );
    }

    #[test]
    fn formats_use_the_value_parsers() {
        let got = issues(
            FileKind::Deployment,
            "time_zone: Europe/Berln\nsources:\n  a:\n    provider: x\n    schedule: {every: 4 hourz}\n",
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("1:12 time_zone: unknown time zone"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("5:23 sources.a.schedule.every: `4 hourz` is not a duration"),
            "{got:?}"
        );
    }

    #[test]
    fn literal_secrets_are_refused_without_echoing_them() {
        let got = issues(
            FileKind::Deployment,
            "time_zone: UTC\nsources: {}\nwebhooks:\n  w:\n    url: https://x.example\n    secret: whsec_canary\n    events: ['*']\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("a literal secret is not allowed here"));
        assert!(!got[0].contains("canary"));
    }

    #[test]
    fn untagged_unions_report_the_closest_branch() {
        let got = issues(
            FileKind::Deployment,
            "time_zone: UTC\nsources:\n  a:\n    provider: x\n    credentials:\n      key: {envv: K}\n",
        );
        assert!(
            got.iter()
                .any(|g| g.contains("unknown key `envv` (did you mean `env`?)")),
            "{got:?}"
        );
        let got = issues(
            FileKind::Mapping,
            "provider: p\nstream: s\nfields:\n  work_email: 42\n",
        );
        assert_eq!(
            got,
            ["4:15 fields.work_email: expected a string or a mapping, found an integer ()"]
        );
    }
}
