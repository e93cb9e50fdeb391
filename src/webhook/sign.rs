//! Standard Webhooks signatures: the `whsec_` secret, signing, the rotation header, verifying.
//!
//! The scheme (<https://www.standardwebhooks.com>, "Signature scheme"): HMAC-SHA256, keyed with
//! the base64-decoded secret, over `{msg_id}.{timestamp}.{body}`, sent as `v1,<base64 tag>`.
//! The `webhook-signature` header is a space-separated list, one signature per secret, so a
//! receiver can move to a new secret without dropping messages.
//!
//! Not here: the asymmetric `v1a` (ed25519) scheme, and the receiver's timestamp tolerance
//! and idempotency checks ([`verify`] checks the signature only; it serves our tests and
//! `roster`'s own test receivers). Sending is in `attempt`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix that marks a symmetric Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Fewest key bytes a secret may have: the spec asks for at least 24 random bytes.
pub const MIN_SECRET_BYTES: usize = 24;

/// Most key bytes a secret may have: the spec's maximum is 512 bits.
pub const MAX_SECRET_BYTES: usize = 64;

/// Decodes padded and unpadded base64, like the reference libraries (Python appends `==`).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A webhook signing secret: the key of `whsec_<base64>`.
///
/// `Debug` and `Display` print `***`; the key never leaves this type except as signatures.
#[derive(Clone)]
pub struct Secret {
    /// HMAC-SHA256 already keyed with the secret; each signature starts from a clone.
    mac: HmacSha256,
}

/// Why a signing secret was refused. Messages never contain the secret or a part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Nothing after the prefix (or nothing at all).
    #[error(
        "the webhook signing secret is empty; set it to the `whsec_...` value the receiver gave you, \
         or generate one with `echo whsec_$(openssl rand -base64 32)` and give it to the receiver"
    )]
    Empty,
    /// An asymmetric (`whsk_`/`whpk_`) key where an HMAC secret was expected.
    #[error(
        "the webhook signing secret is an asymmetric (ed25519) key, which roster does not sign with; \
         use a symmetric `whsec_...` secret"
    )]
    Asymmetric,
    /// Not base64 after the prefix.
    #[error(
        "the webhook signing secret is not valid base64 after its `whsec_` prefix; copy the whole \
         `whsec_...` value the receiver gave you (standard base64 alphabet, no line breaks)"
    )]
    NotBase64,
    /// Decodes to fewer or more bytes than the spec allows.
    #[error(
        "the webhook signing secret decodes to {bytes} bytes, but Standard Webhooks secrets have \
         {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes; generate one with \
         `echo whsec_$(openssl rand -base64 32)` and give it to the receiver"
    )]
    Length {
        /// How many bytes the secret decoded to.
        bytes: usize,
    },
}

impl Secret {
    /// Parses `whsec_<base64>`, or the bare base64 (as the reference libraries accept).
    ///
    /// Surrounding whitespace is ignored (a secret file often ends with a newline); padding
    /// is optional. The key must be 24 to 64 bytes, as the spec asks.
    pub fn parse(s: &str) -> Result<Secret, SecretError> {
        let s = s.trim();
        if s.starts_with("whsk_") || s.starts_with("whpk_") {
            return Err(SecretError::Asymmetric);
        }
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        if b64.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = LENIENT.decode(b64).map_err(|_| SecretError::NotBase64)?;
        Secret::from_bytes(&key)
    }

    /// A secret from its raw key bytes (24 to 64 of them).
    pub fn from_bytes(key: &[u8]) -> Result<Secret, SecretError> {
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::Length { bytes: key.len() });
        }
        // HMAC takes keys of any length; this error cannot happen, but needs no panic either.
        let mac = HmacSha256::new_from_slice(key)
            .map_err(|_| SecretError::Length { bytes: key.len() })?;
        Ok(Secret { mac })
    }

    /// The raw HMAC-SHA256 tag of `{msg_id}.{timestamp}.{body}`.
    fn tag(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The `v1,<base64>` signature of one message with one secret.
///
/// `timestamp` is the attempt's Unix time in seconds, exactly as sent in `webhook-timestamp`:
/// the spec updates it on every retry, so each attempt is signed anew.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret.tag(msg_id, timestamp, body);
    format!("v1,{}", general_purpose::STANDARD.encode(tag))
}

/// The `webhook-signature` header value: one signature per secret, space-separated, in the
/// order given (the current secret first, then those being rotated out).
///
/// No secrets gives an empty string; configuration always has at least one.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` (a `webhook-signature` value) holds a valid `v1` signature of the message
/// by `secret`.
///
/// Any of the space-separated signatures may match; other versions (`v1a`, future ones) and
/// malformed entries are skipped. Comparison is constant-time. The timestamp's freshness is
/// not checked: that is the receiver's policy.
pub fn verify(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = secret.tag(msg_id, timestamp, body);
    let mut found = false;
    for entry in header.split_ascii_whitespace() {
        let Some(("v1", sig)) = entry.split_once(',') else {
            continue;
        };
        let Ok(sig) = STANDARD.decode(sig) else {
            continue;
        };
        // No early return: every candidate is compared, whichever matches.
        found |= constant_time_eq(&expected, &sig);
    }
    found
}

/// Equal contents, in time that depends only on the lengths (which are public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of the reference libraries' tests (Python `test_sign_function`, and the
    /// JavaScript, Go, ... equivalents) in standard-webhooks/standard-webhooks.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret(s: &str) -> Secret {
        Secret::parse(s).unwrap()
    }

    #[test]
    fn reference_vector() {
        let s = secret(SPEC_SECRET);
        assert_eq!(sign(&s, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
        assert!(verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG));
    }

    #[test]
    fn reference_rust_library_vector() {
        // libraries/rust/src/lib.rs `test_sign` in standard-webhooks/standard-webhooks.
        let s = secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        assert_eq!(
            sign(
                &s,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#,
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn secret_forms() {
        let reference = sign(&secret(SPEC_SECRET), SPEC_ID, SPEC_TS, SPEC_BODY);
        // Without the prefix, with surrounding whitespace (a secret file's newline).
        for form in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
            "  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ",
        ] {
            assert_eq!(
                sign(&secret(form), SPEC_ID, SPEC_TS, SPEC_BODY),
                reference,
                "{form:?}"
            );
        }
        // Padding optional: 25 bytes encode to `...=` padded.
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 25]));
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(
            sign(&secret(&padded), "m", 1, b"{}"),
            sign(&secret(unpadded), "m", 1, b"{}")
        );
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        let check = |input: &str, want: SecretError| {
            let err = Secret::parse(input).unwrap_err();
            assert_eq!(err, want, "{input:?}");
            let msg = err.to_string();
            let body = input.trim().trim_start_matches(SECRET_PREFIX);
            if body.len() >= 4 {
                assert!(!msg.contains(body), "{msg} echoes the secret");
            }
        };
        check("", SecretError::Empty);
        check("whsec_", SecretError::Empty);
        check("   ", SecretError::Empty);
        check("whsec_not*base64!canaryvalue", SecretError::NotBase64);
        check("whsec_canary-url_safe-chars-used", SecretError::NotBase64);
        check("whsk_c2VjcmV0c2VjcmV0", SecretError::Asymmetric);
        check(
            &format!("whsec_{}", STANDARD.encode(b"too-short-canary")),
            SecretError::Length { bytes: 16 },
        );
        check(
            &format!("whsec_{}", STANDARD.encode([1u8; 65])),
            SecretError::Length { bytes: 65 },
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = secret(SPEC_SECRET);
        for shown in [format!("{s}"), format!("{s:?}"), format!("{s:#?}")] {
            assert!(!shown.contains("MfKQ"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
    }

    #[test]
    fn rotation_header_verifies_with_each_secret() {
        let old = secret(SPEC_SECRET);
        let new = secret(&format!("whsec_{}", STANDARD.encode([42u8; 32])));
        let other = secret(&format!("whsec_{}", STANDARD.encode([9u8; 32])));
        let header = signature_header(&[new.clone(), old.clone()], SPEC_ID, SPEC_TS, SPEC_BODY);

        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&new, SPEC_ID, SPEC_TS, SPEC_BODY));
        assert_eq!(parts[1], SPEC_SIG);
        assert!(verify(&new, SPEC_ID, SPEC_TS, SPEC_BODY, &header));
        assert!(verify(&old, SPEC_ID, SPEC_TS, SPEC_BODY, &header));
        assert!(!verify(&other, SPEC_ID, SPEC_TS, SPEC_BODY, &header));
        assert_eq!(signature_header(&[], SPEC_ID, SPEC_TS, SPEC_BODY), "");
    }

    #[test]
    fn tampering_fails() {
        let s = secret(SPEC_SECRET);
        assert!(!verify(
            &s,
            SPEC_ID,
            SPEC_TS,
            br#"{"test": 2432232315}"#,
            SPEC_SIG
        ));
        assert!(!verify(
            &s,
            SPEC_ID,
            SPEC_TS,
            br#"{"test":2432232314}"#,
            SPEC_SIG
        ));
        assert!(!verify(
            &s,
            "msg_p5jXN8AQM9LWM0D4loKWxJeK",
            SPEC_TS,
            SPEC_BODY,
            SPEC_SIG
        ));
        assert!(!verify(&s, SPEC_ID, SPEC_TS + 1, SPEC_BODY, SPEC_SIG));
        // Moving the separator between id and timestamp changes the signed content.
        assert!(!verify(
            &s,
            "msg_p5jXN8AQM9LWM0D4loKWxJek.1",
            614265330,
            SPEC_BODY,
            SPEC_SIG
        ));
        // The reference tests' "invalid signature": last character changed.
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert!(!verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, wrong));
    }

    #[test]
    fn header_parsing() {
        let s = secret(SPEC_SECRET);
        let tag = SPEC_SIG.trim_start_matches("v1,");
        let ok = |h: &str| verify(&s, SPEC_ID, SPEC_TS, SPEC_BODY, h);
        // From the reference tests: other versions and wrong signatures around the right one.
        assert!(ok(&format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,{tag} {SPEC_SIG} \
             v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
        )));
        assert!(!ok(&format!("v2,{tag}")));
        assert!(!ok(&format!("v1a,{tag}")));
        assert!(!ok(tag));
        assert!(!ok(""));
        assert!(!ok("v1, v1,*** garbage ,,,"));
        assert!(!ok(&format!("v1,{}", &tag[..20])));
    }

    #[derive(Debug)]
    struct Case {
        name: String,
        secret: String,
        msg_id: String,
        timestamp: i64,
        body: String,
        signature: String,
    }

    /// Cases computed by the official `standardwebhooks` Python package
    /// (`webhook_vectors.py generate`); `webhook_vectors.py check` recomputes them.
    fn reference_cases() -> Vec<Case> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/webhook-vectors.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let field = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap().to_owned();
        json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Case {
                name: field(c, "name"),
                secret: field(c, "secret"),
                msg_id: field(c, "msg_id"),
                timestamp: c["timestamp"].as_i64().unwrap(),
                body: field(c, "body"),
                signature: field(c, "signature"),
            })
            .collect()
    }

    #[test]
    fn agrees_with_the_reference_python_library() {
        let cases = reference_cases();
        assert!(cases.len() >= 20, "only {} cases", cases.len());
        for c in &cases {
            let s = secret(&c.secret);
            let body = c.body.as_bytes();
            assert_eq!(sign(&s, &c.msg_id, c.timestamp, body), c.signature, "{c:?}");
            assert!(
                verify(&s, &c.msg_id, c.timestamp, body, &c.signature),
                "{}",
                c.name
            );
        }
    }
}
