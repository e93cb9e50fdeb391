//! Turning provider values into canonical ones: scalar to text, transforms, and the typed
//! parsers (email, date, bool, int). Each parser returns the canonical value or a message
//! that shows the value (shortened) and says what was expected.

use serde_json::Value;

use crate::config::mapping::Transform;

/// Longest provider value quoted in a message, in characters.
const QUOTE_MAX: usize = 80;

/// A provider value quoted for a message: one line, at most [`QUOTE_MAX`] characters.
pub(crate) fn quote(s: &str) -> String {
    let escaped: String = s.escape_debug().collect();
    if escaped.chars().count() <= QUOTE_MAX {
        format!("`{escaped}`")
    } else {
        let head: String = escaped.chars().take(QUOTE_MAX - 3).collect();
        format!("`{head}...` ({} characters)", s.chars().count())
    }
}

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
        Some(why) => Err(format!("{} is not an email address: it {why}", quote(s))),
    }
}

/// A calendar date as `YYYY-MM-DD`. ISO dates and ISO date-times are always understood; a
/// date-time keeps the calendar date as written (`2014-11-09T00:00:00+01:00` is 9 November,
/// never 8 November in UTC). Other shapes need `date_format` (strftime).
pub(crate) fn date(s: &str, format: Option<&str>) -> Result<String, String> {
    if let Some(d) = iso_date(s) {
        return Ok(d.to_string());
    }
    let zero = s.starts_with("0000-00-00");
    match format {
        Some(f) => jiff::fmt::strtime::parse(f, s)
            .and_then(|tm| tm.to_date())
            .map(|d| d.to_string())
            .map_err(|_| {
                if zero {
                    format!(
                        "{} is not a date; if it means \"no date\", add it to `empty_values`",
                        quote(s)
                    )
                } else {
                    format!("{} is not a date in format {f}", quote(s))
                }
            }),
        None if zero => Err(format!(
            "{} is not a date; if it means \"no date\", add it to `empty_values`",
            quote(s)
        )),
        None => Err(format!(
            "{} is not a date (expected YYYY-MM-DD or an ISO date-time; set `date_format` for other formats)",
            quote(s)
        )),
    }
}

/// `YYYY-MM-DD`, or an ISO 8601 date-time starting with it (with or without an offset, `Z`,
/// fractional seconds or a `[zone]` annotation): its own calendar date.
fn iso_date(s: &str) -> Option<jiff::civil::Date> {
    let b = s.as_bytes();
    let dashed = b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b[..10]
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !dashed {
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
        _ => Err(format!(
            "{} is not a yes/no value (true, false, yes, no, 1 or 0)",
            quote(s)
        )),
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
        _ => Err(format!("{} is not a whole number", quote(s))),
    }
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
            ("a@b@c", "more than one `@`"),
            ("@example.com", "nothing before"),
            ("ada@", "nothing after"),
            ("ada l@example.com", "white space"),
        ] {
            let e = email(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(&format!("`{bad}`")), "{e}");
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
        for bad in [
            "2024-02-30",
            "2024-13-01",
            "31.12.2024",
            "2024-1-5",
            "yesterday",
            "2024-02-01Tnoon",
        ] {
            let e = d(bad).unwrap_err();
            assert!(e.contains("is not a date"), "{bad}: {e}");
            assert!(e.contains("date_format"), "{bad}: {e}");
        }
        let e = d("0000-00-00").unwrap_err();
        assert!(e.contains("`empty_values`"), "{e}");
    }

    #[test]
    fn dates_with_a_format() {
        let f = Some("%d/%m/%Y");
        assert_eq!(date("09/11/2014", f).unwrap(), "2014-11-09");
        // ISO is understood even with a format.
        assert_eq!(date("2014-11-09", f).unwrap(), "2014-11-09");
        assert_eq!(
            date("31/02/2024", f).unwrap_err(),
            "`31/02/2024` is not a date in format %d/%m/%Y"
        );
        assert_eq!(date("01.02.2024", Some("%d.%m.%Y")).unwrap(), "2024-02-01");
        assert_eq!(date("12/31/2024", Some("%m/%d/%Y")).unwrap(), "2024-12-31");
        assert!(date("00/00/0000", f).is_err());
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(500);
        let e = date(&long, None).unwrap_err();
        assert!(e.len() < 250, "{e}");
        assert!(e.contains("(500 characters)"), "{e}");
        assert_eq!(quote("a\nb"), "`a\\nb`");
    }

    #[test]
    fn booleans_and_integers() {
        for t in ["true", "TRUE", "yes", "Y", "1", "on"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for f in ["false", "No", "n", "0", "off"] {
            assert_eq!(boolean(f), Ok(false), "{f}");
        }
        assert!(
            boolean("maybe")
                .unwrap_err()
                .contains("`maybe` is not a yes/no value")
        );
        assert_eq!(integer("1042"), Ok(1042));
        assert_eq!(integer(" -7 "), Ok(-7));
        assert_eq!(integer("12.0"), Ok(12));
        assert!(
            integer("12.5")
                .unwrap_err()
                .contains("`12.5` is not a whole number")
        );
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
