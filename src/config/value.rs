//! Typed config values that parse themselves: durations, offsets, JSONPath, templates, cron,
//! time zones, URLs, times of day, ratios, names, memory and data sizes.
//!
//! Each type has one `parse` function. Serde calls it when decoding, and the schema checker
//! calls it (through [`check_format`]) to report a located error first. The JSON Schema names
//! the type in `format` (`roster-duration`, ...), which editors ignore and Roster enforces.
//! One parser, two callers: what `validate` accepts is exactly what the daemon decodes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value did not parse, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl ValueError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> ValueError {
        ValueError {
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.help {
            write!(f, " (help: {h})")?;
        }
        Ok(())
    }
}

/// Declares a string-backed value type: serde via `parse`, schema with a `format`.
macro_rules! string_value {
    ($ty:ident, $format:literal, $desc:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $ty::parse(&s).map_err(|e| serde::de::Error::custom(e))
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "format": $format, "description": $desc })
            }
            fn inline_schema() -> bool {
                true
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Runs the parser behind a schema `format`. `None` when the format is not Roster's own
/// (schemars emits a few standard ones, such as `uint32`, that need no check).
pub fn check_format(format: &str, s: &str) -> Option<Result<(), ValueError>> {
    let r = match format {
        "roster-duration" => Duration::parse(s).map(drop),
        "roster-offset" => Offset::parse(s).map(drop),
        "roster-jsonpath" => JsonPath::parse(s).map(drop),
        "roster-template" => Template::parse(s).map(drop),
        "roster-url-template" => UrlTemplate::parse(s).map(drop),
        "roster-url" => HttpUrl::parse(s).map(drop),
        "roster-cron" => CronExpr::parse(s).map(drop),
        "roster-time-zone" => TimeZoneName::parse(s).map(drop),
        "roster-time-of-day" => TimeOfDay::parse(s).map(drop),
        "roster-name" => Name::parse(s).map(drop),
        "roster-ratio" => Ratio::parse_str(s).map(drop),
        "roster-byte-size" => ByteSize::parse(s).map(drop),
        "roster-data-size" => DataSize::parse(s).map(drop),
        _ => return None,
    };
    Some(r)
}

// ---------------------------------------------------------------------------------------------

/// An amount of memory: `48MB`, `256MiB`, `1GB` (KB, MB, GB are powers of 1000; KiB, MiB, GiB
/// of 1024). At least 16 MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteSize(Amount);

impl ByteSize {
    /// Parses `48MB`, `256 MiB`, `1GB`.
    pub fn parse(s: &str) -> Result<ByteSize, ValueError> {
        Amount::parse(
            s,
            "memory",
            "write a number and a unit, e.g. `48MB`, `256MB` or `1GB`",
            (
                16 << 20,
                "is too little memory for DuckDB",
                "use at least `16MiB`",
            ),
        )
        .map(ByteSize)
    }

    /// The amount in bytes.
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
}
string_value!(
    ByteSize,
    "roster-byte-size",
    "An amount of memory such as `48MB`, `256MiB` or `1GB`."
);

/// An amount of data, such as a size limit: `8KiB`, `64KB`, `1MiB` (KB, MB, GB are powers of
/// 1000; KiB, MiB, GiB of 1024). More than zero. Memory has its own type, [`ByteSize`], because
/// DuckDB needs a minimum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSize(Amount);

impl DataSize {
    /// Parses `8KiB`, `64 KB`, `1MiB`.
    pub fn parse(s: &str) -> Result<DataSize, ValueError> {
        Amount::parse(
            s,
            "data",
            "write a number and a unit, e.g. `8KiB`, `64KB` or `1MiB`",
            (1, "is zero bytes", "give a size above zero, e.g. `8KiB`"),
        )
        .map(DataSize)
    }

    /// The amount in bytes.
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
}
string_value!(
    DataSize,
    "roster-data-size",
    "An amount of data such as `8KiB`, `64KB` or `1MiB`."
);

/// An amount of bytes as written: what [`ByteSize`] and [`DataSize`] hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Amount {
    text: String,
    bytes: u64,
}

impl Amount {
    /// A number and a unit (KB, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024). `of` names
    /// what is measured in messages (`memory`), `help` shows examples; below `min.0` bytes is
    /// an error with message `min.1` and help `min.2`.
    fn parse(s: &str, of: &str, help: &str, min: (u64, &str, &str)) -> Result<Amount, ValueError> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| ValueError::new(format!("`{s}` is not an amount of {of}"), help))?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "" => return Err(ValueError::new(format!("`{s}` has no unit"), help)),
            other => {
                return Err(ValueError::new(
                    format!("`{other}` is not a unit of {of}"),
                    "use KB, MB, GB, KiB, MiB or GiB",
                ));
            }
        };
        let bytes = (number * scale as f64) as u64;
        let (least, message, fix) = min;
        if bytes < least {
            return Err(ValueError::new(format!("`{s}` {message}"), fix));
        }
        Ok(Amount {
            text: s.to_string(),
            bytes,
        })
    }
}

/// A non-negative length of time: `30s`, `10m`, `4h`, `1h30m`, `7d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: StdDuration,
}

impl Duration {
    /// Parses `4h`, `1h30m`, `7d` (a day is 24 hours here) or ISO 8601 `PT4H`.
    pub fn parse(s: &str) -> Result<Duration, ValueError> {
        let d = parse_signed_duration(s)?;
        if d.is_negative() {
            return Err(ValueError::new(
                format!("`{s}` is negative; a duration must be zero or more"),
                "write it without the sign, e.g. `7d`",
            ));
        }
        Ok(Duration {
            text: s.to_string(),
            value: d.unsigned_abs(),
        })
    }

    /// The duration.
    pub fn get(&self) -> StdDuration {
        self.value
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
string_value!(
    Duration,
    "roster-duration",
    "A duration such as `30s`, `10m`, `4h`, `1h30m` or `7d`."
);

/// A signed offset from a date: `-7d` fires a week before, `1d` a day after, `0d` on the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    text: String,
    value: jiff::SignedDuration,
}

impl Offset {
    /// Parses `-7d`, `+1d`, `0d`, `-2h`.
    pub fn parse(s: &str) -> Result<Offset, ValueError> {
        Ok(Offset {
            text: s.to_string(),
            value: parse_signed_duration(s)?,
        })
    }

    /// The offset.
    pub fn get(&self) -> jiff::SignedDuration {
        self.value
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
string_value!(
    Offset,
    "roster-offset",
    "A signed offset such as `-7d` (a week before), `0d` or `1d` (a day after)."
);

fn parse_signed_duration(s: &str) -> Result<jiff::SignedDuration, ValueError> {
    let help = "write a number with a unit: `30s`, `10m`, `4h`, `1h30m`, `7d`";
    let t = s.trim();
    if t.is_empty() {
        return Err(ValueError::new("empty duration", help));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::new(format!("`{s}` has no unit"), help));
    }
    // `+1d` is a natural way to write a positive offset; jiff's friendly format has no `+`.
    let t = t.strip_prefix('+').unwrap_or(t);
    let span: jiff::Span = t
        .parse()
        .map_err(|_| ValueError::new(format!("`{s}` is not a duration"), help))?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| {
            ValueError::new(
                format!("`{s}` uses months or years, which have no fixed length"),
                "use days or weeks, e.g. `30d`",
            )
        })
}

// ---------------------------------------------------------------------------------------------

/// A compiled JSONPath (RFC 9535) such as `$.data[*]` or `$.attributes.email.value`.
#[derive(Clone)]
pub struct JsonPath {
    text: String,
    query: Arc<jsonpath_rust::parser::model::JpQuery>,
}

impl JsonPath {
    /// Compiles a JSONPath.
    pub fn parse(s: &str) -> Result<JsonPath, ValueError> {
        if !s.starts_with('$') {
            return Err(ValueError::new(
                format!("JSONPath `{s}` must start with `$`"),
                format!("write `$.{}`", s.trim_start_matches('.')),
            ));
        }
        match jsonpath_rust::parser::parse_json_path(s) {
            Ok(q) => Ok(JsonPath {
                text: s.to_string(),
                query: Arc::new(q),
            }),
            Err(jsonpath_rust::parser::errors::JsonPathError::PestError(e)) => {
                let at = match e.line_col {
                    pest::error::LineColLocation::Pos((_, c))
                    | pest::error::LineColLocation::Span((_, c), _) => c,
                };
                Err(ValueError::new(
                    format!("invalid JSONPath `{s}`: syntax error at character {at}"),
                    "JSONPath looks like `$.data[*]`, `$.attributes.email.value` or `$.items[?@.active == true]`",
                ))
            }
            Err(e) => Err(ValueError::new(
                format!("invalid JSONPath `{s}`: {e}"),
                "JSONPath looks like `$.data[*]` or `$.attributes.email.value`",
            )),
        }
    }

    /// The compiled query.
    pub fn query(&self) -> &jsonpath_rust::parser::model::JpQuery {
        &self.query
    }

    /// Every value the path selects in `doc`, in document order.
    pub fn select<'a>(&self, doc: &'a serde_json::Value) -> Vec<&'a serde_json::Value> {
        match jsonpath_rust::query::js_path_process(&self.query, doc) {
            Ok(refs) => refs.into_iter().map(|r| r.val()).collect(),
            // Only a path that computes a new value (not a reference) errors; a compiled
            // selector path never does. Treat it as selecting nothing.
            Err(_) => Vec::new(),
        }
    }

    /// Takes the selected values out of `doc` without copying, when the path is a plain
    /// `$.a.b[*]` (the usual record selector); other paths select and clone. `doc` is left
    /// with an empty list where the records were.
    pub fn take_all(&self, doc: &mut serde_json::Value) -> Vec<serde_json::Value> {
        if let Some(fields) = self.plain_list() {
            let pointer: String = fields.iter().map(|f| format!("/{f}")).collect();
            return match doc.pointer_mut(&pointer) {
                Some(serde_json::Value::Array(items)) => std::mem::take(items),
                Some(serde_json::Value::Object(map)) => {
                    std::mem::take(map).into_iter().map(|(_, v)| v).collect()
                }
                _ => Vec::new(),
            };
        }
        self.select(doc).into_iter().cloned().collect()
    }

    /// For a plain `$.a.b[*]` (or `$[*]`): the member names leading to the list, `["a", "b"]`
    /// (none for `$[*]`). None for any other path.
    pub fn plain_list(&self) -> Option<Vec<&str>> {
        let mid = self.text.strip_prefix('$')?.strip_suffix("[*]")?;
        Self::plain_members(mid)
    }

    /// For a plain `$.a.b`: the member names, `["a", "b"]`. None for any other path (`$`
    /// itself included).
    pub fn plain_member(&self) -> Option<Vec<&str>> {
        Self::plain_members(self.text.strip_prefix('$')?).filter(|m| !m.is_empty())
    }

    /// `.a.b` as `["a", "b"]`, when each name is letters, digits or `_`.
    fn plain_members(dotted: &str) -> Option<Vec<&str>> {
        if dotted.is_empty() {
            return Some(Vec::new());
        }
        let names: Vec<&str> = dotted.strip_prefix('.')?.split('.').collect();
        names
            .iter()
            .all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then_some(names)
    }

    /// The first value the path selects, if any.
    pub fn first<'a>(&self, doc: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        self.select(doc).into_iter().next()
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPath({:?})", self.text)
    }
}

impl PartialEq for JsonPath {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
string_value!(
    JsonPath,
    "roster-jsonpath",
    "A JSONPath (RFC 9535) such as `$.data[*]` or `$.attributes.email.value`."
);

// ---------------------------------------------------------------------------------------------

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is.
    Text(String),
    /// A `{placeholder}`: a dotted name such as `credentials.api_key` or `first_name`.
    Var(String),
}

/// Text with `{placeholders}`: `Bearer {credentials.token}`, `{first_name} {last_name}`.
/// `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses a template.
    pub fn parse(s: &str) -> Result<Template, ValueError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &s[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(ValueError::new(
                            format!("unclosed `{{` at character {} in `{s}`", i + 1),
                            "close the placeholder with `}`, or write `{{` for a literal brace",
                        ));
                    };
                    let name = rest[..end].trim();
                    if name.is_empty()
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                    {
                        return Err(ValueError::new(
                            format!("invalid placeholder `{{{}}}` in `{s}`", &rest[..end]),
                            "a placeholder is a dotted name such as `{credentials.api_key}` or `{first_name}`",
                        ));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(name.to_string()));
                    for _ in 0..=rest[..end].chars().count() {
                        chars.next();
                    }
                }
                '}' => {
                    return Err(ValueError::new(
                        format!("unmatched `}}` at character {} in `{s}`", i + 1),
                        "write `}}` for a literal brace",
                    ));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            text: s.to_string(),
            pieces,
        })
    }

    /// The pieces in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The placeholder names in order.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Fills the placeholders; `None` if `lookup` does not know one.
    pub fn render(&self, mut lookup: impl FnMut(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&lookup(v)?),
            }
        }
        Some(out)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
string_value!(
    Template,
    "roster-template",
    "Text with `{placeholders}`, e.g. `Bearer {credentials.api_key}`; `{{` is a literal brace."
);

/// A URL that may contain `{settings.NAME}` placeholders, such as
/// `https://{settings.company_domain}.bamboohr.com/api/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(Template);

impl UrlTemplate {
    /// Parses the template and checks that it makes an http(s) URL once filled in.
    pub fn parse(s: &str) -> Result<UrlTemplate, ValueError> {
        let t = Template::parse(s)?;
        let sample = t.render(|_| Some("x".into())).unwrap_or_default();
        HttpUrl::parse(&sample).map_err(|e| ValueError {
            message: e.message.replace(&format!("`{sample}`"), &format!("`{s}`")),
            help: e.help,
        })?;
        Ok(UrlTemplate(t))
    }

    /// The template.
    pub fn template(&self) -> &Template {
        &self.0
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}
string_value!(
    UrlTemplate,
    "roster-url-template",
    "An http(s) URL, which may use `{settings.NAME}` placeholders."
);

/// An absolute http or https URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(url::Url);

impl HttpUrl {
    /// Parses and checks the scheme and host.
    pub fn parse(s: &str) -> Result<HttpUrl, ValueError> {
        let help = "write an absolute URL such as `https://api.example.com/v1`";
        let u = url::Url::parse(s)
            .map_err(|e| ValueError::new(format!("`{s}` is not a valid URL: {e}"), help))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(ValueError::new(
                format!(
                    "`{s}` uses scheme `{}`; only http and https are supported",
                    u.scheme()
                ),
                help,
            ));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(ValueError::new(format!("`{s}` has no host"), help));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(ValueError::new(
                "the URL embeds credentials",
                "remove `user:password@`; put credentials in `credentials:` as secret references",
            ));
        }
        Ok(HttpUrl(u))
    }

    /// The URL.
    pub fn url(&self) -> &url::Url {
        &self.0
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}
string_value!(HttpUrl, "roster-url", "An absolute http(s) URL.");

// ---------------------------------------------------------------------------------------------

/// A five-field cron expression (`minute hour day-of-month month day-of-week`), evaluated in
/// the company time zone.
#[derive(Clone)]
pub struct CronExpr {
    text: String,
    cron: Arc<croner::Cron>,
}

impl CronExpr {
    /// Parses a five-field expression such as `0 */4 * * *` or `30 6 * * MON-FRI`.
    pub fn parse(s: &str) -> Result<CronExpr, ValueError> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build();
        let cron = parser.parse(s).map_err(|e| {
            ValueError::new(
                format!("invalid cron expression `{s}`: {e}"),
                "use five fields, minute hour day-of-month month day-of-week, e.g. `0 */4 * * *`",
            )
        })?;
        // croner accepts dates that never come (`0 0 30 2 *`, 30 February): a source with such
        // a schedule would never sync. Any real schedule fires within eight years of any date.
        let from = jiff::civil::date(2024, 1, 1)
            .at(0, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| ValueError::new(e.to_string(), "report this"))?;
        if cron.find_next_occurrence(&from, false).is_err() {
            return Err(ValueError::new(
                format!("the cron expression `{s}` never fires (no such date, e.g. 30 February)"),
                "check the day-of-month and month fields",
            ));
        }
        Ok(CronExpr {
            text: s.to_string(),
            cron: Arc::new(cron),
        })
    }

    /// The parsed schedule.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.text)
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
string_value!(
    CronExpr,
    "roster-cron",
    "A five-field cron expression in the company time zone, e.g. `0 */4 * * *`."
);

/// An IANA time zone name such as `Europe/Berlin` (the tz database is built in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Checks the name against the built-in tz database.
    pub fn parse(s: &str) -> Result<TimeZoneName, ValueError> {
        if jiff::tz::db().get(s).is_ok() {
            return Ok(TimeZoneName(s.to_string()));
        }
        let names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
        let help = crate::config::diag::did_you_mean(s, names.iter().map(String::as_str))
            .map(|n| format!("did you mean `{n}`?"))
            .unwrap_or_else(|| {
                "use an IANA name such as `Europe/Berlin` or `America/New_York`".into()
            });
        Err(ValueError::new(format!("unknown time zone `{s}`"), help))
    }

    /// The zone.
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::db().get(&self.0).expect("checked when parsed")
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(
    TimeZoneName,
    "roster-time-zone",
    "An IANA time zone name such as `Europe/Berlin`."
);

/// A local time of day, `HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeOfDay {
    text: String,
    time: jiff::civil::Time,
}

impl TimeOfDay {
    /// Parses `09:00` or `17:30`.
    pub fn parse(s: &str) -> Result<TimeOfDay, ValueError> {
        let help = "write a 24-hour time such as `09:00`";
        let (h, m) = s
            .split_once(':')
            .ok_or_else(|| ValueError::new(format!("`{s}` is not a time of day"), help))?;
        let (h, m): (i8, i8) = match (h.parse::<i8>(), m.parse::<i8>()) {
            (Ok(hv), Ok(mv)) if h.len() <= 2 && m.len() == 2 => (hv, mv),
            _ => return Err(ValueError::new(format!("`{s}` is not a time of day"), help)),
        };
        let time = jiff::civil::Time::new(h, m, 0, 0)
            .map_err(|_| ValueError::new(format!("`{s}` is not a time of day"), help))?;
        Ok(TimeOfDay {
            text: s.to_string(),
            time,
        })
    }

    /// The time.
    pub fn time(&self) -> jiff::civil::Time {
        self.time
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
string_value!(
    TimeOfDay,
    "roster-time-of-day",
    "A 24-hour local time such as `09:00`, in the company time zone."
);

/// A name for a source, stream, webhook endpoint or trigger: lowercase letters, digits, `_`
/// and `-`, starting with a letter. Names end up in metrics labels, SQL and CLI arguments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Checks the spelling.
    pub fn parse(s: &str) -> Result<Name, ValueError> {
        let ok = s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if ok {
            Ok(Name(s.to_string()))
        } else {
            let fixed: String = s
                .to_ascii_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Err(ValueError::new(
                format!("`{s}` is not a valid name"),
                format!(
                    "use lowercase letters, digits, `_` and `-`, starting with a letter (e.g. `{}`)",
                    fixed.trim_start_matches(|c: char| !c.is_ascii_lowercase())
                ),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}
string_value!(
    Name,
    "roster-name",
    "A name: lowercase letters, digits, `_` and `-`, starting with a letter."
);

/// A share between 0 and 1, written `20%` or `0.2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio(f64);

impl Ratio {
    /// A ratio from a fraction in 0..=1.
    pub fn new(v: f64) -> Option<Ratio> {
        (0.0..=1.0).contains(&v).then_some(Ratio(v))
    }

    /// Parses `20%` or `0.2`.
    pub fn parse_str(s: &str) -> Result<Ratio, ValueError> {
        let help = "write a percentage such as `20%` or a fraction such as `0.2`";
        let v = match s.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
            None => s.trim().parse::<f64>(),
        }
        .map_err(|_| ValueError::new(format!("`{s}` is not a percentage"), help))?;
        Ratio::new(v)
            .ok_or_else(|| ValueError::new(format!("`{s}` is not between 0% and 100%"), help))
    }

    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ratio::new(v)
                .ok_or_else(|| serde::de::Error::custom(format!("{v} is not between 0 and 1"))),
            Raw::Str(s) => Ratio::parse_str(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0 * 100.0))
    }
}

impl JsonSchema for Ratio {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Ratio")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number"],
            "format": "roster-ratio",
            "minimum": 0,
            "maximum": 1,
            "description": "A share written as a percentage (`20%`) or a fraction (`0.2`)."
        })
    }
    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cron_expression_that_never_fires_is_refused() {
        let e = CronExpr::parse("0 0 30 2 *").unwrap_err();
        assert!(e.to_string().contains("never fires"), "{e}");
        assert!(
            CronExpr::parse("0 0 29 2 *").is_ok(),
            "29 February comes in leap years"
        );
        assert!(CronExpr::parse("0 6-18/2 * * MON-FRI").is_ok());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(ByteSize::parse("48MB").unwrap().bytes(), 48_000_000);
        assert_eq!(ByteSize::parse("256 MiB").unwrap().bytes(), 256 << 20);
        assert_eq!(ByteSize::parse("1.5GB").unwrap().bytes(), 1_500_000_000);
        assert_eq!(ByteSize::parse("1gib").unwrap().bytes(), 1 << 30);
        let e = ByteSize::parse("48").unwrap_err().to_string();
        assert!(e.contains("has no unit"), "{e}");
        let e = ByteSize::parse("48 megs").unwrap_err().to_string();
        assert!(e.contains("`megs` is not a unit"), "{e}");
        let e = ByteSize::parse("8MB").unwrap_err().to_string();
        assert!(e.contains("too little"), "{e}");
        assert!(ByteSize::parse("lots").is_err());
    }

    #[test]
    fn data_sizes() {
        assert_eq!(DataSize::parse("8KiB").unwrap().bytes(), 8192);
        assert_eq!(DataSize::parse("64 KB").unwrap().bytes(), 64_000);
        assert_eq!(DataSize::parse("1MiB").unwrap().bytes(), 1 << 20);
        // No minimum beyond zero: DuckDB's memory floor is not a field's.
        assert_eq!(DataSize::parse("0.5KiB").unwrap().bytes(), 512);
        let e = DataSize::parse("8 kilobytes").unwrap_err().to_string();
        assert!(e.contains("`kilobytes` is not a unit of data"), "{e}");
        let e = DataSize::parse("8192").unwrap_err().to_string();
        assert!(e.contains("has no unit") && e.contains("`8KiB`"), "{e}");
        let e = DataSize::parse("0KiB").unwrap_err().to_string();
        assert!(e.contains("zero bytes"), "{e}");
        assert!(
            DataSize::parse("big")
                .unwrap_err()
                .to_string()
                .contains("not an amount of data")
        );
    }

    #[test]
    fn durations_and_offsets() {
        assert_eq!(
            Duration::parse("4h").unwrap().get(),
            StdDuration::from_secs(4 * 3600)
        );
        assert_eq!(
            Duration::parse("1h30m").unwrap().get(),
            StdDuration::from_secs(5400)
        );
        assert_eq!(
            Duration::parse("7d").unwrap().get(),
            StdDuration::from_secs(7 * 86400)
        );
        assert_eq!(
            Duration::parse("PT5M").unwrap().get(),
            StdDuration::from_secs(300)
        );
        assert!(
            Duration::parse("4")
                .unwrap_err()
                .message
                .contains("no unit")
        );
        assert!(
            Duration::parse("-1h")
                .unwrap_err()
                .message
                .contains("negative")
        );
        assert!(Duration::parse("four hours").is_err());
        assert!(
            Duration::parse("1 month")
                .unwrap_err()
                .message
                .contains("months")
        );
        assert_eq!(
            Offset::parse("-7d").unwrap().get(),
            jiff::SignedDuration::from_hours(-168)
        );
        assert_eq!(
            Offset::parse("+1d").unwrap().get(),
            jiff::SignedDuration::from_hours(24)
        );
        assert_eq!(
            Offset::parse("0d").unwrap().get(),
            jiff::SignedDuration::ZERO
        );
    }

    #[test]
    fn jsonpaths_compile_or_say_where_they_break() {
        assert!(JsonPath::parse("$.data[*]").is_ok());
        assert!(JsonPath::parse("$.attributes.email.value").is_ok());
        assert!(JsonPath::parse("$.items[?@.active == true]").is_ok());
        let e = JsonPath::parse("$.data[*").unwrap_err();
        assert!(e.message.contains("syntax error at character"), "{e}");
        let e = JsonPath::parse("data").unwrap_err();
        assert_eq!(e.help.as_deref(), Some("write `$.data`"));
    }

    #[test]
    fn jsonpaths_select_values() {
        let doc = serde_json::json!({"data": [{"id": 1}, {"id": 2}], "meta": {"next": null}});
        let p = JsonPath::parse("$.data[*]").unwrap();
        assert_eq!(p.select(&doc).len(), 2);
        assert_eq!(
            JsonPath::parse("$.data[1].id").unwrap().first(&doc),
            Some(&serde_json::json!(2))
        );
        assert_eq!(
            JsonPath::parse("$.meta.next").unwrap().first(&doc),
            Some(&serde_json::Value::Null)
        );
        assert_eq!(JsonPath::parse("$.nope").unwrap().first(&doc), None);
        for path in ["$.data[*]", "$.data[?@.id > 1]", "$[*]"] {
            let p = JsonPath::parse(path).unwrap();
            let mut d = if path == "$[*]" {
                serde_json::json!([{"id": 1}, {"id": 2}])
            } else {
                doc.clone()
            };
            let expected: Vec<serde_json::Value> = p.select(&d).into_iter().cloned().collect();
            assert_eq!(p.take_all(&mut d), expected, "{path}");
        }
    }

    #[test]
    fn templates() {
        let t = Template::parse("Bearer {credentials.token}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["credentials.token"]);
        assert_eq!(t.render(|_| Some("abc".into())).unwrap(), "Bearer abc");
        let t = Template::parse("{{literal}} {a}-{b}").unwrap();
        assert_eq!(
            t.render(|v| Some(v.to_uppercase())).unwrap(),
            "{literal} A-B"
        );
        assert!(
            Template::parse("{open")
                .unwrap_err()
                .message
                .contains("unclosed")
        );
        assert!(
            Template::parse("{bad name}")
                .unwrap_err()
                .message
                .contains("invalid placeholder")
        );
        assert!(
            Template::parse("x}")
                .unwrap_err()
                .message
                .contains("unmatched")
        );
        assert!(UrlTemplate::parse("https://{settings.domain}.bamboohr.com/api").is_ok());
        assert!(UrlTemplate::parse("{settings.domain}.bamboohr.com").is_err());
    }

    #[test]
    fn other_values() {
        assert!(CronExpr::parse("0 */4 * * *").is_ok());
        assert!(CronExpr::parse("61 * * * *").is_err());
        assert!(
            CronExpr::parse("0 0 */4 * * *").is_err(),
            "six fields are refused"
        );
        assert!(TimeZoneName::parse("Europe/Berlin").is_ok());
        let e = TimeZoneName::parse("Europe/Berln").unwrap_err();
        assert_eq!(e.help.as_deref(), Some("did you mean `Europe/Berlin`?"));
        assert_eq!(
            TimeOfDay::parse("09:00").unwrap().time(),
            jiff::civil::time(9, 0, 0, 0)
        );
        assert!(TimeOfDay::parse("25:00").is_err());
        assert!(TimeOfDay::parse("9am").is_err());
        assert!(Name::parse("personio-eu").is_ok());
        assert_eq!(
            Name::parse("Personio EU").unwrap_err().help.unwrap(),
            "use lowercase letters, digits, `_` and `-`, starting with a letter (e.g. `personio_eu`)"
        );
        assert_eq!(Ratio::parse_str("20%").unwrap().get(), 0.2);
        assert!(Ratio::parse_str("120%").is_err());
        assert!(HttpUrl::parse("api.example.com").is_err());
        assert!(HttpUrl::parse("ftp://x.example").is_err());
        assert!(
            HttpUrl::parse("https://user:pw@x.example")
                .unwrap_err()
                .message
                .contains("credentials")
        );
    }
}
