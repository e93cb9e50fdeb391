//! Durable storage for rotated OAuth refresh tokens, one small file per source under the
//! state directory (`<state_dir>/tokens/<source>.json`, mode 0600).
//!
//! When a provider rotates the refresh token (Justworks does), the old one stops working the
//! moment the new one is issued. So the new token is written before the access token that came
//! with it is used: to a temp file, fsynced, renamed over the old file, and the directory
//! fsynced. A crash at any point leaves either the old file or the new one, never a torn one;
//! a crash after the rename but before use leaves the new token, which is the valid one.

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

    /// The persisted refresh token, if one was saved.
    pub fn load(&self) -> std::io::Result<Option<Secret>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let stored: Stored = serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                Ok(Some(Secret::new(stored.refresh_token)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves a refresh token atomically and durably.
    pub fn save(&self, token: &str) -> std::io::Result<()> {
        let dir = self.path.parent().expect("token path has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(&Stored {
            refresh_token: token.to_string(),
            saved_at: jiff::Timestamp::now().to_string(),
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
        assert!(store.load().unwrap().is_none());
        store.save("rt-1").unwrap();
        store.save("rt-2").unwrap();
        assert_eq!(store.load().unwrap().unwrap().expose(), "rt-2");
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
        store.save("rt-good").unwrap();
        std::fs::write(store.path().with_extension("json.tmp"), b"{\"refresh_tok").unwrap();
        assert_eq!(store.load().unwrap().unwrap().expose(), "rt-good");
    }
}
