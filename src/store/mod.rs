//! The store: the only module that speaks SQL.
//!
//! Roster keeps a private **state database** (`<state_dir>/state.duckdb`), which only the
//! process that syncs opens (read-write), and **publishes** the directory for readers as a
//! separate file (`directory.duckdb` by default): after each applied sync the state database is
//! checkpointed and copied to a temporary file beside the directory file, which is then
//! renamed over it. A reader (`duckdb -readonly`, Python, `roster query`) therefore opens
//! either the previous complete directory or the new one, never a half-applied sync, and never
//! conflicts with the writer's lock (DuckDB allows one read-write process or many read-only
//! ones, never both).

mod batch;
pub mod events;
pub mod read;
mod schema;
pub mod sync;
pub mod value;

use std::path::{Path, PathBuf};

use duckdb::{AccessMode, Config, Connection};

pub use schema::people_columns;

/// The state database's file name inside the state directory.
pub const STATE_FILE: &str = "state.duckdb";
/// The published directory's default file name inside the state directory.
pub const DIRECTORY_FILE: &str = "directory.duckdb";

/// Why the store could not be used. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the state database.
    #[error(
        "the state database {path} is in use by another process{holder}; only one process may open it at a time (help: if that is the roster daemon, `roster plan` and `roster events` go through it on their own and `roster sync --now` asks it to sync; otherwise wait for the other process to finish, or stop it{pid_hint})"
    )]
    Locked {
        /// The state database.
        path: PathBuf,
        /// ` (PID 1234, /usr/bin/roster)` when DuckDB named it.
        holder: String,
        /// `, e.g. kill 1234` when known.
        pid_hint: String,
    },
    /// The file is not a DuckDB database, or one of its blocks is damaged.
    #[error(
        "{path} is not a readable DuckDB database ({detail}); Roster never recreates it on its own (help: restore it from a backup; or stop roster, move it aside, e.g. `mv {path} {path}.broken`, and run `roster sync --rebaseline` to rebuild the directory from the HR systems (history and first-seen dates start over); README: Recovery)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// DuckDB's words.
        detail: String,
    },
    /// The state database is missing although files beside it show this deployment had one.
    #[error(
        "the state database {path} is missing, but {evidence}: this deployment had state (history, the event outbox and pending deliveries live in that file), and Roster never starts over silently (help: restore {path} from a backup (README: Recovery); or, to start over on purpose, run `roster sync --rebaseline` or `roster run --rebaseline`: the first sync is then a baseline that sends no person events, history and first-seen dates start again, and the published directory is replaced)"
    )]
    StateMissing {
        /// The missing file.
        path: PathBuf,
        /// What shows there was state.
        evidence: String,
    },
    /// The write-ahead log beside the database cannot be replayed (the database file itself
    /// may be intact).
    #[error(
        "the write-ahead log {wal} of {path} cannot be replayed ({detail}) (help: stop roster and move only the log aside, e.g. `mv {wal} {wal}.broken`, then start again: history is kept, and the changes written since the last checkpoint come back with the next sync; only if {path} is still unreadable then, move it aside too and run `roster sync --rebaseline` to rebuild the directory from the HR systems (history and first-seen dates start over), or restore a backup)"
    )]
    WalReplay {
        /// The database file.
        path: PathBuf,
        /// Its write-ahead log.
        wal: PathBuf,
        /// DuckDB's words.
        detail: String,
    },
    /// The filesystem is full.
    #[error(
        "the disk holding {dir} ran full ({free} now that the failed work is cleaned up): {detail}; {consequence} (help: free space on that filesystem (DuckDB also spills into `state.duckdb.tmp/` beside the state database during large syncs) or move `store.state_dir` to a larger one, then sync again: `roster sync`, or the daemon retries at the next scheduled run)"
    )]
    DiskFull {
        /// The directory whose filesystem is full.
        dir: PathBuf,
        /// What is free there now, e.g. `12 KB free of 20 MB`.
        free: String,
        /// What this means for the data.
        consequence: &'static str,
        /// DuckDB's words.
        detail: String,
    },
    /// DuckDB could not read or write one of the store's files (a disk error, a file deleted
    /// or made unreadable under it).
    #[error(
        "cannot read or write {path}: {detail}; nothing of the failing transaction was applied (help: check that the file still exists and is readable by roster's user, and the disk (`dmesg` shows I/O errors); restore the file from a backup if it is gone)"
    )]
    FileIo {
        /// The file DuckDB named (or the state database).
        path: PathBuf,
        /// DuckDB's words.
        detail: String,
    },
    /// DuckDB stopped using the database after an earlier fatal error in this process.
    #[error(
        "DuckDB stopped using {path} after an earlier fatal error in this process ({detail}); nothing more is written to it (help: the first error logged before this one says why (a full disk, a damaged file); fix that, then restart roster)"
    )]
    Invalidated {
        /// The database file.
        path: PathBuf,
        /// DuckDB's words.
        detail: String,
    },
    /// DuckDB needed more memory than its limit for work it cannot spill to disk.
    #[error(
        "the store ran out of the memory DuckDB may use ({detail}); nothing of the failing transaction was applied (help: raise `store.memory_limit` in roster.yaml, e.g. `store: {{memory_limit: 1GB}}`, and keep the systemd unit's `MemoryMax=` above it; then sync again)"
    )]
    OutOfMemory {
        /// DuckDB's words (with the sizes it tried).
        detail: String,
    },
    /// The database was written by a newer Roster.
    #[error(
        "{path} has schema version {found}, newer than this roster understands ({known}) (help: run the newer roster, or restore a backup made by this version)"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i32,
        /// Ours.
        known: i32,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] duckdb::Error),
}

impl StoreError {
    /// The same error, classified against the state database at `state_path` when it is a
    /// bare DuckDB error: a query deep inside a sync that hits a damaged block or a full disk
    /// then says so, and what to do, like opening the file does.
    pub fn locate(self, state_path: &Path) -> StoreError {
        match self {
            StoreError::Sql(e) => classify(state_path, e),
            other => other,
        }
    }

    /// DuckDB ran out of the memory it may use (not a full disk, which it words alike).
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            StoreError::OutOfMemory { .. } => true,
            StoreError::Sql(e) => matches!(
                classify_text(Path::new(""), &e.to_string()),
                Some(StoreError::OutOfMemory { .. })
            ),
            _ => false,
        }
    }

    /// The store cannot be used until someone acts (a damaged or missing file, a full disk,
    /// an I/O error), as opposed to one failed query or a busy lock. The daemon is not ready
    /// while its last job failed this way.
    pub fn is_unusable(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::WalReplay { .. }
                | StoreError::DiskFull { .. }
                | StoreError::FileIo { .. }
                | StoreError::Invalidated { .. }
                | StoreError::Io { .. }
        )
    }
}

/// Phase timings of a long operation, logged at debug level (`RUST_LOG=roster=debug`) so a
/// slow sync can be taken apart without a profiler.
#[derive(Debug)]
pub(crate) struct Laps {
    what: &'static str,
    last: std::time::Instant,
}

impl Laps {
    pub(crate) fn new(what: &'static str) -> Laps {
        Laps {
            what,
            last: std::time::Instant::now(),
        }
    }

    /// Logs the time since the previous lap under `phase`.
    pub(crate) fn lap(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        self.log(phase, now - self.last);
        self.last = now;
    }

    /// Logs `took`, measured by the caller, under `phase` (a part of a lap, summed over a
    /// loop); the next lap still counts from the previous one.
    pub(crate) fn part(&self, phase: &str, took: std::time::Duration) {
        self.log(phase, took);
    }

    fn log(&self, phase: &str, took: std::time::Duration) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        // Peak resident memory so far (Linux), to see which phase grows it.
        let peak_mb = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kb| kb / 1024);
        tracing::debug!(
            what = self.what,
            phase,
            ms = format_args!("{:.1}", took.as_secs_f64() * 1000.0),
            peak_mb,
            "timing"
        );
    }
}

/// The state database, open read-write.
pub struct Store {
    pub(crate) conn: Connection,
    state_path: PathBuf,
    directory_path: PathBuf,
    /// Where events go; None: no webhooks configured, no events written.
    pub(crate) routing: Option<std::sync::Arc<crate::events::Routing>>,
    /// `store.memory_limit`, when set.
    memory_configured: Option<u64>,
    /// The limit [`Store::fit_memory_to`] set last (0: the default).
    memory_auto: std::sync::atomic::AtomicU64,
    /// How many times the automatic limit was doubled after a sync ran out of memory under
    /// it ([`Store::raise_auto_memory`]); 0 again when `store.memory_limit` changes (the
    /// daemon applies the config before every sync: a source that needed more keeps it).
    memory_doublings: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("state", &self.state_path)
            .field("directory", &self.directory_path)
            .finish()
    }
}

/// Rows an appender is given before they are handed to DuckDB. The C API's appender buffers
/// rows in memory DuckDB's limit does not cover, up to 204,800 of them: a 100k first sync
/// held 120 MB there before its appenders were flushed in batches.
pub(crate) const APPEND_BATCH: usize = 2048;

/// An appender that hands its rows to DuckDB every [`APPEND_BATCH`] rows (and at
/// [`Batched::finish`]), so what it buffers stays bounded whatever the number of rows.
pub(crate) struct Batched<'a> {
    app: duckdb::Appender<'a>,
    rows: usize,
}

impl<'a> Batched<'a> {
    /// Appends to `table` of the main database.
    pub(crate) fn new(conn: &'a Connection, table: &str) -> Result<Batched<'a>, StoreError> {
        Ok(Batched {
            app: conn.appender(table)?,
            rows: 0,
        })
    }

    /// Appends to a temporary table.
    pub(crate) fn temp(conn: &'a Connection, table: &str) -> Result<Batched<'a>, StoreError> {
        Ok(Batched {
            app: conn.appender_to_catalog_and_db(table, "temp", "main")?,
            rows: 0,
        })
    }

    /// Appends one row.
    pub(crate) fn append_row<P: duckdb::AppenderParams>(
        &mut self,
        row: P,
    ) -> Result<(), StoreError> {
        self.app.append_row(row)?;
        self.rows += 1;
        if self.rows % APPEND_BATCH == 0 {
            self.app.flush()?;
        }
        Ok(())
    }

    /// Hands the remaining rows to DuckDB.
    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        self.app.flush()?;
        Ok(())
    }
}

/// DuckDB's threads for set-based SQL (finding the affected people, the data problems, a
/// checkpoint). While Roster's own threads work beside DuckDB, it gets one instead
/// ([`Store::set_duckdb_threads`]): during a listing (parsing and mapping threads) and the
/// merge (the merging thread). On two cores its second thread then only competed with
/// them, and the appending thread spun in DuckDB's executor waiting for that worker. A
/// 100k first sync used about 0.5 s less CPU that way, and ran in 4.9-5.0 s instead of
/// 5.2-5.4 s.
pub(crate) const DUCKDB_THREADS: usize = 2;

/// The state database's name in SQL (what DuckDB would call `state.duckdb` opened directly).
const STATE_DB: &str = "state";

/// Rows per row group in the state database (DuckDB's default is 122,880). A transaction
/// that appends at least a row group's worth of rows to a table is a bulk append: DuckDB
/// compresses and writes each full row group as the rows arrive, and the commit only links
/// them in. Below that, the rows wait uncommitted (spilled to disk and read back beyond the
/// memory limit), are appended again at the commit, and compressed there, on one thread
/// for a row group. A first sync of 100k people spent 1.3 s in its commit that way; with
/// row groups of 49,152 it takes the bulk path, and ran in 3.9-4.0 s instead of 4.9-5.0.
/// Smaller row groups also give DuckDB more to scan in parallel. They cost space: each
/// repeats its dictionaries, and the 100k directory is 22.8 MB instead of 20.7 MB (10%);
/// at 32,768 rows it was 26 MB, at 16,384 31 MB, for no more speed. The size only decides
/// how new rows are grouped: files written with another size read the same.
const ROW_GROUP_SIZE: u64 = 49_152;

/// Memory DuckDB's buffer manager may use before it spills to disk (the sync's uncommitted
/// records included) when `store.memory_limit` is not set and no sync is running: the merge
/// runs in Rust, a chunk of people at a time, so this is low.
const MEMORY_LIMIT: &str = "48MB";

/// DuckDB's checkpoint merges row groups that lost rows whenever the survivors fit in fewer
/// (its vacuum), decompressing and recompressing every column: after a 10%-changed re-sync
/// of 500k people that was 3.6 s of 12.9 s, and it left the state file 177 MB instead of
/// 116 MB. Roster holds the vacuum off (`max_vacuum_tasks = 0`) and lets a publish run it
/// once the rows its syncs deleted since the last one (`meta.dead_rows`) reach this share of
/// the rows of the tables they came from: the dead rows then cost at most half as much again
/// in scans, and a directory that changes 10% a sync vacuums about every fifth. Measured at
/// 500k people, 10% changed each time: 9.8-9.9 s a re-sync, 14.1 s when it vacuums (it was
/// 12.9-13.5 s every time); the file stays at 178 MB either way.
const VACUUM_AT: f64 = 0.5;

/// DuckDB's default number of vacuum tasks a checkpoint may schedule.
const VACUUM_TASKS: u32 = 100;

/// What the limit a sync sets when `store.memory_limit` is not set starts from (before
/// [`AUTO_MEMORY_PER_RECORD`]): [`MEMORY_LIMIT`]. Not more, although part of DuckDB's memory
/// is held for the whole transaction (a 1%-changed re-sync of 100k people needs 60-64 MB in
/// its data problems, and has 68): at 64 MiB, the same re-sync of 500k people ran out of
/// memory there in 5 runs of 6, against none of 6 at 48 MiB. DuckDB plans its operators for
/// the limit, not for what the transaction leaves of it. A sync that runs out of memory
/// runs again with twice the limit ([`Store::raise_auto_memory`]).
const AUTO_MEMORY_BASE: u64 = 48 << 20;
/// The limit a sync sets grows by this much per record of the source (listed or stored,
/// whichever is more), up to [`AUTO_MEMORY_MAX`]. Not everything spills: the hash joins and
/// window functions over a whole first listing need a share of it at once, and at a fixed
/// 48 MB a first sync of 100k people failed with "failed to pin block" (issue 16). With
/// [`AUTO_MEMORY_BASE`] this gives 68 MiB at 100k and 143 MiB at 500k people.
const AUTO_MEMORY_PER_RECORD: u64 = 200;
/// The most the automatic limit grows to (a deployment larger than 4M records sets
/// `store.memory_limit` itself).
const AUTO_MEMORY_MAX: u64 = 1 << 30;

/// How often [`Store::raise_auto_memory`] doubles the automatic limit (to 4x at most).
const MAX_MEMORY_DOUBLINGS: u32 = 2;

/// DuckDB's memory limit for a sync of a source with `records` records, when none is set.
pub fn auto_memory_limit(records: u64) -> u64 {
    AUTO_MEMORY_BASE
        + records
            .saturating_mul(AUTO_MEMORY_PER_RECORD)
            .min(AUTO_MEMORY_MAX - AUTO_MEMORY_BASE)
}

fn classify(path: &Path, e: duckdb::Error) -> StoreError {
    classify_text(path, &e.to_string()).unwrap_or(StoreError::Sql(e))
}

/// What DuckDB's message `text` means for the state database at `path`, when it is one of the
/// errors that need an operator (None: an ordinary query error). The order matters: a WAL
/// replay or an invalidated database can quote a corruption or I/O message as its cause.
fn classify_text(path: &Path, text: &str) -> Option<StoreError> {
    let first_line = || {
        text.lines()
            .next()
            .unwrap_or("unreadable")
            .trim()
            .to_string()
    };
    if text.contains("Could not set lock") || text.contains("Conflicting lock") {
        // DuckDB: "... Conflicting lock is held in /usr/bin/roster (PID 1234) by user ..."
        let pid = text
            .split("(PID ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .map(str::to_string);
        let exe = text
            .split("is held in ")
            .nth(1)
            .and_then(|r| r.split(" (PID").next())
            .map(str::to_string);
        let holder = match (&pid, &exe) {
            (Some(p), Some(x)) => format!(" (PID {p}, {x})"),
            (Some(p), None) => format!(" (PID {p})"),
            _ => String::new(),
        };
        return Some(StoreError::Locked {
            path: path.to_path_buf(),
            holder,
            pid_hint: pid
                .map(|p| format!(", e.g. `kill {p}`"))
                .unwrap_or_default(),
        });
    }
    // DuckDB's spill files are capped by `max_temp_directory_size`, which by default is the
    // space free on their disk: a full disk then reads as "Out of Memory Error: failed to
    // offload data block ... max_temp_directory_size" without any ENOSPC (seen on a 2 MB
    // tmpfs). Roster never sets the setting, so this is the disk.
    if text.contains("No space left on device")
        || text.contains("ENOSPC")
        || text.contains("max_temp_directory_size")
    {
        return Some(disk_full(
            path,
            quoted_path(text),
            text.contains("invalidated"),
            first_line(),
        ));
    }
    if text.contains("Out of Memory Error") {
        return Some(StoreError::OutOfMemory {
            detail: first_line(),
        });
    }
    if text.contains("replaying WAL") {
        // DuckDB: `Failure while replaying WAL file "/x/state.duckdb.wal": <cause>`
        let mut wal = path.as_os_str().to_owned();
        wal.push(".wal");
        return Some(StoreError::WalReplay {
            path: path.to_path_buf(),
            wal: quoted_path(text).unwrap_or_else(|| wal.into()),
            detail: first_line(),
        });
    }
    if text.contains("has been invalidated") {
        return Some(StoreError::Invalidated {
            path: path.to_path_buf(),
            detail: first_line(),
        });
    }
    // The header case ("not a valid DuckDB database") and a damaged data block, which DuckDB
    // finds only when a query reads it ("Corrupt database file: computed checksum ... does
    // not match stored checksum ... in block at location ...").
    if text.contains("not a valid DuckDB database")
        || text.contains("Corrupt")
        || text.contains("corrupt")
        || text.contains("checksum")
        || text.contains("Checksum")
    {
        return Some(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: first_line(),
        });
    }
    if text.starts_with("IO Error") {
        // "Could not read from file", "Could not open file", "Could not fsync file", ...
        return Some(StoreError::FileIo {
            path: quoted_path(text).unwrap_or_else(|| path.to_path_buf()),
            detail: first_line(),
        });
    }
    None
}

/// The first double-quoted path in a DuckDB message (`Could not write file "/x/y": ...`).
fn quoted_path(text: &str) -> Option<PathBuf> {
    let rest = text.split_once('"')?.1;
    let quoted = rest.split_once('"')?.0;
    quoted.starts_with('/').then(|| PathBuf::from(quoted))
}

/// A full filesystem: which directory, how much is free there now, and what it meant for the
/// data. `file` is the file DuckDB could not write, when it said; `invalidated`: DuckDB gave
/// up on the database (a checkpoint failed after the commit).
fn disk_full(
    state_path: &Path,
    file: Option<PathBuf>,
    invalidated: bool,
    detail: String,
) -> StoreError {
    let state_dir = state_path.parent().unwrap_or(Path::new("."));
    let dir = file
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(state_dir)
        .to_path_buf();
    // The state file, its WAL and DuckDB's spill files (`state.duckdb.tmp/`) belong to the
    // sync's transaction, which DuckDB rolls back; anything else is the published copy.
    let in_state = file.as_deref().is_none_or(|f| {
        f.to_string_lossy()
            .starts_with(&*state_path.to_string_lossy())
    });
    let consequence = if invalidated {
        "nothing was lost: committed changes are in the write-ahead log, but DuckDB stopped using the database until roster restarts, so restart it once there is space"
    } else if in_state {
        "nothing was lost: the transaction rolled back, so the directory, its history and the outbox are as they were before this run"
    } else {
        "the sync itself is safe in the state database; only publishing failed, so readers keep the previous directory until the next applied sync publishes again"
    };
    StoreError::DiskFull {
        free: free_space(&dir),
        dir,
        consequence,
        detail,
    }
}

/// `12.0 KB free of 20.0 MB` for the filesystem holding `dir` (what an unprivileged process
/// may use), or why it is unknown.
fn free_space(dir: &Path) -> String {
    match rustix::fs::statvfs(dir) {
        Ok(st) => format!(
            "{} free of {}",
            human_bytes(st.f_bavail.saturating_mul(st.f_frsize)),
            human_bytes(st.f_blocks.saturating_mul(st.f_frsize))
        ),
        Err(e) => format!("free space unknown: {e}"),
    }
}

/// Bytes in decimal units, one decimal (`1.5 GB`).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn create_dir_private(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|source| StoreError::Io {
        what: "cannot create the state directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// What shows that a deployment had a state database: a published directory, saved OAuth
/// tokens, a write-ahead log. `None` when there is no sign of one (a new deployment).
fn prior_state(state_path: &Path, directory: &Path) -> Option<String> {
    let mut signs = Vec::new();
    if directory.exists() {
        signs.push(format!(
            "the published directory {} exists",
            directory.display()
        ));
    }
    let mut wal = state_path.as_os_str().to_owned();
    wal.push(".wal");
    if Path::new(&wal).exists() {
        signs.push(format!(
            "its write-ahead log {} exists",
            Path::new(&wal).display()
        ));
    }
    let tokens = state_path.with_file_name("tokens");
    if std::fs::read_dir(&tokens).is_ok_and(|mut d| d.next().is_some()) {
        signs.push(format!("saved OAuth tokens are in {}", tokens.display()));
    }
    (!signs.is_empty()).then(|| signs.join(" and "))
}

impl Store {
    /// Opens the state database in `state_dir` (creating it for a new deployment) and brings
    /// its schema up to date. `directory` is where the directory is published. A missing
    /// state database is created only when nothing shows there was one
    /// ([`StoreError::StateMissing`]); [`Store::open_rebaseline`] starts over on purpose.
    pub fn open(state_dir: &Path, directory: &Path) -> Result<Store, StoreError> {
        Store::open_with(state_dir, directory, false)
    }

    /// [`Store::open`], creating a new state database even where an old one left traces
    /// (`--rebaseline`).
    pub fn open_rebaseline(state_dir: &Path, directory: &Path) -> Result<Store, StoreError> {
        Store::open_with(state_dir, directory, true)
    }

    fn open_with(
        state_dir: &Path,
        directory: &Path,
        rebaseline: bool,
    ) -> Result<Store, StoreError> {
        let state_path = state_dir.join(STATE_FILE);
        if !rebaseline && !state_path.exists() {
            if let Some(evidence) = prior_state(&state_path, directory) {
                return Err(StoreError::StateMissing {
                    path: state_path,
                    evidence,
                });
            }
        }
        create_dir_private(state_dir)?;
        if let Some(parent) = directory.parent() {
            if !parent.as_os_str().is_empty() {
                create_dir_private(parent)?;
            }
        }
        let config = Config::default()
            .max_memory(MEMORY_LIMIT)?
            .threads(DUCKDB_THREADS as i64)?
            // Row order of inserts carries no meaning here; without it DuckDB streams more.
            .with("preserve_insertion_order", "false")?
            .enable_autoload_extension(false)?;
        // Opened through ATTACH, the one way to give the database its row group size. DuckDB
        // spills where it would for the file opened directly: `state.duckdb.tmp/`.
        let Some(path) = state_path.to_str() else {
            return Err(StoreError::Io {
                what: "DuckDB opens the state database by a path in UTF-8 (help: give `store.state_dir` a path in UTF-8); cannot open",
                path: state_path,
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        };
        let path = path.replace('\'', "''");
        let conn = Connection::open_in_memory_with_flags(config)?;
        conn.execute_batch(&format!(
            "SET temp_directory = '{path}.tmp'; ATTACH '{path}' AS {STATE_DB} (ROW_GROUP_SIZE {ROW_GROUP_SIZE}); USE {STATE_DB};"
        ))
        .map_err(|e| classify(&state_path, e))?;
        restrict(&state_path);
        // See `VACUUM_AT`: a publish vacuums when enough rows were deleted.
        conn.execute_batch("SET max_vacuum_tasks = 0")?;
        let store = Store {
            conn,
            state_path,
            directory_path: directory.to_path_buf(),
            routing: None,
            memory_configured: None,
            memory_auto: std::sync::atomic::AtomicU64::new(0),
            memory_doublings: 0,
        };
        store.migrate()?;
        store.clean_stale_copies();
        Ok(store)
    }

    /// Writes events for the changes this store applies, routed to these endpoints.
    pub fn set_routing(&mut self, routing: crate::events::Routing) {
        self.routing = (!routing.subscriptions.is_empty()).then(|| std::sync::Arc::new(routing));
    }

    /// Sets the memory DuckDB may use before it spills (`store.memory_limit`); the default is
    /// [`MEMORY_LIMIT`], raised for each sync by [`Store::fit_memory_to`].
    pub fn set_memory_limit(&mut self, bytes: Option<u64>) -> Result<(), StoreError> {
        if bytes != self.memory_configured {
            self.memory_doublings = 0;
        }
        self.memory_configured = bytes;
        *self.memory_auto.get_mut() = 0;
        let limit = bytes.map_or(MEMORY_LIMIT.to_string(), |b| format!("{b}B"));
        self.conn
            .execute_batch(&format!("SET memory_limit = '{limit}'"))?;
        Ok(())
    }

    /// Fits DuckDB's memory limit to a sync of `records` records ([`auto_memory_limit`]),
    /// unless `store.memory_limit` is set: then that stays. Never lowers the limit within a
    /// sync; [`Store::set_memory_limit`] (each config load) starts over.
    pub fn fit_memory_to(&self, records: u64) -> Result<(), StoreError> {
        if self.memory_configured.is_some() {
            return Ok(());
        }
        let want = auto_memory_limit(records).saturating_mul(1 << self.memory_doublings);
        let was = self
            .memory_auto
            .fetch_max(want, std::sync::atomic::Ordering::Relaxed);
        if want > was {
            self.conn
                .execute_batch(&format!("SET memory_limit = '{want}B'"))?;
        }
        Ok(())
    }

    /// After a sync ran out of memory under the automatic limit: doubles it, for the syncs
    /// until `store.memory_limit` changes or the process ends, and returns twice the limit
    /// the failed sync had. None when `store.memory_limit` is set (the user's figure stands)
    /// or the limit was doubled twice already.
    pub fn raise_auto_memory(&mut self) -> Option<u64> {
        if self.memory_configured.is_some() || self.memory_doublings >= MAX_MEMORY_DOUBLINGS {
            return None;
        }
        self.memory_doublings += 1;
        let had = (*self.memory_auto.get_mut()).max(AUTO_MEMORY_BASE);
        Some(had.saturating_mul(2))
    }

    /// The state database's path.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// The published directory's path.
    pub fn directory_path(&self) -> &Path {
        &self.directory_path
    }

    /// Reads every value of every table once, so that DuckDB checks the checksum of every
    /// data block: a damaged block is otherwise found only by the query that happens to need
    /// it (opening checks the header alone). The daemon runs it at start. Returns the
    /// classified error of the first unreadable table.
    pub fn verify(&self) -> Result<(), StoreError> {
        let located = |e: duckdb::Error| classify(&self.state_path, e);
        let tables: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary",
                )
                .map_err(located)?;
            stmt.query_map([], |r| r.get(0))
                .map_err(located)?
                .collect::<Result<_, _>>()
                .map_err(located)?
        };
        for table in tables {
            // One aggregate per column (`COLUMNS(*)`) that needs every value: a plain
            // count(*) would be answered from metadata without reading a block.
            let sql = format!(
                "SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM \"{}\"",
                table.replace('"', "\"\"")
            );
            self.conn
                .prepare(&sql)
                .and_then(|mut stmt| stmt.query([])?.next().map(|_| ()))
                .map_err(located)?;
        }
        Ok(())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)",
        )?;
        let current: i32 = self.conn.query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        let all = schema::migrations();
        let known = all.last().map_or(0, |m| m.0);
        if current > known {
            return Err(StoreError::TooNew {
                path: self.state_path.clone(),
                found: current,
                known,
            });
        }
        for (version, sql) in all.into_iter().filter(|m| m.0 > current) {
            self.conn.execute_batch("BEGIN TRANSACTION")?;
            let r = self.conn.execute_batch(&sql).and_then(|_| {
                self.conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP)",
                    [version],
                )
            });
            match r {
                Ok(_) => self.conn.execute_batch("COMMIT")?,
                Err(e) => {
                    self.conn.execute_batch("ROLLBACK").ok();
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Publishes the directory: checkpoint, copy to a temporary file beside the directory,
    /// fsync, rename over the directory, fsync the folder. Readers that have the old file open
    /// keep reading it; new readers get the new one.
    pub fn publish(&self) -> Result<(), StoreError> {
        let (dir, name) = self.directory_parts();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { what, path, source }
        };
        self.clean_stale_copies();
        self.conn.execute(
            "UPDATE directory_info SET published_at = now()::TIMESTAMP",
            [],
        )?;
        let vacuum = self.vacuum_due()?;
        if vacuum {
            // Counted from zero again before the checkpoint that vacuums: a crash in between
            // only defers the vacuum.
            self.conn
                .execute("DELETE FROM meta WHERE key = 'dead_rows'", [])?;
            self.conn
                .execute_batch(&format!("SET max_vacuum_tasks = {VACUUM_TASKS}"))?;
        }
        let copied = self.copy_checkpointed(&tmp);
        if vacuum {
            self.conn.execute_batch("SET max_vacuum_tasks = 0")?;
        }
        if !copied {
            self.copy_through_duckdb(&tmp)?;
        }
        // Readable by the owner's group (a readers' group; systemd's StateDirectoryMode=0750
        // keeps everyone else out), unlike the state database (0600).
        restrict_to(&tmp, 0o640);
        let sync = std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io("cannot fsync", &tmp));
        if let Err(e) = sync.and_then(|()| {
            std::fs::rename(&tmp, &self.directory_path)
                .map_err(io("cannot replace", &self.directory_path))
        }) {
            std::fs::remove_file(&tmp).ok();
            return Err(e);
        }
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().ok();
        }
        Ok(())
    }

    /// Whether the rows deleted since the last vacuum (`meta.dead_rows`, counted by the syncs)
    /// reach [`VACUUM_AT`] of the live rows of the tables they were deleted from
    /// (`source_records`, `source_custom`, `person_rows`).
    fn vacuum_due(&self) -> Result<bool, StoreError> {
        let dead = self.dead_rows()?;
        if dead == 0 {
            return Ok(false);
        }
        let live: i64 = self.conn.query_row(
            "SELECT (SELECT count(*) FROM source_records) + (SELECT count(*) FROM source_custom)
                    + (SELECT count(*) FROM person_rows)",
            [],
            |r| r.get(0),
        )?;
        Ok(dead as f64 >= VACUUM_AT * live as f64)
    }

    /// Publishes when the published directory is not the state's: missing, unreadable, or
    /// reflecting another run than the last one applied (a crash or a full disk between a
    /// commit and its publish, a state rebuilt beside an old directory). Returns true when it
    /// published. Idempotent: called at start-up and after every run.
    pub fn publish_if_stale(&self) -> Result<bool, StoreError> {
        let state = self.applied_stamp(None)?;
        let synced: i64 = self.conn.query_row(
            "SELECT count(*) FROM sync_runs WHERE outcome IN ('applied', 'unchanged')",
            [],
            |r| r.get(0),
        )?;
        if state.is_none() && synced == 0 {
            // Nothing was ever synced: there is nothing to publish yet.
            return Ok(false);
        }
        if self.directory_path.exists() && self.published_stamp() == Some(state.clone()) {
            return Ok(false);
        }
        tracing::info!(
            directory = %self.directory_path.display(),
            "publishing the directory (the published copy is behind the state database)"
        );
        self.publish()?;
        Ok(true)
    }

    /// The run and time the directory reflects (`directory_info`), from the state database
    /// or (with `catalog`) an attached copy.
    fn applied_stamp(&self, catalog: Option<&str>) -> Result<Option<(i64, String)>, StoreError> {
        let table = catalog.map_or("directory_info".to_string(), |c| {
            format!("{c}.directory_info")
        });
        let mut stmt = self.conn.prepare(&format!(
            "SELECT run_id, applied_at::VARCHAR FROM {table} LIMIT 1"
        ))?;
        let mut rows = stmt.query([])?;
        Ok(match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        })
    }

    /// What the published copy reflects: `None` when it cannot be read (missing, damaged,
    /// from a Roster without `directory_info`), which makes it stale.
    fn published_stamp(&self) -> Option<Option<(i64, String)>> {
        let quoted = self.directory_path.to_string_lossy().replace('\'', "''");
        self.conn
            .execute_batch(&format!(
                "ATTACH '{quoted}' AS roster_published (READ_ONLY)"
            ))
            .ok()?;
        let stamp = self.applied_stamp(Some("roster_published")).ok();
        self.conn
            .execute_batch("DETACH DATABASE IF EXISTS roster_published")
            .ok();
        stamp
    }

    /// The published directory's folder and file name.
    fn directory_parts(&self) -> (PathBuf, String) {
        let dir = self
            .directory_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = self.directory_path.file_name().map_or_else(
            || "directory.duckdb".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        (dir, name)
    }

    /// Removes temporary copies a crashed or failed publish left beside the directory
    /// (`.<name>.<pid>.tmp` and its `.wal`: full personal data). Safe for every PID: this
    /// process holds the state database's lock, so no other process publishes this directory.
    fn clean_stale_copies(&self) {
        let (dir, name) = self.directory_parts();
        let prefix = format!(".{name}.");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let Some(rest) = file.strip_prefix(&prefix) else {
                continue;
            };
            let stale = rest
                .strip_suffix(".tmp")
                .or_else(|| rest.strip_suffix(".tmp.wal"))
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
            if stale {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), "removed a temporary copy left by an interrupted publish")
                    }
                    Err(e) => {
                        tracing::warn!(file = %entry.path().display(), "cannot remove a temporary copy left by an interrupted publish: {e}")
                    }
                }
            }
        }
    }

    /// The fast path of [`Store::publish`]: checkpoint, then copy the state file as it is on
    /// disk, in a child process (`cp`). Returns false when the copy could not be made this
    /// way (the caller then has DuckDB write it).
    ///
    /// Why a child process: opening the state file here and closing it would drop DuckDB's
    /// POSIX lock on it (closing any descriptor of a file releases all of the process's fcntl
    /// locks on it), letting a second writer in; a child's descriptors are its own.
    /// Why the copy is consistent: after a checkpoint the database file holds every committed
    /// change and the write-ahead log is empty; until the next checkpoint DuckDB writes later
    /// commits to the log only (automatic checkpoints are held off during the copy; blocks an
    /// open transaction writes ahead are unreferenced by the checkpointed header).
    fn copy_checkpointed(&self, tmp: &Path) -> bool {
        if self
            .conn
            .execute_batch("SET checkpoint_threshold = '1000GB'; CHECKPOINT")
            .is_err()
        {
            self.conn.execute_batch("RESET checkpoint_threshold").ok();
            return false;
        }
        let mut wal = self.state_path.clone().into_os_string();
        wal.push(".wal");
        let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
        let copied = wal_empty
            && std::process::Command::new("cp")
                .arg("--")
                .arg(&self.state_path)
                .arg(tmp)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        self.conn.execute_batch("RESET checkpoint_threshold").ok();
        if !copied {
            tracing::debug!("publishing through DuckDB (checkpointed file copy unavailable)");
            std::fs::remove_file(tmp).ok();
        }
        copied
    }

    /// The slow path of [`Store::publish`]: DuckDB writes the copy (`COPY FROM DATABASE`),
    /// table by table, re-encoding everything.
    fn copy_through_duckdb(&self, tmp: &Path) -> Result<(), StoreError> {
        let catalog: String = self
            .conn
            .query_row("SELECT current_database()", [], |r| r.get(0))?;
        let quoted = tmp.to_string_lossy().replace('\'', "''");
        let copied = self.conn.execute_batch(&format!(
            "ATTACH '{quoted}' AS roster_publish; COPY FROM DATABASE \"{catalog}\" TO roster_publish; DETACH roster_publish;"
        ));
        if let Err(e) = copied {
            self.conn
                .execute_batch("DETACH DATABASE IF EXISTS roster_publish")
                .ok();
            std::fs::remove_file(tmp).ok();
            return Err(e.into());
        }
        Ok(())
    }
}

/// Another connection to `conn`'s database, with the same default database (`USE` is per
/// connection, and the state database is attached beside an in-memory one).
pub(crate) fn clone_connection(conn: &Connection) -> Result<Connection, StoreError> {
    let db: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
    let clone = conn.try_clone()?;
    clone.execute_batch(&format!("USE \"{}\"", db.replace('"', "\"\"")))?;
    Ok(clone)
}

#[cfg(unix)]
fn restrict(path: &Path) {
    restrict_to(path, 0o600);
}

#[cfg(not(unix))]
fn restrict(_path: &Path) {}

/// Sets a file's mode (Unix); the store's files never depend on the process umask.
#[cfg(unix)]
fn restrict_to(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).ok();
}

#[cfg(not(unix))]
fn restrict_to(_path: &Path, _mode: u32) {}

/// A read-only connection to a published directory (for `roster query`).
pub fn open_readonly(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Io {
            what: "no directory at",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not published yet; run `roster sync` first",
            ),
        });
    }
    let config = Config::default()
        .access_mode(AccessMode::ReadOnly)?
        .enable_autoload_extension(false)?;
    let conn = Connection::open_with_flags(path, config).map_err(|e| classify(path, e))?;
    // The bundled DuckDB has no ICU extension, so `current_date` and `today()` are missing;
    // `today()` here is the UTC date, as in the views (the DuckDB CLI has its own).
    conn.execute_batch("CREATE TEMP MACRO today() AS now()::TIMESTAMP::DATE")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{StoreError, classify_text, human_bytes};

    fn classify(text: &str) -> Option<StoreError> {
        classify_text(Path::new("/srv/roster/state.duckdb"), text)
    }

    #[test]
    fn a_full_disk_names_the_directory_the_free_space_and_that_nothing_was_lost() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.duckdb");
        let wal = format!(
            "IO Error: Could not write file \"{}.wal\": No space left on device",
            state.display()
        );
        let e = classify_text(&state, &wal).unwrap();
        let StoreError::DiskFull {
            dir: full, free, ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(full, dir.path());
        assert!(
            free.contains(" free of "),
            "statvfs of a real directory: {free}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "the disk holding {} ran full (",
                dir.path().display()
            )),
            "{text}"
        );
        assert!(
            text.contains("nothing was lost: the transaction rolled back"),
            "{text}"
        );
        assert!(
            text.contains("No space left on device"),
            "DuckDB's words: {text}"
        );
        assert!(
            text.contains("(help: free space on that filesystem"),
            "{text}"
        );
        assert!(e.is_unusable());

        // DuckDB's spill files belong to the transaction too.
        let spill = format!(
            "Out of Memory Error: could not write to temporary file \"{}.tmp/duckdb_temp_storage-0.tmp\": No space left on device",
            state.display()
        );
        let e = classify_text(&state, &spill).unwrap();
        assert!(e.to_string().contains("rolled back"), "{e}");

        // The published copy lives elsewhere: the sync is safe, only publishing failed.
        let other = tempfile::tempdir().unwrap();
        let publish = format!(
            "IO Error: Could not write file \"{}/.directory.duckdb.7.tmp\": No space left on device",
            other.path().display()
        );
        let e = classify_text(&state, &publish).unwrap();
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "the disk holding {} ran full",
                other.path().display()
            )),
            "{text}"
        );
        assert!(text.contains("only publishing failed"), "{text}");

        // A checkpoint that failed after the commit: the WAL has it; restart.
        let e = classify_text(
            &state,
            "IO Error: Checkpoint failed for database state. The database has been invalidated. Original error: Could not write file: No space left on device",
        )
        .unwrap();
        let StoreError::DiskFull { dir: full, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(
            full,
            dir.path(),
            "no path in the message: the state directory"
        );
        assert!(
            e.to_string().contains("restart it once there is space"),
            "{e}"
        );

        // The spill limit that defaults to the free disk space (DuckDB 1.2 on a full tmpfs).
        let e = classify_text(
            &state,
            "Out of Memory Error: failed to offload data block of size 256.0 KiB (1.5 MiB/1.7 MiB used).\nThis limit was set by the 'max_temp_directory_size' setting.\nBy default, this setting utilizes the available disk space on the drive where the 'temp_directory' is located.",
        )
        .unwrap();
        let StoreError::DiskFull { dir: full, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(full, dir.path());
        assert!(e.to_string().contains("rolled back"), "{e}");

        // The errno spelled as a name.
        assert!(matches!(
            classify("write failed: ENOSPC"),
            Some(StoreError::DiskFull { .. })
        ));

        // Memory DuckDB could not spill (issue 16 saw this on a 100k first sync): names the
        // setting to raise, not the disk.
        let e = classify_text(
            &state,
            "Out of Memory Error: failed to pin block of size 256.0 KiB (45.5 MiB/45.7 MiB used)",
        )
        .unwrap();
        assert!(matches!(e, StoreError::OutOfMemory { .. }), "{e:?}");
        assert!(e.to_string().contains("store.memory_limit"), "{e}");
        assert!(e.to_string().contains("45.5 MiB/45.7 MiB used"), "{e}");
    }

    #[test]
    fn a_damaged_block_found_by_a_query_has_the_help_of_a_damaged_header() {
        let header = classify("IO Error: The file \"/srv/roster/state.duckdb\" exists, but it is not a valid DuckDB database file!").unwrap();
        let block = classify("FATAL Error: Corrupt database file: computed checksum 123 does not match stored checksum 456 in block at location 1234").unwrap();
        let help = |e: &StoreError| e.to_string().split_once("(help:").unwrap().1.to_string();
        assert!(matches!(block, StoreError::Corrupt { .. }), "{block:?}");
        assert_eq!(help(&header), help(&block));
        assert!(
            block.to_string().contains("computed checksum 123"),
            "{block}"
        );
        assert!(block.is_unusable());
    }

    #[test]
    fn a_wal_that_cannot_be_replayed_is_moved_aside_alone_first() {
        let e = classify("INTERNAL Error: Failure while replaying WAL file \"/srv/roster/state.duckdb.wal\": Corrupt database file: checksum mismatch").unwrap();
        let StoreError::WalReplay { wal, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(wal, &PathBuf::from("/srv/roster/state.duckdb.wal"));
        let text = e.to_string();
        let move_wal = text
            .find("mv /srv/roster/state.duckdb.wal /srv/roster/state.duckdb.wal.broken")
            .unwrap();
        let rebuild = text.find("roster sync --rebaseline` to rebuild").unwrap();
        assert!(
            move_wal < rebuild,
            "the WAL first, a rebuild only after: {text}"
        );
        assert!(text.contains("history is kept"), "{text}");
    }

    #[test]
    fn other_duckdb_errors_are_classified_or_left_alone() {
        let locked = classify("IO Error: Could not set lock on file \"/srv/roster/state.duckdb\": Conflicting lock is held in /usr/bin/roster (PID 4242) by user roster").unwrap();
        let text = locked.to_string();
        assert!(text.contains("(PID 4242, /usr/bin/roster)"), "{text}");
        assert!(!locked.is_unusable());
        // Issue 15.7: the lock's help never tells someone who asked for a plan to apply.
        assert!(!text.contains("let it sync"), "{text}");
        assert!(text.contains("`roster plan`"), "{text}");

        let gone = classify("IO Error: Could not read from file \"/srv/roster/state.duckdb\": No such file or directory").unwrap();
        assert!(matches!(gone, StoreError::FileIo { .. }), "{gone:?}");
        assert!(gone.is_unusable());
        let invalid = classify(
            "FATAL Error: Failed: database has been invalidated because of a previous fatal error.",
        )
        .unwrap();
        assert!(
            matches!(invalid, StoreError::Invalidated { .. }),
            "{invalid:?}"
        );
        assert!(classify("Binder Error: Referenced column \"x\" not found").is_none());
    }

    #[test]
    fn sizes_read_like_df() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_300), "12.3 KB");
        assert_eq!(human_bytes(20_000_000_000), "20.0 GB");
    }

    #[test]
    fn the_memory_limit_is_the_configured_one_or_fits_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            super::Store::open(dir.path(), &dir.path().join("directory.duckdb")).unwrap();
        let limit = |store: &super::Store| -> String {
            store
                .conn
                .query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(limit(&store), "45.7 MiB", "48MB by default");
        // A sync of 500k records raises it (never lowers it within a config).
        store.fit_memory_to(500_000).unwrap();
        assert_eq!(limit(&store), "143.3 MiB");
        store.fit_memory_to(10).unwrap();
        assert_eq!(limit(&store), "143.3 MiB");
        assert_eq!(super::auto_memory_limit(u64::MAX), 1 << 30);
        // After a sync ran out of memory under it, the automatic limit doubles, twice at most.
        assert_eq!(store.raise_auto_memory(), Some(2 * 150_331_648));
        store.fit_memory_to(500_000).unwrap();
        assert_eq!(limit(&store), "286.7 MiB");
        assert_eq!(store.raise_auto_memory(), Some(4 * 150_331_648));
        assert_eq!(store.raise_auto_memory(), None);
        // The same config applied again (the daemon does before every sync) keeps it.
        store.set_memory_limit(None).unwrap();
        store.fit_memory_to(500_000).unwrap();
        assert_eq!(limit(&store), "573.4 MiB");
        // A configured limit is never changed by the size of a sync.
        store.set_memory_limit(Some(256 << 20)).unwrap();
        assert_eq!(limit(&store), "256.0 MiB");
        store.fit_memory_to(4_000_000).unwrap();
        assert_eq!(limit(&store), "256.0 MiB");
        assert_eq!(store.raise_auto_memory(), None, "a configured limit stands");
        // A change of the setting starts over: automatic, not doubled.
        store.set_memory_limit(None).unwrap();
        assert_eq!(limit(&store), "45.7 MiB");
        store.fit_memory_to(500_000).unwrap();
        assert_eq!(limit(&store), "143.3 MiB");
    }

    #[test]
    fn out_of_memory_is_told_from_a_full_disk() {
        let oom = |text: &str| {
            let e = duckdb::Error::DuckDBFailure(
                duckdb::ffi::Error::new(duckdb::ffi::DuckDBError),
                Some(text.to_string()),
            );
            StoreError::Sql(e).is_out_of_memory()
        };
        assert!(oom(
            "Out of Memory Error: failed to pin block of size 256.0 KiB (159.2 MiB/159.3 MiB used)"
        ));
        assert!(!oom(
            "Out of Memory Error: could not write to temporary file \"/s/state.duckdb.tmp/duckdb_temp_storage-0.tmp\": No space left on device"
        ));
        assert!(!oom("Catalog Error: Table with name x does not exist!"));
    }

    /// A transaction that appends 100k rows fills whole row groups of `ROW_GROUP_SIZE`, so a
    /// first sync of that size is a bulk append (see the constant); with DuckDB's default of
    /// 122,880 they were one row group. Every connection works on the state database.
    #[test]
    fn the_state_database_groups_rows_by_row_group_size_on_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open(dir.path(), &dir.path().join("directory.duckdb")).unwrap();
        let setting = |name: &str| -> String {
            store
                .conn
                .query_row(&format!("SELECT current_setting('{name}')"), [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        assert_eq!(
            setting("temp_directory"),
            format!("{}.tmp", store.state_path().display()),
            "spills go beside the state file, as they would for the file opened directly"
        );
        store
            .conn
            .execute_batch(
                "BEGIN; CREATE TABLE t AS SELECT range AS i, 'person ' || range AS name FROM range(100000); COMMIT; CHECKPOINT;",
            )
            .unwrap();
        let groups: Vec<(i64, i64)> = {
            let mut stmt = store
                .conn
                .prepare(
                    "SELECT row_group_id, max(count) FROM (SELECT row_group_id, sum(count) AS count
                     FROM pragma_storage_info('t') WHERE column_id = 0 AND segment_type <> 'VALIDITY' GROUP BY ALL) GROUP BY ALL ORDER BY 1",
                )
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let size = super::ROW_GROUP_SIZE as i64;
        assert_eq!(groups, [(0, size), (1, size), (2, 100_000 - 2 * size)]);
        // A delivery worker's connection reads and writes the same database.
        let outbox = store.outbox().unwrap();
        let other = super::clone_connection(&store.conn).unwrap();
        let db: String = other
            .query_row("SELECT current_database()", [], |r| r.get(0))
            .unwrap();
        assert_eq!(db, super::STATE_DB);
        other
            .execute_batch("INSERT INTO t VALUES (-1, 'x')")
            .unwrap();
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 100_001);
        assert!(outbox.counts().is_ok());
    }

    /// The state database is attached by a path in SQL text: a path that is not UTF-8 is
    /// refused with the setting to change, never opened under a mangled name.
    #[cfg(unix)]
    #[test]
    fn a_state_dir_that_is_not_utf8_is_refused_by_name() {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(std::ffi::OsStr::from_bytes(b"st\xffate"));
        let Err(e) = super::Store::open(&state, &dir.path().join("directory.duckdb")) else {
            panic!("a state_dir that is not UTF-8 was opened");
        };
        let text = e.to_string();
        assert!(text.contains("`store.state_dir` a path in UTF-8"), "{text}");
        let mangled = dir.path().join("st\u{fffd}ate");
        assert!(!mangled.exists(), "nothing is created under a mangled name");
    }

    /// DuckDB runs on one thread while a listing is staged, and on `DUCKDB_THREADS` again
    /// once the staging is applied or discarded.
    #[test]
    fn duckdb_gets_one_thread_while_a_listing_is_staged() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open(dir.path(), &dir.path().join("directory.duckdb")).unwrap();
        let threads = || -> String {
            store
                .conn
                .query_row("SELECT current_setting('threads')::VARCHAR", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        assert_eq!(threads(), super::DUCKDB_THREADS.to_string());
        let staging = store.begin_staging("core", 1, 0).unwrap();
        assert_eq!(threads(), "1");
        drop(staging);
        store.discard_staging().unwrap();
        assert_eq!(threads(), super::DUCKDB_THREADS.to_string());
    }
}
