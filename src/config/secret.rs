//! Secret references and the [`Secret`] type that keeps values out of logs.
//!
//! Secrets are never literals in YAML kept in git. A secret position holds a reference:
//! `{env: NAME}` (environment variable), `{file: PATH}` (a file, trailing newline trimmed) or
//! `{credential: NAME}` (a systemd credential from `LoadCredential=`, read from
//! `$CREDENTIALS_DIRECTORY`). Resolution happens when a source runs, or on `validate
//! --check-secrets`; plain `validate` only checks the shape, so CI needs no secrets.
//!
//! Not here: deciding which positions are secret (the schema marks them with
//! `x-roster-secret`, and the compiler knows which provider credentials are secret).

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A reference to a secret stored outside the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretRef {
    /// `{env: NAME}`: the environment variable `NAME`.
    Env {
        /// Environment variable name.
        env: String,
    },
    /// `{file: PATH}`: the contents of a file (relative paths are relative to the config
    /// directory), trailing newline trimmed.
    File {
        /// Path of the file.
        file: PathBuf,
    },
    /// `{credential: NAME}`: the systemd credential `NAME` (`LoadCredential=NAME:...`).
    Credential {
        /// Credential name.
        credential: String,
    },
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("SecretRef")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A secret, never written in the file: `{env: NAME}`, `{file: PATH}` or `{credential: NAME}` (systemd LoadCredential).",
            "x-roster-secret": true,
            "oneOf": [
                {
                    "type": "object",
                    "description": "The environment variable NAME.",
                    "properties": { "env": { "type": "string", "minLength": 1, "description": "Environment variable name." } },
                    "required": ["env"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "description": "The contents of a file, trailing newline trimmed; relative to the config directory.",
                    "properties": { "file": { "type": "string", "minLength": 1, "description": "Path of the file." } },
                    "required": ["file"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "description": "A systemd credential from LoadCredential=, read from $CREDENTIALS_DIRECTORY.",
                    "properties": { "credential": { "type": "string", "minLength": 1, "description": "Credential name." } },
                    "required": ["credential"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// A resolved secret. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
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

/// Why a secret could not be read. Never contains the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("cannot read secret file `{path}`: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// No `$CREDENTIALS_DIRECTORY` (not running under systemd with `LoadCredential=`).
    #[error("systemd credential `{0}` requested but $CREDENTIALS_DIRECTORY is not set")]
    NoCredentialsDirectory(String),
    /// The value is empty.
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretError {
    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            SecretError::EnvMissing(n) => format!(
                "export {n} in the service environment (systemd: `Environment=` or `EnvironmentFile=`)"
            ),
            SecretError::File { .. } => {
                "check the path and that the roster user may read the file".into()
            }
            SecretError::NoCredentialsDirectory(n) => format!(
                "add `LoadCredential={n}:/path/to/secret` to the unit, or use {{env: NAME}} outside systemd"
            ),
            SecretError::Empty(_) => {
                "put the secret value in place; an empty secret is never valid".into()
            }
        }
    }
}

/// Where secrets are looked up; a trait so tests need not touch the process environment.
pub trait SecretEnv {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// `$CREDENTIALS_DIRECTORY`.
    fn credentials_directory(&self) -> Option<PathBuf>;
    /// The config directory, for relative `{file: ...}` paths.
    fn config_dir(&self) -> &Path;
}

/// The real process environment.
#[derive(Debug, Clone)]
pub struct ProcessEnv {
    /// The config directory.
    pub config_dir: PathBuf,
}

impl SecretEnv for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn credentials_directory(&self) -> Option<PathBuf> {
        std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
    }
    fn config_dir(&self) -> &Path {
        &self.config_dir
    }
}

impl SecretRef {
    /// Where the secret comes from, for messages: `environment variable X`.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env { env } => format!("environment variable `{env}`"),
            SecretRef::File { file } => format!("file `{}`", file.display()),
            SecretRef::Credential { credential } => format!("systemd credential `{credential}`"),
        }
    }

    /// Reads the secret.
    pub fn resolve(&self, env: &dyn SecretEnv) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env { env: name } => env
                .var(name)
                .ok_or_else(|| SecretError::EnvMissing(name.clone()))?,
            SecretRef::File { file } => read_trimmed(&env.config_dir().join(file))?,
            SecretRef::Credential { credential } => {
                let dir = env
                    .credentials_directory()
                    .ok_or_else(|| SecretError::NoCredentialsDirectory(credential.clone()))?;
                read_trimmed(&dir.join(credential))?
            }
        };
        if value.trim().is_empty() {
            return Err(SecretError::Empty(self.describe()));
        }
        Ok(Secret(value))
    }
}

fn read_trimmed(path: &Path) -> Result<String, SecretError> {
    let mut s = std::fs::read_to_string(path).map_err(|e| SecretError::File {
        path: path.to_path_buf(),
        reason: e.kind().to_string(),
    })?;
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    Ok(s)
}

/// A credential value in a source: a reference, or a literal where the provider declares the
/// credential non-secret (a client id, an account token that is not a secret).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum CredentialValue {
    /// A secret reference.
    Secret(SecretRef),
    /// A literal, allowed only for credentials the provider declares `secret: false`.
    Literal(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv {
        vars: HashMap<String, String>,
        creds: Option<PathBuf>,
        dir: PathBuf,
    }

    impl SecretEnv for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn credentials_directory(&self) -> Option<PathBuf> {
            self.creds.clone()
        }
        fn config_dir(&self) -> &Path {
            &self.dir
        }
    }

    #[test]
    fn resolves_each_kind_and_never_prints_the_value() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("api.key"), "from-file\n").unwrap();
        std::fs::create_dir(tmp.path().join("creds")).unwrap();
        std::fs::write(tmp.path().join("creds/personio"), "from-cred").unwrap();
        let env = FakeEnv {
            vars: HashMap::from([("TOKEN".into(), "from-env".into())]),
            creds: Some(tmp.path().join("creds")),
            dir: tmp.path().to_path_buf(),
        };
        let get = |r: SecretRef| r.resolve(&env).map(|s| s.expose().to_string());
        assert_eq!(
            get(SecretRef::Env {
                env: "TOKEN".into()
            })
            .unwrap(),
            "from-env"
        );
        assert_eq!(
            get(SecretRef::File {
                file: "api.key".into()
            })
            .unwrap(),
            "from-file"
        );
        assert_eq!(
            get(SecretRef::Credential {
                credential: "personio".into()
            })
            .unwrap(),
            "from-cred"
        );
        assert_eq!(
            get(SecretRef::Env { env: "NOPE".into() }).unwrap_err(),
            SecretError::EnvMissing("NOPE".into())
        );
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }

    #[test]
    fn credential_without_systemd_says_what_to_do() {
        let env = FakeEnv {
            vars: HashMap::new(),
            creds: None,
            dir: PathBuf::from("/"),
        };
        let e = SecretRef::Credential {
            credential: "k".into(),
        }
        .resolve(&env)
        .unwrap_err();
        assert!(e.help().contains("LoadCredential=k:"));
    }
}
