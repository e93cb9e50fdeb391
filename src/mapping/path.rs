//! JSONPath evaluation for mapping, with a fast path.
//!
//! A sync maps ~100k records × ~20 fields, so the common paths (`$.a.b`, `$.a[0].b`,
//! `$['x y'].z`) are compiled once into a list of steps and evaluated by walking the
//! `serde_json::Value` directly, with no allocation. Anything else (filters, wildcards,
//! slices, negative indexes, recursive descent, escapes in names) goes to
//! [`JsonPath::select`], the one JSONPath implementation. A test checks that both agree on a
//! table of paths and documents.

use serde_json::Value;

use crate::config::value::JsonPath;

/// One step of a simple path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `.name` or `['name']`: a member of an object.
    Key(String),
    /// `[3]`: an element of an array.
    Index(usize),
}

/// A JSONPath ready to evaluate: simple paths as steps, the rest through jsonpath-rust.
#[derive(Debug, Clone)]
pub(crate) enum Path {
    /// Direct navigation.
    Steps(Vec<Step>, JsonPath),
    /// The general evaluator.
    General(JsonPath),
}

impl Path {
    /// Compiles `p`: steps when it is a plain chain of names and indexes.
    pub(crate) fn new(p: &JsonPath) -> Path {
        match simple_steps(p.as_str()) {
            Some(steps) => Path::Steps(steps, p.clone()),
            None => Path::General(p.clone()),
        }
    }

    /// The path as written.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Path::Steps(_, p) | Path::General(p) => p.as_str(),
        }
    }

    /// The first value the path selects.
    pub(crate) fn first<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        match self {
            Path::Steps(steps, _) => walk(steps, doc),
            Path::General(p) => p.first(doc),
        }
    }

    /// Every value the path selects, in document order.
    pub(crate) fn all<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        match self {
            Path::Steps(steps, _) => walk(steps, doc).into_iter().collect(),
            Path::General(p) => p.select(doc),
        }
    }

    /// The steps below which the path reads anything: all of a simple path's; a general
    /// path's leading plain steps (`$.a.b[?@.x].c`: `a`, `b`); none (the whole document)
    /// when it names the root again after its start, as a filter may (`$.a[?@.x == $.y]`).
    pub(crate) fn reach(&self) -> Vec<Step> {
        match self {
            Path::Steps(steps, _) => steps.clone(),
            Path::General(p) if p.as_str().get(1..).is_some_and(|s| s.contains('$')) => Vec::new(),
            Path::General(p) => leading_steps(p.as_str()).0,
        }
    }

    #[cfg(test)]
    fn is_fast(&self) -> bool {
        matches!(self, Path::Steps(..))
    }
}

fn walk<'a>(steps: &[Step], mut at: &'a Value) -> Option<&'a Value> {
    for step in steps {
        at = match (step, at) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(at)
}

/// The steps of `$.a.b`, `$.a[0].b`, `$['x y'].z`; `None` for anything else.
fn simple_steps(s: &str) -> Option<Vec<Step>> {
    match leading_steps(s) {
        (steps, true) => Some(steps),
        (_, false) => None,
    }
}

/// The plain steps a path starts with (names and indexes, as [`simple_steps`] reads them),
/// and whether they are the whole path: `$.a.b[?@.x].c` starts with `a`, `b`.
fn leading_steps(s: &str) -> (Vec<Step>, bool) {
    let mut steps = Vec::new();
    let Some(mut rest) = s.strip_prefix('$') else {
        return (steps, false);
    };
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            // RFC 9535 member-name-shorthand, ASCII only: a letter or `_`, then letters,
            // digits and `_`.
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let name = &r[..end];
            if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                return (steps, false);
            }
            steps.push(Step::Key(name.to_string()));
            rest = &r[end..];
        } else if let Some((step, after)) = rest.strip_prefix('[').and_then(bracketed) {
            steps.push(step);
            rest = after;
        } else {
            return (steps, false);
        }
    }
    (steps, true)
}

/// The step of a bracket (`r` follows its `[`) and what follows its `]`: a quoted name without
/// escapes or a non-negative index without leading zeros; `None` for anything else (an escape
/// or the other quote inside a name goes to the general evaluator, which knows RFC 9535's
/// escaping rules).
fn bracketed(r: &str) -> Option<(Step, &str)> {
    let close = r.find(']')?;
    let inner = &r[..close];
    let step = if let Some(q) = inner.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let name = inner.strip_prefix(q)?.strip_suffix(q)?;
        if name.contains(['\\', '\'', '"']) {
            return None;
        }
        Step::Key(name.to_string())
    } else {
        if inner.is_empty()
            || !inner.bytes().all(|b| b.is_ascii_digit())
            || (inner.len() > 1 && inner.starts_with('0'))
        {
            return None;
        }
        Step::Index(inner.parse().ok()?)
    };
    Some((step, &r[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(s: &str) -> Path {
        Path::new(&JsonPath::parse(s).unwrap())
    }

    #[test]
    fn simple_paths_take_the_fast_path() {
        for s in [
            "$",
            "$.a",
            "$.a.b",
            "$._id",
            "$.a[0].b",
            "$.a[10]",
            "$['x y'].z",
            "$[\"x\"]",
            "$.attributes.first_name.value",
        ] {
            assert!(compile(s).is_fast(), "{s}");
        }
        for s in [
            "$.a[*]",
            "$..a",
            "$.a[-1]",
            "$.a[0:2]",
            "$.a[?@.type == 'WORK'].address",
            "$['it\\'s']",
            "$.a['b','c']",
            "$[ 0 ]",
        ] {
            assert!(!compile(s).is_fast(), "{s}");
        }
    }

    /// The fast path and jsonpath-rust select the same first value on every path of the
    /// table, against documents that exercise missing keys, wrong types, nulls and
    /// out-of-range indexes.
    #[test]
    fn fast_path_and_general_evaluator_agree() {
        let docs = [
            json!({
                "a": {"b": 1, "c": null, "d": [10, {"e": "x"}], "x y": {"z": true}},
                "_id": "id-1",
                "list": [{"b": "first"}, {"b": "second"}],
                "x y": {"z": "spaced"},
                "x": "dq",
                "n": 0,
                "s": ""
            }),
            json!({"a": [1, 2, 3], "list": {"0": "object, not array"}, "x y": null}),
            json!([{"a": 1}, {"a": 2}]),
            json!("scalar"),
            json!(null),
        ];
        let paths = [
            "$",
            "$.a",
            "$.a.b",
            "$.a.c",
            "$.a.missing",
            "$.a.d[0]",
            "$.a.d[1].e",
            "$.a.d[2]",
            "$.a.d[1].e.f",
            "$.a[0]",
            "$.a[2]",
            "$.a['x y'].z",
            "$['x y'].z",
            "$[\"x\"]",
            "$.x",
            "$._id",
            "$.list[0].b",
            "$.list[1].b",
            // A member of an array selects nothing (RFC 9535), in both: the parse for
            // mapping (`parse.rs`) empties an array no path indexes.
            "$.list.b",
            "$.list[0]",
            "$[0].a",
            "$[1]",
            "$.n",
            "$.s",
            "$.s.t",
        ];
        for doc in &docs {
            for p in paths {
                let fast = compile(p);
                assert!(fast.is_fast(), "{p}");
                let general = JsonPath::parse(p).unwrap();
                assert_eq!(fast.first(doc), general.first(doc), "path {p} on {doc}");
                assert_eq!(fast.all(doc), general.select(doc), "path {p} on {doc}");
            }
        }
    }

    #[test]
    fn general_paths_select_through_jsonpath() {
        let doc = json!({"emails": [
            {"type": "PERSONAL", "address": "p@x.example"},
            {"type": "WORK", "address": "w@x.example"}
        ]});
        let p = compile("$.emails[?@.type == 'WORK'].address");
        assert_eq!(p.first(&doc), Some(&json!("w@x.example")));
        assert_eq!(compile("$.emails[*].type").all(&doc).len(), 2);
        assert_eq!(
            compile("$.emails[-1].type").first(&doc),
            Some(&json!("WORK"))
        );
    }
}
