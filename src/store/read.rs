//! Reading the published directory, read-only: what `roster events upcoming`, `roster
//! org-chart` and `roster explain` show. They open the published copy (like `roster query`),
//! so they work beside a running daemon, which holds the state database, and need no more
//! than read access to the directory file.
//!
//! Nothing here writes; temporary tables (a list of emails to read) live in the read-only
//! connection's own memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use duckdb::Connection;
use serde_json::{Map, Value};

use super::StoreError;

/// The published directory, open read-only.
pub struct Directory {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("path", &self.path)
            .finish()
    }
}

impl Directory {
    /// Opens a published directory (or any copy of the state database) read-only.
    pub fn open(path: &Path) -> Result<Directory, StoreError> {
        Ok(Directory {
            conn: super::open_readonly(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every person with the given columns (as text), for date triggers.
    pub fn trigger_rows(&self, columns: &[String]) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        super::events::trigger_rows(&self.conn, columns)
    }

    /// The people rows of these emails as JSON objects (empty fields left out).
    pub fn people_json(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, StoreError> {
        super::events::people_json(&self.conn, emails)
    }

    /// Everyone who has not left, as the org chart draws them.
    pub fn org_people(&self) -> Result<Vec<crate::org_chart::OrgPerson>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT work_email,
                    coalesce(nullif(display_name, ''),
                             nullif(trim(concat_ws(' ', first_name, last_name)), ''), work_email),
                    job_title, department, manager_email, coalesce(status, 'active'), worker_type,
                    start_date::VARCHAR
             FROM people WHERE coalesce(status, '') <> 'terminated'",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(crate::org_chart::OrgPerson {
                work_email: r.get(0)?,
                name: r.get(1)?,
                title: r.get(2)?,
                department: r.get(3)?,
                manager_email: r.get(4)?,
                status: r.get(5)?,
                worker_type: r.get(6)?,
                start_date: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
