//! Masking secret values in any text Roster shows: error messages, request descriptions,
//! excerpts of response bodies.
//!
//! Redaction is by value, not by position: [`Redactor`] knows each secret value and finds it
//! in whatever encoding a server may echo it back in, so a secret stays hidden whether it went
//! into a header, a query parameter, a path or an error body.
//!
//! Two kinds of forms are looked for:
//!
//! - **Escaped forms, matched on the fly.** Each byte of a secret may appear plainly or
//!   escaped, and the escapes may be mixed freely within one occurrence: JSON string escapes
//!   (`\/`, `\\`, `\"`, `\n` and friends, `\uXXXX` in any case, surrogate pairs included),
//!   URL percent-encoding (`%2F` or `%2f`, byte by byte, so UTF-8 sequences too) and `+` for a
//!   space. The matcher decodes the text as it compares, and masks the original span. PHP's
//!   `json_encode` writes `/` as `\/`, Java's encoders write `\u002F`, a reverse proxy echoes
//!   the query string percent-encoded: all are the same secret.
//! - **Encoded forms, which cannot be decoded in place.** Base64 (standard and URL-safe,
//!   padded or not) shifts a value's bits by where it starts in the encoded data, so each
//!   secret yields three "cores": the characters fully determined by the secret at each of the
//!   three alignments (a secret inside `user:secret` in a basic-auth header is found too). A
//!   match masks the whole run of base64 characters around it, so the few characters that
//!   carry part of the secret at the edges go too. Hex is matched in either case. These
//!   encoded forms may themselves be escaped (base64 with `\/` from PHP).
//!
//! Not here: which values are secret (the request context and the engine decide), and
//! decoding several layers of encoding at once (a JSON-escaped percent-encoding of a secret).

use std::collections::VecDeque;

use base64::Engine as _;

/// How many rotated tokens stay masked after they were replaced.
pub const ROTATING_KEPT: usize = 8;

/// Values shorter than this are not masked: masking `x` would garble every message, and such
/// a value protects nothing.
const MIN_SECRET_LEN: usize = 4;

/// What replaces a secret.
const MASK: &str = "***";

/// Masks secret values in text. Its `Debug` shows counts, never values.
#[derive(Clone)]
pub struct Redactor {
    /// The secret values for the life of the source (credentials, derived values).
    values: Vec<String>,
    /// Tokens learned while fetching, newest last; only the last [`ROTATING_KEPT`] are kept,
    /// so an API that rotates its token on every response (Personio) does not grow this.
    rotating: VecDeque<String>,
    /// Every form of every value above.
    needles: Vec<Needle>,
    /// Bytes a match can start with (a needle's first byte, in either case for hex, and the
    /// escape introducers); every other position is skipped at once.
    starts: [bool; 256],
}

impl Default for Redactor {
    fn default() -> Redactor {
        Redactor {
            values: Vec::new(),
            rotating: VecDeque::new(),
            needles: Vec::new(),
            starts: [false; 256],
        }
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.values.len())
            .field("rotating", &self.rotating.len())
            .finish_non_exhaustive()
    }
}

/// One form of a secret to look for.
#[derive(Clone, PartialEq, Eq)]
struct Needle {
    /// The bytes, as the secret or its encoding.
    bytes: Vec<u8>,
    /// How a match is compared and widened.
    form: Form,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The value itself: exact bytes.
    Plain,
    /// Hex: ASCII case-insensitive.
    Hex,
    /// A base64 core: the match widens to the surrounding run of base64 characters.
    Base64,
}

impl Redactor {
    /// A redactor for these values (values shorter than 4 bytes are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut r = Redactor::default();
        for v in values {
            r.add(&v);
        }
        r
    }

    /// Adds a value that stays secret for the life of the source.
    pub fn add(&mut self, value: &str) {
        if value.len() < MIN_SECRET_LEN || self.values.iter().any(|v| v == value) {
            return;
        }
        self.values.push(value.to_string());
        self.rebuild();
    }

    /// Adds a token learned while fetching (a login, a rotated access or refresh token); the
    /// oldest beyond the last [`ROTATING_KEPT`] is dropped.
    pub fn add_rotating(&mut self, value: &str) {
        if value.len() < MIN_SECRET_LEN
            || self.values.iter().chain(&self.rotating).any(|v| v == value)
        {
            return;
        }
        self.rotating.push_back(value.to_string());
        while self.rotating.len() > ROTATING_KEPT {
            self.rotating.pop_front();
        }
        self.rebuild();
    }

    fn rebuild(&mut self) {
        self.needles.clear();
        self.starts = [false; 256];
        for value in self.values.iter().chain(&self.rotating) {
            for needle in forms(value.as_bytes()) {
                if !self.needles.contains(&needle) {
                    self.needles.push(needle);
                }
            }
        }
        for n in &self.needles {
            let first = n.bytes[0];
            self.starts[first as usize] = true;
            if n.form == Form::Hex {
                self.starts[first.to_ascii_lowercase() as usize] = true;
                self.starts[first.to_ascii_uppercase() as usize] = true;
            }
            if first == b' ' {
                self.starts[b'+' as usize] = true;
            }
        }
        if !self.needles.is_empty() {
            self.starts[b'%' as usize] = true;
            self.starts[b'\\' as usize] = true;
        }
    }

    /// The text with every occurrence of a secret, in any form, replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let spans = self.find(text);
        if spans.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            out.push_str(&text[at..start]);
            out.push_str(MASK);
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// The byte spans of `text` that hold a secret, sorted and merged.
    fn find(&self, text: &str) -> Vec<(usize, usize)> {
        let b = text.as_bytes();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for p in 0..b.len() {
            if !self.starts[b[p] as usize] || !text.is_char_boundary(p) {
                continue;
            }
            for n in &self.needles {
                if let Some(end) = match_at(b, p, &n.bytes, n.form == Form::Hex) {
                    spans.push(if n.form == Form::Base64 {
                        widen_base64(b, p, end)
                    } else {
                        (p, end)
                    });
                }
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        // Every span starts and ends on a char boundary: matches start on one (checked above)
        // and consume whole escapes or whole UTF-8 sequences of a valid secret; widening only
        // crosses ASCII. Assert it rather than risk a panic in slicing.
        merged.retain(|&(s, e)| text.is_char_boundary(s) && text.is_char_boundary(e));
        merged
    }
}

/// The forms a value is looked for in: itself, hex, and the base64 cores of both alphabets at
/// the three alignments.
fn forms(value: &[u8]) -> Vec<Needle> {
    let mut out = vec![
        Needle {
            bytes: value.to_vec(),
            form: Form::Plain,
        },
        Needle {
            bytes: hex(value).into_bytes(),
            form: Form::Hex,
        },
    ];
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3usize {
            // `shift` bytes of anything before the value: the characters whose 6 bits all
            // come from the value are the same whatever those bytes are.
            let mut data = vec![0u8; shift];
            data.extend_from_slice(value);
            let encoded = engine.encode(&data);
            let first = (8 * shift).div_ceil(6);
            let last = 8 * (shift + value.len()) / 6;
            if last > first {
                let core = encoded.as_bytes()[first..last].to_vec();
                let needle = Needle {
                    bytes: core,
                    form: Form::Base64,
                };
                if !out.contains(&needle) {
                    out.push(needle);
                }
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where `needle` ends when it matches `text` from `at`, each needle byte written plainly or
/// escaped (see the module docs). `ci`: ASCII letters match in either case (hex).
fn match_at(text: &[u8], at: usize, needle: &[u8], ci: bool) -> Option<usize> {
    let same = |a: u8, b: u8| a == b || (ci && a.eq_ignore_ascii_case(&b));
    let (mut p, mut j) = (at, 0);
    while j < needle.len() {
        let c = *text.get(p)?;
        let want = needle[j];
        if let Some((decoded, len)) = unescape(text, p) {
            let d = decoded.as_slice();
            let fits = needle.len() - j >= d.len()
                && needle[j..j + d.len()]
                    .iter()
                    .zip(d)
                    .all(|(&a, &b)| same(a, b));
            if fits {
                if same(c, want) {
                    // A secret with a literal `%` or `\`: `%41` may be the escape of `A` or
                    // the secret's own `%` followed by `41`. Try the escape, then the literal.
                    if let Some(end) = match_at(text, p + len, &needle[j + d.len()..], ci) {
                        return Some(end);
                    }
                    p += 1;
                    j += 1;
                } else {
                    p += len;
                    j += d.len();
                }
                continue;
            }
        }
        if same(c, want) || (c == b'+' && want == b' ') {
            p += 1;
            j += 1;
            continue;
        }
        return None;
    }
    Some(p)
}

/// Up to four decoded bytes (one UTF-8 char at most).
struct Decoded {
    bytes: [u8; 4],
    len: usize,
}

impl Decoded {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn byte(b: u8) -> Decoded {
        Decoded {
            bytes: [b, 0, 0, 0],
            len: 1,
        }
    }

    fn char(c: char) -> Decoded {
        let mut bytes = [0u8; 4];
        let len = c.encode_utf8(&mut bytes).len();
        Decoded { bytes, len }
    }
}

/// The escape at `text[p..]`, if there is one: what it decodes to and how long it is.
fn unescape(text: &[u8], p: usize) -> Option<(Decoded, usize)> {
    match text[p] {
        b'%' => {
            let v = hex_value(text.get(p + 1..p + 3)?)?;
            Some((Decoded::byte(v as u8), 3))
        }
        b'\\' => match *text.get(p + 1)? {
            b'/' => Some((Decoded::byte(b'/'), 2)),
            b'\\' => Some((Decoded::byte(b'\\'), 2)),
            b'"' => Some((Decoded::byte(b'"'), 2)),
            b'b' => Some((Decoded::byte(0x08), 2)),
            b'f' => Some((Decoded::byte(0x0c), 2)),
            b'n' => Some((Decoded::byte(b'\n'), 2)),
            b'r' => Some((Decoded::byte(b'\r'), 2)),
            b't' => Some((Decoded::byte(b'\t'), 2)),
            b'u' => {
                let unit = hex_value(text.get(p + 2..p + 6)?)?;
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate: only a following low one makes a char.
                    if text.get(p + 6..p + 8)? != b"\\u" {
                        return None;
                    }
                    let low = hex_value(text.get(p + 8..p + 12)?)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    Some((Decoded::char(char::from_u32(code)?), 12))
                } else {
                    Some((Decoded::char(char::from_u32(unit)?), 6))
                }
            }
            _ => None,
        },
        _ => None,
    }
}

/// The value of 2 or 4 hex digits, in either case.
fn hex_value(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
}

/// Widens a base64 match to the run of base64 characters around it (either alphabet, padding,
/// and PHP's `\/`), so the edge characters that carry part of the secret are masked too.
fn widen_base64(text: &[u8], start: usize, end: usize) -> (usize, usize) {
    let is_b64 = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_');
    let mut s = start;
    loop {
        if s >= 1 && is_b64(text[s - 1]) {
            s -= 1;
        } else if s >= 2 && text[s - 1] == b'/' && text[s - 2] == b'\\' {
            s -= 2;
        } else {
            break;
        }
    }
    let mut e = end;
    loop {
        match text.get(e) {
            Some(&c) if is_b64(c) || c == b'=' => e += 1,
            Some(b'\\') if text.get(e + 1) == Some(&b'/') => e += 2,
            _ => break,
        }
    }
    (s, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret with every character that needs escaping somewhere, and a non-ASCII one.
    const SECRET: &str = "k3y/CAN+ARY=ä 9";

    fn check(secret: &str, echoed: &str, expect: &str) {
        let r = Redactor::new([secret.to_string()]);
        assert_eq!(r.redact(echoed), expect, "echoed as {echoed}");
    }

    #[test]
    fn every_escaped_form_is_masked_and_nothing_else() {
        let cases = [
            ("plain", "k3y/CAN+ARY=ä 9"),
            ("json slash", r"k3y\/CAN+ARY=ä 9"),
            ("json u-escape", r"k3y\u002FCAN+ARY=\u00e4 9"),
            ("json u-escape upper", r"k3y\u002fCAN+ARY=\u00E4 9"),
            (
                "json, every char",
                r"\u006b\u0033\u0079\u002f\u0043\u0041\u004e\u002b\u0041\u0052\u0059\u003d\u00e4\u0020\u0039",
            ),
            ("url upper", "k3y%2FCAN%2BARY%3D%C3%A4+9"),
            ("url lower", "k3y%2fCAN%2bARY%3d%c3%a4%209"),
            ("url mixed with plain", "k3y%2FCAN+ARY=ä%209"),
            ("json and url mixed", r"k3y\/CAN%2BARY=\u00e4+9"),
        ];
        let r = Redactor::new([SECRET.to_string()]);
        for (what, form) in cases {
            assert_eq!(
                r.redact(&format!("error: token {form} is revoked")),
                "error: token *** is revoked",
                "{what}: {form}"
            );
        }
    }

    #[test]
    fn base64_in_both_alphabets_at_any_alignment_with_or_without_padding() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let secret = "s3cr/t+?>~x=";
        for prefix in ["", "u", "us", "usr:"] {
            let data = format!("{prefix}{secret}");
            for encoded in [STANDARD.encode(&data), URL_SAFE_NO_PAD.encode(&data)] {
                check(
                    secret,
                    &format!("sent Basic {encoded}, rejected"),
                    "sent Basic ***, rejected",
                );
                // PHP escapes the slashes of a base64 string in JSON.
                let php = encoded.replace('/', "\\/");
                check(
                    secret,
                    &format!("{{\"auth\":\"{php}\"}}"),
                    "{\"auth\":\"***\"}",
                );
            }
        }
    }

    #[test]
    fn hex_in_either_case() {
        let h = hex(SECRET.as_bytes());
        check(SECRET, &format!("digest {h} end"), "digest *** end");
        check(
            SECRET,
            &format!("digest {} end", h.to_uppercase()),
            "digest *** end",
        );
    }

    #[test]
    fn a_literal_percent_or_backslash_in_the_secret_is_still_found() {
        check("ab%41cd", "x ab%41cd y", "x *** y");
        check("ab%41cd", "x ab%2541cd y", "x *** y");
        check(r"ab\ncd", r"x ab\ncd y", "x *** y");
        check(r"ab\ncd", r"x ab\\ncd y", "x *** y");
        check("päss🔑word", r"x p\u00e4ss\ud83d\udd11word y", "x *** y");
    }

    #[test]
    fn near_misses_stay_readable() {
        check(SECRET, "k3y/CAN+ARY=ä 8", "k3y/CAN+ARY=ä 8");
        check(SECRET, r"k3y\/CAN", r"k3y\/CAN");
        check("abcdef", "%zz \\q \\u12 %4", "%zz \\q \\u12 %4");
        let r = Redactor::new(["abc".to_string()]);
        assert_eq!(r.redact("abc"), "abc", "too short to mask");
    }

    #[test]
    fn overlapping_secrets_are_masked_whole() {
        let r = Redactor::new(["token-1234".to_string(), "1234-5678".to_string()]);
        assert_eq!(r.redact("a token-1234-5678 b"), "a *** b");
    }

    #[test]
    fn rotating_tokens_are_kept_for_the_last_eight() {
        let mut r = Redactor::default();
        for i in 0..10 {
            r.add_rotating(&format!("rotated-token-{i}"));
        }
        assert_eq!(r.redact("rotated-token-9"), "***");
        assert_eq!(r.redact("rotated-token-2"), "***");
        assert_eq!(r.redact("rotated-token-1"), "rotated-token-1");
    }

    #[test]
    fn debug_shows_no_value() {
        let r = Redactor::new([SECRET.to_string()]);
        let d = format!("{r:?}");
        assert!(!d.contains("k3y"), "{d}");
    }
}
