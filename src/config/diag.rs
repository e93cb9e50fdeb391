//! Config diagnostics: what is wrong, where (`file:line:col` and key path), how to fix it.
//!
//! Every stage of the config pipeline adds to one [`Diagnostics`] collection instead of
//! returning early, so `roster validate` reports every problem at once, sorted by position.
//! A diagnostic never carries a secret value: messages name keys, not literals at secret
//! positions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::yaml::{Node, Span, Value};

/// One step of a key path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Where a value sits in its file, e.g. `sources.personio.schedule.every`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// The empty path (the document root).
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path with a key appended.
    pub fn key(&self, k: impl Into<String>) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.into()));
        p
    }

    /// This path with an index appended.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// Builds a path from dotted keys (no indexes), for tests and fixed paths.
    pub fn of(keys: &[&str]) -> KeyPath {
        KeyPath(keys.iter().map(|k| Seg::Key((*k).to_string())).collect())
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Index(i) => write!(f, "[{i}]")?,
                Seg::Key(k) => {
                    let plain = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
                    match (first, plain) {
                        (true, true) => write!(f, "{k}")?,
                        (false, true) => write!(f, ".{k}")?,
                        (_, false) => write!(f, "[{k:?}]")?,
                    }
                }
            }
            first = false;
        }
        Ok(())
    }
}

/// How serious a diagnostic is. Only errors make a config invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config is invalid.
    Error,
    /// Worth fixing; the config still loads.
    Warning,
}

/// One located problem in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file, as shown to the user.
    pub file: Arc<str>,
    /// Line and column.
    pub span: Span,
    /// The key path of the offending value (empty for file-level problems).
    pub path: KeyPath,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: ",
            self.file, self.span.line, self.span.col
        )?;
        if !self.path.0.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// A collection of diagnostics, filled by every stage of the pipeline.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// True when any error (not warning) was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// All diagnostics, sorted by file, position, then message; exact repeats removed.
    pub fn sorted(&self) -> Vec<Diagnostic> {
        let mut items = self.items.clone();
        items.sort_by(|a, b| {
            (&a.file, a.span, &a.message, &a.path).cmp(&(&b.file, b.span, &b.message, &b.path))
        });
        items.dedup();
        items
    }

    /// Renders one per line, sorted.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in self.sorted() {
            out.push_str(&d.to_string());
            out.push('\n');
        }
        out
    }
}

/// A parsed file plus what is needed to turn key paths into positions.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown in diagnostics.
    pub display: Arc<str>,
    /// Where the file was read from (`None` for the built-in catalog).
    pub path: Option<PathBuf>,
    /// The parsed tree.
    pub root: Node,
}

impl SourceFile {
    /// Creates one.
    pub fn new(display: &str, path: Option<&Path>, root: Node) -> SourceFile {
        SourceFile {
            display: Arc::from(display),
            path: path.map(Path::to_path_buf),
            root,
        }
    }

    /// The position of the value at `path`, or of the deepest ancestor that exists (a missing
    /// key is reported where its parent is).
    pub fn span_of(&self, path: &KeyPath) -> Span {
        self.locate(path, false)
    }

    /// The position of the key at the end of `path` (for "unknown key" style errors); the
    /// value's position for list items.
    pub fn key_span_of(&self, path: &KeyPath) -> Span {
        self.locate(path, true)
    }

    fn locate(&self, path: &KeyPath, want_key: bool) -> Span {
        let mut node = &self.root;
        let last = path.0.len().saturating_sub(1);
        for (i, seg) in path.0.iter().enumerate() {
            let next = match (seg, &node.value) {
                (Seg::Key(k), Value::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| &key.name == k)
                    .map(|(key, v)| {
                        if want_key && i == last {
                            (key.span, v)
                        } else {
                            (v.span, v)
                        }
                    }),
                (Seg::Index(ix), Value::Seq(items)) => items.get(*ix).map(|v| (v.span, v)),
                _ => None,
            };
            match next {
                Some((span, child)) => {
                    if i == last {
                        return span;
                    }
                    node = child;
                }
                None => return node.span,
            }
        }
        node.span
    }

    /// An error at the value at `path`.
    pub fn error(
        &self,
        path: &KeyPath,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.display.clone(),
            span: self.span_of(path),
            path: path.clone(),
            severity: Severity::Error,
            message: message.into(),
            help,
        }
    }

    /// An error at the key at the end of `path`.
    pub fn key_error(
        &self,
        path: &KeyPath,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            span: self.key_span_of(path),
            ..self.error(path, message, help)
        }
    }
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `help` text for a typo: "did you mean `x`?", or the list of valid choices when short.
pub fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<String> {
    if let Some(best) = did_you_mean(word, candidates.clone()) {
        return Some(format!("did you mean `{best}`?"));
    }
    let all: Vec<&str> = candidates.into_iter().collect();
    if all.is_empty() {
        None
    } else if all.len() <= 12 {
        Some(format!("expected one of {}", quote_list(&all)))
    } else {
        None
    }
}

/// `a`, `b` or `c`.
pub fn quote_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;

    #[test]
    fn key_paths_render_like_the_yaml_they_point_at() {
        let p = KeyPath::of(&["sources", "personio"])
            .key("fields")
            .index(2)
            .key("X-Api-Key");
        assert_eq!(p.to_string(), "sources.personio.fields[2].X-Api-Key");
        assert_eq!(
            KeyPath::of(&["headers", "a b"]).to_string(),
            "headers[\"a b\"]"
        );
    }

    #[test]
    fn spans_fall_back_to_the_nearest_existing_parent() {
        let file = SourceFile::new(
            "r.yaml",
            None,
            parse("a:\n  b: 1\n  c: [x, y]\n").root.unwrap(),
        );
        assert_eq!(
            file.span_of(&KeyPath::of(&["a", "b"])),
            Span { line: 2, col: 6 }
        );
        assert_eq!(
            file.key_span_of(&KeyPath::of(&["a", "b"])),
            Span { line: 2, col: 3 }
        );
        assert_eq!(
            file.span_of(&KeyPath::of(&["a", "c"]).index(1)),
            Span { line: 3, col: 10 }
        );
        assert_eq!(
            file.span_of(&KeyPath::of(&["a", "zzz"])),
            Span { line: 2, col: 3 }
        );
    }

    #[test]
    fn suggestions_catch_typos_but_not_unrelated_words() {
        assert_eq!(did_you_mean("fliter", ["filter", "fields"]), Some("filter"));
        assert_eq!(
            did_you_mean("personoi", ["personio", "kenjo"]),
            Some("personio")
        );
        assert_eq!(did_you_mean("zzz", ["filter", "fields"]), None);
        assert_eq!(
            suggest("zzz", ["a", "b"]).unwrap(),
            "expected one of `a` or `b`"
        );
    }
}
