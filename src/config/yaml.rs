//! Spanned YAML: parse a config file into a tree where every node knows its line and column.
//!
//! `serde_yaml` decodes typed values but forgets positions, and it stops at the first error.
//! Config errors must point at `file:line:col` and be reported all at once, so the pipeline
//! first parses into this [`Node`] tree (with `yaml-rust2`'s event parser, which reports
//! positions), checks the tree against the JSON Schema, and only then decodes it with serde.
//!
//! The parser is hardened against hostile input, since config arrives through pull requests:
//! nesting depth, the number of nodes (counting every alias expansion, so a "billion laughs"
//! alias bomb is refused after a few thousand nodes, not after gigabytes) and the input size
//! are all bounded. The event parser is iterative, so deep nesting cannot overflow the stack.
//!
//! Scalars are resolved with the YAML 1.2 core schema (as `serde_yaml` does): `on`, `yes` and
//! `09:00` are strings, not booleans or sexagesimal numbers.
//!
//! Not here: what the keys mean (that is the schema's and the compiler's business).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Largest config file accepted, in bytes. Real files are a few KiB; a provider spec with
/// every comment is under 100 KiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one file may produce, alias expansions included.
pub const MAX_NODES: usize = 200_000;

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub col: u32,
}

impl Span {
    fn from_marker(m: &Marker) -> Span {
        // yaml-rust2 reports 1-based lines and 0-based columns.
        Span {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            col: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A mapping key as written, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where the key starts.
    pub span: Span,
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts (for a block mapping, its first key).
    pub span: Span,
    /// The value.
    pub value: Value,
}

/// A YAML value (1.2 core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string (plain, quoted or block).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in the order written.
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// The kind with an article, for messages: "a string", "an integer", "nothing".
    pub fn noun(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The JSON-Schema type name of this value, as used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}

impl Node {
    /// The string value, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<(&Key, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, v)| (k, v))
    }

    /// Converts to a `serde_yaml::Value` for typed decoding.
    pub fn to_serde(&self) -> serde_yaml::Value {
        use serde_yaml::Value as Y;
        match &self.value {
            Value::Null => Y::Null,
            Value::Bool(b) => Y::Bool(*b),
            Value::Int(i) => Y::Number((*i).into()),
            Value::Float(f) => Y::Number((*f).into()),
            Value::Str(s) => Y::String(s.clone()),
            Value::Seq(items) => Y::Sequence(items.iter().map(Node::to_serde).collect()),
            Value::Map(entries) => Y::Mapping(
                entries
                    .iter()
                    .map(|(k, v)| (Y::String(k.name.clone()), v.to_serde()))
                    .collect(),
            ),
        }
    }

    /// Converts to a `serde_json::Value` (for validating against the JSON Schema with other tools).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A problem found while parsing. `fatal` problems mean no tree was produced.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlProblem {
    /// Where.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// The result of parsing one file: the tree (absent when parsing failed) and every problem.
#[derive(Debug)]
pub struct Parsed {
    /// The document, or `None` when a fatal problem stopped the parse.
    pub root: Option<Node>,
    /// Problems, fatal or not (duplicate keys do not stop the parse).
    pub problems: Vec<YamlProblem>,
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        nodes_at_start: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        nodes_at_start: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        first_seen: HashMap<String, Span>,
    },
}

/// Parses one YAML document.
///
/// An empty document is `Null`. Several documents in one file are an error: each config file
/// holds exactly one.
pub fn parse(text: &str) -> Parsed {
    let mut problems = Vec::new();
    if text.len() as u64 > MAX_FILE_BYTES {
        problems.push(too_large(text.len() as u64));
        return Parsed {
            root: None,
            problems,
        };
    }
    let root = match Builder::default().run(text, &mut problems) {
        Ok(root) => Some(root),
        Err(p) => {
            problems.push(p);
            None
        }
    };
    Parsed { root, problems }
}

/// The problem reported for a file over [`MAX_FILE_BYTES`].
pub fn too_large(len: u64) -> YamlProblem {
    YamlProblem {
        span: Span { line: 1, col: 1 },
        message: format!(
            "file is {:.1} MiB; config files are limited to {} MiB",
            len as f64 / (1024.0 * 1024.0),
            MAX_FILE_BYTES / (1024 * 1024)
        ),
        help: Some(
            "a config file this large is almost certainly not a config file; check the path".into(),
        ),
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes by anchor id, with how many nodes each expands to.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    documents: usize,
    root: Option<Node>,
}

impl Builder {
    fn run(mut self, text: &str, problems: &mut Vec<YamlProblem>) -> Result<Node, YamlProblem> {
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, marker) = parser.next_token().map_err(|e| {
                if e.info().contains("recursion limit") {
                    // The scanner's own guard, hit by deep flow nesting (`[[[[...`).
                    return depth_problem(Span::from_marker(e.marker()));
                }
                YamlProblem {
                    span: Span::from_marker(e.marker()),
                    message: format!("invalid YAML: {}", e.info()),
                    help: Some(syntax_help(e.info())),
                }
            })?;
            let span = Span::from_marker(&marker);
            match event {
                Event::StreamEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
                Event::DocumentStart => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(YamlProblem {
                            span,
                            message: "more than one YAML document in this file".into(),
                            help: Some("a config file holds one document; remove the `---` separator or split the file".into()),
                        });
                    }
                }
                Event::Alias(id) => {
                    let Some((node, size)) = self.anchors.get(&id) else {
                        return Err(YamlProblem {
                            span,
                            message: "alias refers to an unknown anchor".into(),
                            help: Some(
                                "define the anchor (`&name`) before using it (`*name`)".into(),
                            ),
                        });
                    };
                    let (node, size) = (node.clone(), *size);
                    self.count(size, span)?;
                    self.push_node(node, 0, problems);
                }
                Event::Scalar(text, style, anchor, tag) => {
                    self.count(1, span)?;
                    let value = resolve_scalar(text, style, tag.as_ref(), span)?;
                    self.push_node(Node { span, value }, anchor, problems);
                }
                Event::SequenceStart(anchor, tag) => {
                    reject_tag(tag.as_ref(), span)?;
                    self.open(span)?;
                    self.stack.push(Frame::Seq {
                        span,
                        anchor,
                        nodes_at_start: self.nodes,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, tag) => {
                    reject_tag(tag.as_ref(), span)?;
                    self.open(span)?;
                    self.stack.push(Frame::Map {
                        span,
                        anchor,
                        nodes_at_start: self.nodes,
                        entries: Vec::new(),
                        pending_key: None,
                        first_seen: HashMap::new(),
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let frame = self
                        .stack
                        .pop()
                        .expect("parser balances start and end events");
                    let (node, anchor, nodes_at_start) = match frame {
                        Frame::Seq {
                            span,
                            anchor,
                            nodes_at_start,
                            items,
                        } => (
                            Node {
                                span,
                                value: Value::Seq(items),
                            },
                            anchor,
                            nodes_at_start,
                        ),
                        Frame::Map {
                            span,
                            anchor,
                            nodes_at_start,
                            entries,
                            ..
                        } => {
                            // A block mapping starts at its first key, which is where people look.
                            let span = entries.first().map_or(span, |(k, _)| k.span);
                            (
                                Node {
                                    span,
                                    value: Value::Map(entries),
                                },
                                anchor,
                                nodes_at_start,
                            )
                        }
                    };
                    if anchor != 0 {
                        let size = self.nodes - nodes_at_start + 1;
                        self.anchors.insert(anchor, (node.clone(), size));
                    }
                    self.push_node(node, 0, problems);
                }
            }
        }
        Ok(self.root.unwrap_or(Node {
            span: Span { line: 1, col: 1 },
            value: Value::Null,
        }))
    }

    fn open(&mut self, span: Span) -> Result<(), YamlProblem> {
        self.count(1, span)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(depth_problem(span));
        }
        Ok(())
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), YamlProblem> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlProblem {
                span,
                message: format!(
                    "document expands to more than {MAX_NODES} values (aliases included)"
                ),
                help: Some(
                    "this looks like an alias bomb; write the values out or use fewer nested aliases"
                        .into(),
                ),
            });
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node, anchor: usize, problems: &mut Vec<YamlProblem>) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), 1));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                first_seen,
                ..
            }) => match pending_key.take() {
                None => {
                    let name = match node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null => "null".to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            problems.push(YamlProblem {
                                span: node.span,
                                message: "a key must be a plain value, not a list or mapping"
                                    .into(),
                                help: None,
                            });
                            String::from("<complex key>")
                        }
                    };
                    *pending_key = Some(Key {
                        name,
                        span: node.span,
                    });
                }
                Some(key) => {
                    if key.name == "<<" {
                        problems.push(YamlProblem {
                            span: key.span,
                            message: "YAML merge keys (`<<`) are not supported".into(),
                            help: Some("write the keys out; Roster reads plain YAML 1.2".into()),
                        });
                    } else if let Some(first) = first_seen.get(&key.name) {
                        problems.push(YamlProblem {
                            span: key.span,
                            message: format!("duplicate key `{}`", key.name),
                            help: Some(format!(
                                "`{}` is already defined at line {}; keep one (the first one is used)",
                                key.name, first.line
                            )),
                        });
                    } else {
                        first_seen.insert(key.name.clone(), key.span);
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

fn depth_problem(span: Span) -> YamlProblem {
    YamlProblem {
        span,
        message: format!("nesting is deeper than {MAX_DEPTH} levels"),
        help: Some("no Roster config nests this deep; flatten the structure".into()),
    }
}

/// True for the core schema's `!!map`, `!!seq` and `!!str` (the parser expands `!!`).
fn is_core_tag(tag: &Tag, suffixes: &[&str]) -> bool {
    (tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:")
        && suffixes.contains(&tag.suffix.as_str())
}

fn reject_tag(tag: Option<&Tag>, span: Span) -> Result<(), YamlProblem> {
    match tag {
        None => Ok(()),
        Some(t) if is_core_tag(t, &["map", "seq"]) => Ok(()),
        Some(t) => Err(tag_problem(t, span)),
    }
}

fn tag_problem(tag: &Tag, span: Span) -> YamlProblem {
    YamlProblem {
        span,
        message: format!("YAML tag `{}{}` is not supported", tag.handle, tag.suffix),
        help: Some(
            "secrets are written `{env: NAME}`, `{file: PATH}` or `{credential: NAME}`; other values need no tag"
                .into(),
        ),
    }
}

fn syntax_help(info: &str) -> String {
    if info.contains("tab") {
        "YAML indents with spaces, never tabs".into()
    } else if info.contains("mapping values are not allowed") {
        "a value containing `: ` must be quoted, or a key is indented wrongly".into()
    } else if info.contains("did not find expected") {
        "check the indentation and that every bracket and quote is closed".into()
    } else {
        "check the YAML syntax at this position".into()
    }
}

fn resolve_scalar(
    text: String,
    style: TScalarStyle,
    tag: Option<&Tag>,
    span: Span,
) -> Result<Value, YamlProblem> {
    if let Some(tag) = tag {
        if is_core_tag(tag, &["str"]) {
            return Ok(Value::Str(text));
        }
        return Err(tag_problem(tag, span));
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::Str(text));
    }
    Ok(match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Value::Float(f64::NAN),
        s => parse_number(s).unwrap_or(Value::Str(text)),
    })
}

fn parse_number(s: &str) -> Option<Value> {
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Value::Int);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Value::Int);
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(Value::Int);
    }
    // YAML 1.2 core float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    if mantissa_ok && exponent_ok {
        s.parse::<f64>().ok().map(Value::Float)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let parsed = parse(text);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        parsed.root.unwrap()
    }

    fn first_problem(text: &str) -> YamlProblem {
        parse(text).problems.into_iter().next().expect("a problem")
    }

    #[test]
    fn scalars_follow_yaml_1_2_core_schema() {
        let check = |text: &str, want: Value| {
            let node = root(&format!("k: {text}"));
            assert_eq!(node.get("k").unwrap().1.value, want, "for {text}");
        };
        check("on", Value::Str("on".into()));
        check("yes", Value::Str("yes".into()));
        check("09:00", Value::Str("09:00".into()));
        check("true", Value::Bool(true));
        check("~", Value::Null);
        check("", Value::Null);
        check("42", Value::Int(42));
        check("-7", Value::Int(-7));
        check("0x1F", Value::Int(31));
        check("0.25", Value::Float(0.25));
        check("1e3", Value::Float(1000.0));
        check("'42'", Value::Str("42".into()));
        check("4h", Value::Str("4h".into()));
        check("-7d", Value::Str("-7d".into()));
        check("1.2.3", Value::Str("1.2.3".into()));
        check("!!str 12", Value::Str("12".into()));
    }

    #[test]
    fn spans_are_one_based_and_point_at_keys_and_values() {
        let node = root("a: 1\nsources:\n  personio:\n    provider: x\n");
        let (key, sources) = node.get("sources").unwrap();
        assert_eq!(key.span, Span { line: 2, col: 1 });
        let (key, p) = sources.get("personio").unwrap();
        assert_eq!(key.span, Span { line: 3, col: 3 });
        let (key, v) = p.get("provider").unwrap();
        assert_eq!(key.span, Span { line: 4, col: 5 });
        assert_eq!(v.span, Span { line: 4, col: 15 });
    }

    #[test]
    fn duplicate_keys_are_reported_and_the_first_kept() {
        let parsed = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].span, Span { line: 3, col: 1 });
        assert!(parsed.problems[0].message.contains("duplicate key `a`"));
        assert_eq!(
            parsed.root.unwrap().get("a").unwrap().1.value,
            Value::Int(1)
        );
    }

    #[test]
    fn aliases_expand_and_bombs_are_refused() {
        let node = root("base: &b {x: 1}\ncopy: *b\n");
        assert_eq!(
            node.get("copy").unwrap().1.get("x").unwrap().1.value,
            Value::Int(1)
        );

        let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 9].join(", ")));
        }
        let p = first_problem(&bomb);
        assert!(p.message.contains("expands to more than"), "{p:?}");
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let p = first_problem(&deep);
        assert!(p.message.contains("deeper than 64"), "{p:?}");
        let deep_block: String = (0..1_500)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        let p = first_problem(&deep_block);
        assert!(p.message.contains("deeper than 64"), "{p:?}");
    }

    #[test]
    fn syntax_errors_are_located_with_help() {
        let p = first_problem("a:\n\tb: 1\n");
        assert_eq!(p.span.line, 2);
        assert!(p.help.unwrap().contains("tabs"));
        let p = first_problem("a: [1, 2\n");
        assert!(p.message.starts_with("invalid YAML"), "{p:?}");
    }

    #[test]
    fn tags_merge_keys_and_multiple_documents_are_refused() {
        assert!(
            first_problem("k: !env FOO\n")
                .message
                .contains("tag `!env`")
        );
        assert!(
            first_problem("a: &a {x: 1}\nb:\n  <<: *a\n")
                .message
                .contains("merge keys")
        );
        assert!(
            first_problem("a: 1\n---\nb: 2\n")
                .message
                .contains("more than one")
        );
    }
}
