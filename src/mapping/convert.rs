//! Turning provider values into canonical ones: scalar to text, transforms, and the typed
//! parsers (email, date, bool, int). Each parser returns the canonical value or a message that
//! says what was expected and what to do, and never shows the value: messages end up in logs,
//! `data_problems` and sync summaries, and a provider value is personal data (a birth date, a
//! private email). Callers locate the record by its key.

use serde_json::Value;

use crate::config::mapping::Transform;

/// A JSON scalar as text: strings as they are, numbers as their JSON text (`1042`, `12.0`),
/// booleans `true`/`false`. `Ok(None)` for null; objects and lists are an error.
pub(crate) fn scalar_text(v: &Value, path: &str) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Object(m) => Err(format!(
            "`{path}` selects an object (with {} keys), not a value; point the path at one of its fields",
            m.len()
        )),
        Value::Array(a) => Err(format!(
            "`{path}` selects a list of {}, not a value; point the path at one item, e.g. `[0]`",
            a.len()
        )),
    }
}

/// Applies the transforms in order.
pub(crate) fn transform(mut s: String, transforms: &[Transform]) -> Option<String> {
    for t in transforms {
        s = match t {
            Transform::Trim => {
                let t = s.trim();
                if t.len() == s.len() { s } else { t.to_string() }
            }
            Transform::Lowercase => s.to_lowercase(),
            Transform::Uppercase => s.to_uppercase(),
            Transform::CollapseWhitespace => s.split_whitespace().collect::<Vec<_>>().join(" "),
            Transform::EmptyAsNull => {
                if s.is_empty() {
                    return None;
                }
                s
            }
        };
    }
    Some(s)
}

/// A work email: trimmed, lowercased, exactly one `@` with something on both sides and no
/// white space.
pub(crate) fn email(s: &str) -> Result<String, String> {
    let e = s.trim().to_lowercase();
    let why = match e.split('@').count() {
        1 => Some("has no `@`"),
        2 => {
            let (local, domain) = e.split_once('@').unwrap_or_default();
            if local.is_empty() {
                Some("has nothing before the `@`")
            } else if domain.is_empty() {
                Some("has nothing after the `@`")
            } else if e.contains(char::is_whitespace) {
                Some("contains white space")
            } else {
                None
            }
        }
        _ => Some("has more than one `@`"),
    };
    match why {
        None => Ok(e),
        Some(why) => Err(format!("not an email address: it {why}")),
    }
}

/// A calendar date as `YYYY-MM-DD`. ISO dates and ISO date-times are always understood; a
/// date-time keeps the calendar date as written (`2014-11-09T00:00:00+01:00` is 9 November,
/// never 8 November in UTC). Other shapes need `date_format` (strftime).
pub(crate) fn date(s: &str, format: Option<&str>) -> Result<String, String> {
    if let Some(d) = iso_date(s) {
        return Ok(d.to_string());
    }
    if s.starts_with("0000-00-00") {
        return Err("a zero date (0000-00-00), not a date; if it means \"no date\", add the provider's text for it to `empty_values`".into());
    }
    if let Some(why) = impossible_iso_date(s) {
        return Err(format!("not a valid date for format %Y-%m-%d ({why})"));
    }
    match format {
        Some(f) => match jiff::fmt::strtime::parse(f, s) {
            Ok(tm) => tm.to_date().map(|d| d.to_string()).map_err(|_| {
                format!("not a valid date for format {f} (a day that does not exist in that month?)")
            }),
            Err(_) => Err(format!(
                "not a date in format {f}; check `date_format` against the provider's dates"
            )),
        },
        None => Err(
            "not a date: expected YYYY-MM-DD or an ISO date-time; set `date_format` for other formats"
                .into(),
        ),
    }
}

/// Why a value shaped `YYYY-MM-DD...` is no calendar date (`2023-02-30`, `2024-13-01`); `None`
/// for any other shape, or a real date. Says which part is wrong, not what it is.
fn impossible_iso_date(s: &str) -> Option<&'static str> {
    let head = s.get(..10).filter(|h| iso_shaped(h))?;
    if head.parse::<jiff::civil::Date>().is_ok() {
        return None;
    }
    let month: u8 = head[5..7].parse().ok()?;
    Some(if (1..=12).contains(&month) {
        "a day that does not exist in that month"
    } else {
        "the month is not 01 to 12"
    })
}

/// `NNNN-NN-NN`: the shape of an ISO date, whether or not it is a real one.
fn iso_shaped(head: &str) -> bool {
    let b = head.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// `YYYY-MM-DD`, or an ISO 8601 date-time starting with it (with or without an offset, `Z`,
/// fractional seconds or a `[zone]` annotation): its own calendar date.
fn iso_date(s: &str) -> Option<jiff::civil::Date> {
    let b = s.as_bytes();
    if !s.get(..10).is_some_and(iso_shaped) {
        return None;
    }
    if b.len() == 10 {
        return s.parse().ok();
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    // The date as written: the pieces of the string, not an instant converted to UTC.
    jiff::fmt::temporal::Pieces::parse(s)
        .ok()
        .filter(|p| p.time().is_some())
        .map(|p| p.date())
}

/// A yes/no value.
pub(crate) fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Ok(true),
        "false" | "no" | "n" | "0" | "off" => Ok(false),
        _ => Err("not a yes/no value (expected true, false, yes, no, 1 or 0)".into()),
    }
}

/// A whole number (`12`, also `12.0` as JSON writes some integers).
pub(crate) fn integer(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(i);
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err("not a whole number".into()),
    }
}

/// A size for a message: `8 KiB`, `1 MiB`, `64 KB` when it is a whole number of one, else
/// bytes with thousands separators (`5,242,880 bytes`).
pub(crate) fn size(bytes: u64) -> String {
    for (unit, scale) in [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ] {
        if bytes >= scale && bytes % scale == 0 {
            return format!("{} {unit}", bytes / scale);
        }
    }
    format!("{} bytes", thousands(bytes))
}

/// `5242880` as `5,242,880`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Loose equality for filter rules: JSON equality, plus a string matching a number or boolean
/// with the same text (`"42"` matches `42`, `"true"` matches `true`), and numbers equal in
/// value (`42` matches `42.0`).
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            let s = s.trim();
            s == n.to_string() || s.parse::<f64>().is_ok_and(|f| Some(f) == n.as_f64())
        }
        (Value::String(s), Value::Bool(v)) | (Value::Bool(v), Value::String(s)) => {
            s.trim() == if *v { "true" } else { "false" }
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_become_text() {
        let t = |v: Value| scalar_text(&v, "$.x");
        assert_eq!(t(json!("a b")), Ok(Some("a b".into())));
        assert_eq!(t(json!(1042)), Ok(Some("1042".into())));
        assert_eq!(t(json!(12.0)), Ok(Some("12.0".into())));
        assert_eq!(t(json!(-3.5)), Ok(Some("-3.5".into())));
        assert_eq!(t(json!(true)), Ok(Some("true".into())));
        assert_eq!(t(json!(false)), Ok(Some("false".into())));
        assert_eq!(t(json!(null)), Ok(None));
        let e = t(json!({"name": "x", "id": 1})).unwrap_err();
        assert!(e.contains("`$.x` selects an object (with 2 keys)"), "{e}");
        assert!(e.contains("point the path at one of its fields"), "{e}");
        let e = t(json!([1, 2, 3])).unwrap_err();
        assert!(e.contains("a list of 3"), "{e}");
    }

    #[test]
    fn transforms_apply_in_order() {
        use Transform::*;
        let t = |s: &str, ts: &[Transform]| transform(s.to_string(), ts);
        assert_eq!(t("  Ada  ", &[Trim]).as_deref(), Some("Ada"));
        assert_eq!(t("Ada", &[Lowercase]).as_deref(), Some("ada"));
        assert_eq!(t("straße", &[Uppercase]).as_deref(), Some("STRASSE"));
        assert_eq!(
            t(" a \t b\n\nc ", &[CollapseWhitespace]).as_deref(),
            Some("a b c")
        );
        assert_eq!(t("", &[EmptyAsNull]), None);
        assert_eq!(t(" ", &[EmptyAsNull]).as_deref(), Some(" "));
        assert_eq!(t(" ", &[Trim, EmptyAsNull]), None);
        // Order matters: empty_as_null before trim does not see the trimmed value.
        assert_eq!(t(" ", &[EmptyAsNull, Trim]).as_deref(), Some(""));
        assert_eq!(t("", &[]).as_deref(), Some(""));
    }

    #[test]
    fn emails() {
        assert_eq!(email("  Ada.L@Example.COM ").unwrap(), "ada.l@example.com");
        for (bad, why) in [
            ("ada", "has no `@`"),
            ("a@b@c", "has more than one `@`"),
            ("@example.com", "has nothing before the `@`"),
            ("ada@", "has nothing after the `@`"),
            ("ada l@example.com", "contains white space"),
        ] {
            let e = email(bad).unwrap_err();
            assert_eq!(e, format!("not an email address: it {why}"), "{bad}");
        }
    }

    #[test]
    fn dates_keep_the_calendar_date_as_written() {
        let d = |s: &str| date(s, None);
        assert_eq!(d("2024-02-29").unwrap(), "2024-02-29");
        // Personio: local midnight with an offset east of UTC is still 9 November.
        assert_eq!(d("2014-11-09T00:00:00+01:00").unwrap(), "2014-11-09");
        // Late evening west of UTC is still the same day (in UTC it would be the next).
        assert_eq!(d("2014-11-09T23:30:00-08:00").unwrap(), "2014-11-09");
        assert_eq!(d("2020-07-01T00:00:00.000Z").unwrap(), "2020-07-01");
        assert_eq!(d("2022-05-10T00:00:00").unwrap(), "2022-05-10");
        assert_eq!(d("2022-05-10 08:15:00").unwrap(), "2022-05-10");
        assert_eq!(
            d("2022-05-10T08:15:00+02:00[Europe/Berlin]").unwrap(),
            "2022-05-10"
        );
    }

    /// Every way a date fails says which part is wrong and what to do, never the value.
    #[test]
    fn date_errors_say_why_without_the_value() {
        let impossible_day =
            "not a valid date for format %Y-%m-%d (a day that does not exist in that month)";
        let not_iso = "not a date: expected YYYY-MM-DD or an ISO date-time; set `date_format` for other formats";
        for (value, format, want) in [
            ("2023-02-30", None, impossible_day),
            ("2023-02-29", None, impossible_day),
            ("2024-04-31T00:00:00Z", None, impossible_day),
            // ISO is always understood, so an impossible ISO date is that even with a format.
            ("2023-02-30", Some("%d/%m/%Y"), impossible_day),
            (
                "2024-13-01",
                None,
                "not a valid date for format %Y-%m-%d (the month is not 01 to 12)",
            ),
            ("31.12.2024", None, not_iso),
            ("2024-1-5", None, not_iso),
            ("yesterday", None, not_iso),
            ("2024-02-01Tnoon", None, not_iso),
            (
                "0000-00-00",
                None,
                "a zero date (0000-00-00), not a date; if it means \"no date\", add the provider's text for it to `empty_values`",
            ),
            (
                "0000-00-00T00:00:00",
                Some("%d/%m/%Y"),
                "a zero date (0000-00-00), not a date; if it means \"no date\", add the provider's text for it to `empty_values`",
            ),
            (
                "31/02/2024",
                Some("%d/%m/%Y"),
                "not a valid date for format %d/%m/%Y (a day that does not exist in that month?)",
            ),
            (
                "2024/02/01",
                Some("%d/%m/%Y"),
                "not a date in format %d/%m/%Y; check `date_format` against the provider's dates",
            ),
        ] {
            assert_eq!(date(value, format).unwrap_err(), want, "{value}");
        }
    }

    #[test]
    fn dates_with_a_format() {
        let f = Some("%d/%m/%Y");
        assert_eq!(date("09/11/2014", f).unwrap(), "2014-11-09");
        // ISO is understood even with a format.
        assert_eq!(date("2014-11-09", f).unwrap(), "2014-11-09");
        assert_eq!(date("01.02.2024", Some("%d.%m.%Y")).unwrap(), "2024-02-01");
        assert_eq!(date("12/31/2024", Some("%m/%d/%Y")).unwrap(), "2024-12-31");
        assert!(date("00/00/0000", f).is_err());
    }

    #[test]
    fn sizes_for_messages() {
        for (bytes, want) in [
            (8192, "8 KiB"),
            (1 << 20, "1 MiB"),
            (64_000, "64 KB"),
            (5_242_881, "5,242,881 bytes"),
            (999, "999 bytes"),
            (0, "0 bytes"),
            (1_000_000_000, "1 GB"),
        ] {
            assert_eq!(size(bytes), want, "{bytes}");
        }
        assert_eq!(thousands(5_242_880), "5,242,880");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn booleans_and_integers() {
        for t in ["true", "TRUE", "yes", "Y", "1", "on"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for f in ["false", "No", "n", "0", "off"] {
            assert_eq!(boolean(f), Ok(false), "{f}");
        }
        assert_eq!(
            boolean("maybe").unwrap_err(),
            "not a yes/no value (expected true, false, yes, no, 1 or 0)"
        );
        assert_eq!(integer("1042"), Ok(1042));
        assert_eq!(integer(" -7 "), Ok(-7));
        assert_eq!(integer("12.0"), Ok(12));
        assert_eq!(integer("12.5").unwrap_err(), "not a whole number");
        assert!(integer("twelve").is_err());
    }

    #[test]
    fn loose_equality() {
        assert!(loose_eq(&json!("42"), &json!(42)));
        assert!(loose_eq(&json!(42), &json!("42")));
        assert!(loose_eq(&json!(42), &json!(42.0)));
        assert!(loose_eq(&json!("true"), &json!(true)));
        assert!(loose_eq(&json!(false), &json!(false)));
        assert!(!loose_eq(&json!("43"), &json!(42)));
        assert!(!loose_eq(&json!("yes"), &json!(true)));
        assert!(!loose_eq(&json!("A"), &json!("a")));
        assert!(!loose_eq(&json!(null), &json!(false)));
    }
}
