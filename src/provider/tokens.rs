//! Durable storage for rotated OAuth refresh tokens, one small file per source under the
//! state directory (`<state_dir>/tokens/<source>.json`, mode 0600).
//!
//! When a provider rotates the refresh token (Justworks does), the old one stops working the
//! moment the new one is issued. So the new token is written before the access token that came
//! with it is used: to a temp file, fsynced, renamed over the old file, and the directory
//! fsynced. A crash at any point leaves either the old file or the new one, never a torn one;
//! a crash after the rename but before use leaves the new token, which is the valid one.
//!
//! The file also records which initial token (the `refresh_token` credential) the saved one
//! descends from, as a hash. When the credential changes (an admin approved the app again
//! after the old grant expired or was revoked), the saved token is stale and the new
//! credential is used: otherwise re-authorizing would not take effect until someone found
//! and deleted this file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::secret::Secret;

/// The token file of one source.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    refresh_token: String,
    saved_at: String,
    /// [`origin`] of the credential the rotations started from (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
}

/// A fingerprint of an initial refresh token, to notice that the credential changed without
/// writing it down (it was invalidated at the first rotation anyway).
fn origin(initial: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(initial.as_bytes()))
}

impl TokenStore {
    /// The store for `source` under `state_dir`.
    pub fn new(state_dir: &Path, source: &str) -> TokenStore {
        TokenStore {
            path: state_dir.join("tokens").join(format!("{source}.json")),
        }
    }

    /// Where the token lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The persisted refresh token, if one was saved from the chain that started with
    /// `initial` (the credential's value). A token saved from another initial token is stale:
    /// the credential was replaced after a new approval, so the credential wins.
    pub fn load(&self, initial: &str) -> std::io::Result<Option<Secret>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let stored: Stored = serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                if stored.origin.is_some_and(|o| o != origin(initial)) {
                    return Ok(None);
                }
                Ok(Some(Secret::new(stored.refresh_token)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves a refresh token atomically and durably, with the initial token it descends from.
    pub fn save(&self, token: &str, initial: &str) -> std::io::Result<()> {
        let dir = self.path.parent().expect("token path has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(&Stored {
            refresh_token: token.to_string(),
            saved_at: jiff::Timestamp::now().to_string(),
            origin: Some(origin(initial)),
        })
        .expect("serialisable");
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path(), "justworks");
        assert!(store.load("rt-0").unwrap().is_none());
        store.save("rt-1", "rt-0").unwrap();
        store.save("rt-2", "rt-0").unwrap();
        assert_eq!(store.load("rt-0").unwrap().unwrap().expose(), "rt-2");
        let saved = std::fs::read_to_string(store.path()).unwrap();
        assert!(
            !saved.contains("rt-0"),
            "the initial token is not written: {saved}"
        );
        assert!(
            !store.path().with_extension("json.tmp").exists(),
            "no temp file left behind"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_torn_temp_file_from_a_crash_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path(), "s");
        store.save("rt-good", "rt-0").unwrap();
        std::fs::write(store.path().with_extension("json.tmp"), b"{\"refresh_tok").unwrap();
        assert_eq!(store.load("rt-0").unwrap().unwrap().expose(), "rt-good");
    }

    #[test]
    fn a_new_initial_token_makes_the_saved_one_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path(), "s");
        store.save("rt-rotated", "rt-0").unwrap();
        assert!(store.load("rt-reapproved").unwrap().is_none());
        // A file from before the origin was recorded still wins, as it did.
        std::fs::write(
            store.path(),
            br#"{"refresh_token":"rt-old","saved_at":"x"}"#,
        )
        .unwrap();
        assert_eq!(store.load("anything").unwrap().unwrap().expose(), "rt-old");
    }
}
