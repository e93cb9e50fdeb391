//! A debounced watch of the config directory: one `()` per burst of changes, for hot reload.
//!
//! [`ConfigWatch::start`] watches the directory recursively with inotify (notify's Linux
//! backend) and sends one signal `debounce` after the last change of a burst. It says *that*
//! something changed, not what: the daemon loads and validates the whole config on each signal
//! (the same path as SIGHUP), so a half-written file is at worst one rejected reload.
//!
//! # What counts as a change
//!
//! Creating, removing, renaming, writing or closing-after-writing a file or directory, and
//! metadata changes (`touch`, `chmod`), anywhere under the directory, including
//! subdirectories created after the start (notify adds a watch for each new directory).
//! Reading does not count: the daemon's own reload opens every file, and must not trigger
//! another reload. These do not count either:
//!
//! - paths under any `ignore` entry (the state directory, when it lives inside the config
//!   directory). Entries are paths as given (relative ones from the working directory); one
//!   that resolves through a symlink into the config directory is matched in that form too.
//!   An entry that is the config directory or contains it is dropped with a warning: it would
//!   swallow every change;
//! - editor scratch files, by name: vim's swap files (`.swp`, `.swo`, `.swn`, `.swx`,
//!   `.swpx`) and its `4913` write probe, backups ending in `~`, Emacs's `.#` lock files and
//!   `#…#` auto-saves, JetBrains' `___jb_tmp___`/`___jb_old___`;
//! - anything under a `.git` directory (`git fetch` or `git status` write there; a checkout
//!   changes the files themselves, and that counts).
//!
//! # Bursts
//!
//! Each change that counts restarts the timer: the signal goes out once the directory has
//! been quiet for `debounce` and no file in it is still open for writing (below). So an
//! editor's rename-save (temp file, rename over), a `git checkout` that replaces many files,
//! and a file written slowly in pieces each give one signal, after the last change. A
//! directory that never goes quiet for `debounce` never signals. When the channel is full the
//! signal is dropped: one is already pending, and the reload it causes reads the files as they
//! are then.
//!
//! # Files open for writing
//!
//! Quiet alone is not enough: a writer that pauses longer than `debounce` in the middle of a
//! file (a slow pipe, a loaded machine) would get a half-written file applied, and a truncated
//! YAML file is often still valid. inotify cannot say which files are open for writing
//! (`IN_OPEN` does not give the mode), but it reports `IN_MODIFY` for each write and
//! `IN_CLOSE_WRITE` when a writer closes. So a path (that counts, see above) written to and not
//! closed since is *held open*, and while any path is held the signal waits, however quiet the
//! directory. A path stops being held when it is closed after writing, removed, or renamed
//! (either name; also everything under a removed or renamed directory): an editor's temp file
//! is closed before its rename, and one renamed while still open must not stay held under a
//! name nothing will close. A process that exits or crashes has its files closed by the
//! kernel, which reports that too. Lost events (an overflowed inotify queue) and a re-pointed
//! `dir` link release all held paths.
//!
//! Some writes are never followed by a close that is seen (on a network file system, where
//! inotify sees only some of the events; `truncate -s` on a path, which modifies without
//! opening; a log file kept open in the directory for good), so the hold is bounded:
//! [`MAX_HOLD`] (30 s) after the first change of the burst, the signal goes out anyway (still
//! only once the directory is quiet for `debounce`), with a warning naming a held path. Each
//! signal ends the burst and forgets the held paths; a writer still at work is held again at
//! its next write, and its close is a change of its own. Holding is per path, not per writer:
//! with two writers on one file, the first close releases it.
//!
//! # Symlinks
//!
//! - Kubernetes ConfigMap volumes (`..data -> ..2026_11_21_…`, `roster.yaml ->
//!   ..data/roster.yaml`; an update writes a new timestamped directory, then renames a new
//!   `..data_tmp` link over `..data`) are covered: every step happens in the watched directory.
//! - Symlinks to directories inside the tree are followed, so a change in their target counts.
//!   Symlinks to files are not followed: writing the target of `providers/x.yaml ->
//!   /srv/x.yaml` in place is not seen (replacing the link is).
//! - When `dir` itself is a symlink (`/etc/roster -> /srv/releases/v42`), its parent is also
//!   watched for that one name; when the link is re-pointed (or removed and created again),
//!   the watch moves to the new target and that counts as a change. Not covered: symlinks in
//!   the ancestors of `dir`, and a `dir` that is a real directory being removed and created
//!   again (the watch ends with a warning; SIGHUP still reloads).
//!
//! Threads: notify's inotify thread forwards raw events into a channel; one thread of ours
//! filters and debounces them and owns the watcher. Dropping [`ConfigWatch`] stops both.
//! Not here: loading, validating or applying the config (the daemon's reload path).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::error::TrySendError;

/// The config directory cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The directory does not exist.
    #[error(
        "cannot watch the config directory {}: it does not exist (help: pass the directory that holds roster.yaml with --config)",
        path.display()
    )]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The path is not a directory.
    #[error(
        "cannot watch {}: it is not a directory (help: --config takes the directory that holds roster.yaml, not the file)",
        path.display()
    )]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The per-user limit of inotify watches is reached.
    #[error(
        "cannot watch {}: the inotify watch limit is reached (every watched directory needs one, shared by all of the user's programs) (help: raise `fs.inotify.max_user_watches`, e.g. `sysctl -w fs.inotify.max_user_watches=524288` and a file in /etc/sysctl.d/ to keep it)",
        path.display()
    )]
    WatchLimit {
        /// The directory whose watch failed.
        path: PathBuf,
    },
    /// No inotify instance could be created.
    #[error(
        "cannot watch the config directory {}: the limit of inotify instances or open files is reached (help: raise `fs.inotify.max_user_instances`, e.g. `sysctl -w fs.inotify.max_user_instances=512`, or the service's LimitNOFILE=)",
        path.display()
    )]
    InstanceLimit {
        /// The config directory.
        path: PathBuf,
    },
    /// Permission denied.
    #[error(
        "cannot watch {}: permission denied (help: the user running roster needs read and execute permission on the config directory and its subdirectories)",
        path.display()
    )]
    PermissionDenied {
        /// The path.
        path: PathBuf,
    },
    /// Any other failure.
    #[error("cannot watch {}: {reason}", path.display())]
    Other {
        /// The path.
        path: PathBuf,
        /// What the OS or notify said.
        reason: String,
    },
}

impl WatchError {
    fn from_io(e: &std::io::Error, path: &Path) -> WatchError {
        let path = path.to_path_buf();
        match (e.kind(), e.raw_os_error()) {
            (std::io::ErrorKind::NotFound, _) => WatchError::NotFound { path },
            (std::io::ErrorKind::PermissionDenied, _) => WatchError::PermissionDenied { path },
            (_, Some(code)) if code == ENOSPC => WatchError::WatchLimit { path },
            (_, Some(code)) if code == EMFILE || code == ENFILE => {
                WatchError::InstanceLimit { path }
            }
            _ => WatchError::Other {
                path,
                reason: e.to_string(),
            },
        }
    }

    /// A notify error about `fallback` (or the path notify names).
    fn from_notify(e: notify::Error, fallback: &Path) -> WatchError {
        let path = e.paths.first().map_or(fallback, PathBuf::as_path);
        match &e.kind {
            notify::ErrorKind::MaxFilesWatch => WatchError::WatchLimit {
                path: path.to_path_buf(),
            },
            notify::ErrorKind::PathNotFound => WatchError::NotFound {
                path: path.to_path_buf(),
            },
            notify::ErrorKind::Io(io) => WatchError::from_io(io, path),
            _ => WatchError::Other {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        }
    }
}

/// The longest paths held open for writing keep a burst's signal back, from the burst's first
/// change: a close that is never seen must not stop reloads for good (see the module docs).
pub const MAX_HOLD: Duration = Duration::from_secs(30);

// Linux errno values (no libc dependency for three constants).
const ENOSPC: i32 = 28;
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// A running watch of the config directory. Dropping it stops the watch and its thread.
#[derive(Debug)]
pub struct ConfigWatch {
    /// Tells the debounce thread to stop (it shares the channel notify's events come on).
    stop: mpsc::Sender<Msg>,
    /// The debounce thread; it owns the notify watcher.
    thread: Option<JoinHandle<()>>,
}

/// What the debounce thread receives.
enum Msg {
    /// A raw event (or error) from notify's thread.
    Event(notify::Result<Event>),
    /// `ConfigWatch` was dropped.
    Stop,
}

impl ConfigWatch {
    /// Watches `dir` (the config directory) and sends one `()` on `tx` per burst of changes,
    /// `debounce` after the last change of the burst. Paths under any of `ignore` (e.g. the
    /// state directory when it lives inside the config dir) and editor temp files do not
    /// count, and files still open for writing hold the signal back (at most [`MAX_HOLD`]);
    /// see the module docs for the rules. The watch is in place when this returns.
    pub fn start(
        dir: &Path,
        ignore: Vec<PathBuf>,
        debounce: Duration,
        tx: tokio::sync::mpsc::Sender<()>,
    ) -> Result<ConfigWatch, WatchError> {
        ConfigWatch::start_with_max_hold(dir, ignore, debounce, MAX_HOLD, tx)
    }

    /// [`ConfigWatch::start`] with another bound on holding for open files (tests).
    fn start_with_max_hold(
        dir: &Path,
        ignore: Vec<PathBuf>,
        debounce: Duration,
        max_hold: Duration,
        tx: tokio::sync::mpsc::Sender<()>,
    ) -> Result<ConfigWatch, WatchError> {
        let dir = std::path::absolute(dir).map_err(|e| WatchError::from_io(&e, dir))?;
        match std::fs::metadata(&dir) {
            Err(e) => return Err(WatchError::from_io(&e, &dir)),
            Ok(m) if !m.is_dir() => return Err(WatchError::NotADirectory { path: dir }),
            Ok(_) => {}
        }
        let is_link = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink());
        let filter = Filter::new(dir.clone(), ignore, is_link);

        let (raw_tx, raw_rx) = mpsc::channel();
        let events = raw_tx.clone();
        let handler = move |res: notify::Result<Event>| {
            // The receiver is gone only while the watch is stopping.
            let _ = events.send(Msg::Event(res));
        };
        let config = notify::Config::default().with_follow_symlinks(true);
        let mut watcher = RecommendedWatcher::new(handler, config)
            .map_err(|e| WatchError::from_notify(e, &dir))?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|e| WatchError::from_notify(e, &dir))?;
        if let Some(parent) = filter.link_parent() {
            watcher
                .watch(parent, RecursiveMode::NonRecursive)
                .map_err(|e| WatchError::from_notify(e, parent))?;
        }

        let worker = Worker {
            watcher,
            filter,
            debounce,
            max_hold,
            rx: raw_rx,
            tx,
            burst: None,
            held: HashSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("roster-config-watch".into())
            .spawn(move || worker.run())
            .map_err(|e| WatchError::from_io(&e, &dir))?;
        Ok(ConfigWatch {
            stop: raw_tx,
            thread: Some(thread),
        })
    }
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        let _ = self.stop.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            // The thread only ever waits on its channel (or briefly on notify's thread), so
            // this returns at once.
            let _ = thread.join();
        }
    }
}

/// The debounce thread's state.
struct Worker {
    watcher: RecommendedWatcher,
    filter: Filter,
    debounce: Duration,
    /// How long held paths may keep the signal back, from the burst's first change.
    max_hold: Duration,
    rx: mpsc::Receiver<Msg>,
    tx: tokio::sync::mpsc::Sender<()>,
    /// The changes not signalled yet.
    burst: Option<Burst>,
    /// Paths written to (`IN_MODIFY`) and not closed (`IN_CLOSE_WRITE`), removed or renamed
    /// since: a writer presumably still has them open.
    held: HashSet<PathBuf>,
}

/// When the changes not signalled yet happened.
#[derive(Clone, Copy)]
struct Burst {
    /// The first change.
    began: Instant,
    /// The last change.
    last: Instant,
}

impl Worker {
    fn run(mut self) {
        loop {
            let deadline = self.deadline();
            // Checked before receiving, so a stream of ignored events cannot hold a signal back.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // Held paths left at the deadline: `max_hold` ran out.
                if let Some(path) = self.held.iter().next() {
                    let others = match self.held.len() - 1 {
                        0 => String::new(),
                        n => format!(", nor were {n} other file(s)"),
                    };
                    tracing::warn!(
                        "{} in the config directory was written to and not closed within {:?} of the first change{others}; reloading anyway, possibly from a half-written file (help: write config files elsewhere and rename them into place)",
                        path.display(),
                        self.max_hold,
                    );
                }
                self.burst = None;
                self.held.clear();
                if !self.signal() {
                    return;
                }
                continue;
            }
            let msg = match deadline {
                None => match self.rx.recv() {
                    Ok(msg) => msg,
                    Err(mpsc::RecvError) => return,
                },
                Some(d) => match self
                    .rx
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                {
                    Ok(msg) => msg,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
            };
            match msg {
                Msg::Stop => return,
                Msg::Event(Ok(event)) => {
                    if self.handle(&event) {
                        let now = Instant::now();
                        let began = self.burst.map_or(now, |b| b.began);
                        self.burst = Some(Burst { began, last: now });
                    }
                }
                Msg::Event(Err(e)) => {
                    // E.g. the watch limit reached while adding a new subdirectory: changes
                    // in it will not be seen, which the operator must hear about.
                    let dir = self.filter.dir.clone();
                    tracing::warn!("{}", WatchError::from_notify(e, &dir));
                }
            }
        }
    }

    /// When the pending signal goes out: `debounce` after the burst's last change, and not
    /// before `max_hold` after its first while a path is held open. None: nothing pending.
    fn deadline(&self) -> Option<Instant> {
        let burst = self.burst?;
        let quiet = burst.last + self.debounce;
        if self.held.is_empty() {
            Some(quiet)
        } else {
            Some(quiet.max(burst.began + self.max_hold))
        }
    }

    /// Whether the event counts; tracks the paths held open, and moves the watch when `dir`
    /// (a symlink) was re-pointed.
    fn handle(&mut self, event: &Event) -> bool {
        let verdict = self.filter.judge(event);
        self.track_writers(event);
        if verdict.dir_itself {
            if self.filter.is_link {
                // Events from the old target no longer come, its closes included.
                self.held.clear();
                self.rewatch();
            } else if matches!(event.kind, EventKind::Remove(_)) {
                tracing::warn!(
                    "the config directory {} was removed; its changes are no longer watched (SIGHUP still reloads; restart roster to watch it again)",
                    self.filter.dir.display()
                );
            }
        }
        verdict.counts
    }

    /// Updates the paths held open for writing. Only paths that count are ever held (the
    /// ignore rules apply first); releasing needs no such check.
    fn track_writers(&mut self, event: &Event) {
        if event.need_rescan() {
            // Events were lost, closes maybe among them; a writer still at work writes again.
            self.held.clear();
            return;
        }
        match event.kind {
            EventKind::Modify(ModifyKind::Data(_)) => {
                for path in &event.paths {
                    if self.filter.path_counts(path) {
                        self.held.insert(path.clone());
                    }
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for path in &event.paths {
                    self.held.remove(path);
                }
            }
            // Removed or renamed (either name; a directory takes everything under it): the
            // name no longer refers to the file being written, so its close may never be
            // reported under it.
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                for path in &event.paths {
                    self.held.retain(|h| !h.starts_with(path));
                }
            }
            _ => {}
        }
    }

    /// `dir` is a symlink whose entry changed: watch what it points to now.
    fn rewatch(&mut self) {
        let dir = self.filter.dir.clone();
        // Fails when the old target was already gone; nothing to undo then.
        let _ = self.watcher.unwatch(&dir);
        match self.watcher.watch(&dir, RecursiveMode::Recursive) {
            Ok(()) => tracing::debug!(
                "the config directory link {} changed; watching its new target",
                dir.display()
            ),
            // Removed, or pointing nowhere for now: the parent watch sees it come back.
            Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
            Err(e) => tracing::warn!("{}", WatchError::from_notify(e, &dir)),
        }
    }

    /// Sends one signal; false when the receiver is gone.
    fn signal(&self) -> bool {
        match self.tx.try_send(()) {
            // Full: a signal is already pending, and its reload reads the files as they are.
            Ok(()) | Err(TrySendError::Full(())) => true,
            Err(TrySendError::Closed(())) => false,
        }
    }
}

/// Decides which events count.
struct Filter {
    /// The config directory, absolute (not canonical: notify reports paths under this form).
    dir: PathBuf,
    /// Ignored trees, absolute, in the forms events can name them.
    ignore: Vec<PathBuf>,
    /// `dir` is a symlink: its parent is watched for its name.
    is_link: bool,
}

/// What [`Filter::judge`] found.
struct Verdict {
    /// The event counts as a change.
    counts: bool,
    /// The event is about `dir` itself (its link re-pointed, or the directory removed).
    dir_itself: bool,
}

impl Filter {
    fn new(dir: PathBuf, ignore: Vec<PathBuf>, is_link: bool) -> Filter {
        let canonical_dir = dir.canonicalize().ok();
        let mut forms = Vec::new();
        for entry in ignore {
            let Ok(abs) = std::path::absolute(&entry) else {
                continue;
            };
            let canonical = abs.canonicalize().ok();
            let swallows_dir = dir.starts_with(&abs)
                || matches!((&canonical_dir, &canonical), (Some(d), Some(c)) if d.starts_with(c));
            if swallows_dir {
                tracing::warn!(
                    "not ignoring {} in the config directory watch: it contains the config directory {}, so every change would be ignored",
                    entry.display(),
                    dir.display()
                );
                continue;
            }
            // The same tree as events name it, when the entry reaches it through a symlink.
            if let (Some(d), Some(c)) = (&canonical_dir, &canonical)
                && let Ok(rel) = c.strip_prefix(d)
            {
                let form = dir.join(rel);
                if form != abs {
                    forms.push(form);
                }
            }
            forms.push(abs);
        }
        Filter {
            dir,
            ignore: forms,
            is_link,
        }
    }

    /// The directory to watch for `dir`'s own entry: its parent, when `dir` is a symlink.
    fn link_parent(&self) -> Option<&Path> {
        if !self.is_link {
            return None;
        }
        self.dir.file_name()?;
        self.dir.parent()
    }

    fn judge(&self, event: &Event) -> Verdict {
        let kind_counts = match event.kind {
            // Opening and reading (the daemon's own reload does both) are not changes; a
            // close after writing is.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        if !kind_counts {
            return Verdict {
                counts: false,
                dir_itself: false,
            };
        }
        // An overflowed queue lost events: assume something changed.
        if event.need_rescan() || event.paths.is_empty() {
            return Verdict {
                counts: true,
                dir_itself: false,
            };
        }
        let dir_itself = event.paths.contains(&self.dir);
        Verdict {
            counts: dir_itself || event.paths.iter().any(|p| self.path_counts(p)),
            dir_itself,
        }
    }

    fn path_counts(&self, path: &Path) -> bool {
        // The parent of a linked `dir` reports its other entries too.
        let Ok(rel) = path.strip_prefix(&self.dir) else {
            return false;
        };
        if rel
            .components()
            .any(|c| c == Component::Normal(OsStr::new(".git")))
        {
            return false;
        }
        if self.ignore.iter().any(|i| path.starts_with(i)) {
            return false;
        }
        !path.file_name().is_some_and(is_editor_scratch)
    }
}

/// Files editors create beside the one being edited.
fn is_editor_scratch(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    const SUFFIXES: [&str; 8] = [
        ".swp",
        ".swo",
        ".swn",
        ".swx",
        ".swpx",
        "~",
        "___jb_tmp___",
        "___jb_old___",
    ];
    name == "4913"
        || name.starts_with(".#")
        || (name.len() > 2 && name.starts_with('#') && name.ends_with('#'))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    use tokio::sync::mpsc::{Receiver, channel};
    use tokio::time::timeout;

    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(200);
    /// How long a signal may take to arrive after the last change.
    const ARRIVAL: Duration = Duration::from_secs(2);
    /// Quiet long enough that a second signal would have shown up.
    const QUIET: Duration = Duration::from_millis(400);

    /// A config directory like a real one.
    fn config_dir() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("roster.yaml"), "time_zone: Europe/Berlin\n").unwrap();
        for sub in ["providers", "mappings"] {
            fs::create_dir(d.join(sub)).unwrap();
            fs::write(d.join(sub).join("acme.yaml"), "a: 1\n").unwrap();
        }
        tmp
    }

    fn start(dir: &Path, ignore: Vec<PathBuf>) -> (ConfigWatch, Receiver<()>) {
        let (tx, rx) = channel(8);
        let w = ConfigWatch::start(dir, ignore, DEBOUNCE, tx).unwrap();
        (w, rx)
    }

    /// Exactly `n` signals: each within `ARRIVAL`, then none for `QUIET`.
    async fn expect_signals(rx: &mut Receiver<()>, n: usize, what: &str) {
        for i in 0..n {
            let got = timeout(ARRIVAL, rx.recv()).await;
            assert!(
                matches!(got, Ok(Some(()))),
                "{what}: signal {} of {n} did not come",
                i + 1
            );
        }
        expect_quiet(rx, what).await;
    }

    async fn expect_quiet(rx: &mut Receiver<()>, what: &str) {
        let got = timeout(QUIET, rx.recv()).await;
        assert!(got.is_err(), "{what}: unexpected signal");
    }

    #[tokio::test]
    async fn a_write_signals_once() {
        let tmp = config_dir();
        let (_w, mut rx) = start(tmp.path(), vec![]);
        fs::write(tmp.path().join("roster.yaml"), "time_zone: UTC\n").unwrap();
        expect_signals(&mut rx, 1, "write").await;
        // And again for the next, separate change.
        fs::write(tmp.path().join("mappings/acme.yaml"), "a: 2\n").unwrap();
        expect_signals(&mut rx, 1, "second write").await;
    }

    #[tokio::test]
    async fn an_editor_rename_save_signals_once() {
        let tmp = config_dir();
        let d = tmp.path();
        let (_w, mut rx) = start(d, vec![]);
        // Atomic save (VS Code with atomic writes, JetBrains, most tools): temp, fsync, rename.
        let tmp_file = d.join(".roster.yaml.tmp.1234");
        let mut f = fs::File::create(&tmp_file).unwrap();
        f.write_all(b"time_zone: UTC\n").unwrap();
        f.sync_all().unwrap();
        drop(f);
        fs::rename(&tmp_file, d.join("roster.yaml")).unwrap();
        expect_signals(&mut rx, 1, "temp + rename").await;

        // vim (`backupcopy=no`): probe with 4913, move the original to a backup, write anew,
        // delete the backup; the swap file comes and goes beside it.
        fs::write(d.join(".roster.yaml.swp"), "swap").unwrap();
        fs::write(d.join("4913"), "").unwrap();
        fs::remove_file(d.join("4913")).unwrap();
        fs::rename(d.join("roster.yaml"), d.join("roster.yaml~")).unwrap();
        fs::write(d.join("roster.yaml"), "time_zone: Europe/Paris\n").unwrap();
        fs::remove_file(d.join("roster.yaml~")).unwrap();
        fs::remove_file(d.join(".roster.yaml.swp")).unwrap();
        expect_signals(&mut rx, 1, "vim save").await;
    }

    #[tokio::test]
    async fn six_files_replaced_at_once_signal_once() {
        let tmp = config_dir();
        let d = tmp.path();
        for sub in ["providers", "mappings"] {
            fs::write(d.join(sub).join("other.yaml"), "b: 1\n").unwrap();
        }
        let (_w, mut rx) = start(d, vec![]);
        // What `git checkout` does: unlink each file and write the new version.
        let files = [
            "roster.yaml",
            "providers/acme.yaml",
            "providers/other.yaml",
            "mappings/acme.yaml",
            "mappings/other.yaml",
            "providers/new.yaml",
        ];
        for f in files {
            let path = d.join(f);
            let _ = fs::remove_file(&path);
            fs::write(&path, "changed: true\n").unwrap();
        }
        expect_signals(&mut rx, 1, "checkout").await;
    }

    #[tokio::test]
    async fn ignored_paths_do_not_signal() {
        let tmp = config_dir();
        let d = tmp.path();
        let state = d.join("state");
        fs::create_dir(d.join(".git")).unwrap();
        let (_w, mut rx) = start(d, vec![state.clone()]);
        // The state directory is created after the start, then busy.
        fs::create_dir(&state).unwrap();
        fs::create_dir(state.join("tokens")).unwrap();
        for i in 0..5 {
            fs::write(state.join("state.duckdb"), format!("{i}")).unwrap();
            fs::write(state.join("tokens/acme.json"), format!("{i}")).unwrap();
        }
        fs::rename(state.join("state.duckdb"), state.join("directory.duckdb")).unwrap();
        // Editor scratch files.
        for name in [
            ".roster.yaml.swp",
            ".roster.yaml.swx",
            "roster.yaml~",
            "4913",
            ".#roster.yaml",
            "#roster.yaml#",
            "providers/acme.yaml___jb_tmp___",
        ] {
            fs::write(d.join(name), "x").unwrap();
            fs::remove_file(d.join(name)).unwrap();
        }
        // git's own files.
        fs::write(d.join(".git/index"), "x").unwrap();
        expect_quiet(&mut rx, "ignored paths").await;
        // The watch still works: a real change after all that is one signal.
        fs::write(d.join("roster.yaml"), "time_zone: UTC\n").unwrap();
        expect_signals(&mut rx, 1, "real change").await;
    }

    #[tokio::test]
    async fn reading_does_not_signal() {
        // The daemon reads every file on reload; that must not cause another reload.
        let tmp = config_dir();
        let d = tmp.path();
        let (_w, mut rx) = start(d, vec![]);
        for _ in 0..3 {
            for f in ["roster.yaml", "providers/acme.yaml", "mappings/acme.yaml"] {
                fs::read_to_string(d.join(f)).unwrap();
            }
            for sub in [".", "providers", "mappings"] {
                fs::read_dir(d.join(sub)).unwrap().for_each(drop);
            }
        }
        expect_quiet(&mut rx, "reads").await;
    }

    /// What the kubelet's atomic writer does on a ConfigMap update.
    fn configmap_publish(d: &Path, version: &str) {
        let ts_dir = d.join(version);
        fs::create_dir(&ts_dir).unwrap();
        fs::write(ts_dir.join("roster.yaml"), format!("version: {version}\n")).unwrap();
        symlink(version, d.join("..data_tmp")).unwrap();
        fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    }

    #[tokio::test]
    async fn a_configmap_symlink_swap_signals_once() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        configmap_publish(d, "..2026_11_21_10_00_00.1");
        symlink("..data/roster.yaml", d.join("roster.yaml")).unwrap();
        let (_w, mut rx) = start(d, vec![]);

        configmap_publish(d, "..2026_11_21_10_05_00.2");
        fs::remove_dir_all(d.join("..2026_11_21_10_00_00.1")).unwrap();
        expect_signals(&mut rx, 1, "first swap").await;
        assert_eq!(
            fs::read_to_string(d.join("roster.yaml")).unwrap(),
            "version: ..2026_11_21_10_05_00.2\n"
        );

        // The watch survives the swap.
        configmap_publish(d, "..2026_11_21_10_10_00.3");
        fs::remove_dir_all(d.join("..2026_11_21_10_05_00.2")).unwrap();
        expect_signals(&mut rx, 1, "second swap").await;
    }

    #[tokio::test]
    async fn a_slow_write_signals_once_after_the_last_byte() {
        let tmp = config_dir();
        let d = tmp.path();
        let (_w, mut rx) = start(d, vec![]);
        let mut f = fs::File::create(d.join("providers/slow.yaml")).unwrap();
        for i in 0..40u8 {
            f.write_all(&[b'a' + i % 26]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            assert!(rx.try_recv().is_err(), "signal mid-write after byte {i}");
        }
        drop(f);
        let last_byte = Instant::now();
        expect_signals(&mut rx, 1, "slow write").await;
        // `expect_signals` also waited for quiet; the signal itself came at least a debounce
        // after the last byte (checked above by try_recv until then).
        assert!(last_byte.elapsed() >= DEBOUNCE);
    }

    #[tokio::test]
    async fn a_file_held_open_with_long_pauses_signals_only_after_close() {
        let tmp = config_dir();
        let d = tmp.path();
        let (_w, mut rx) = start(d, vec![]);
        let mut f = fs::File::create(d.join("mappings/slow.yaml")).unwrap();
        // Each pause is longer than the debounce: quiet alone would signal mid-file.
        for part in ["people:\n", "  - a\n", "  - b\n"] {
            f.write_all(part.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(DEBOUNCE * 3);
            assert!(rx.try_recv().is_err(), "signal while open, after {part:?}");
        }
        drop(f);
        let closed = Instant::now();
        let got = timeout(ARRIVAL, rx.recv()).await;
        assert!(matches!(got, Ok(Some(()))), "no signal after the close");
        assert!(closed.elapsed() >= DEBOUNCE, "signal before the debounce");
        expect_quiet(&mut rx, "after the close").await;
    }

    #[tokio::test]
    async fn a_file_never_closed_signals_after_the_hard_bound() {
        let tmp = config_dir();
        let d = tmp.path();
        let max_hold = DEBOUNCE * 5;
        let (tx, mut rx) = channel(8);
        let _w = ConfigWatch::start_with_max_hold(d, vec![], DEBOUNCE, max_hold, tx).unwrap();
        let began = Instant::now();
        let mut f = fs::File::create(d.join("mappings/stuck.yaml")).unwrap();
        f.write_all(b"people: []\n").unwrap();
        let got = timeout(max_hold + ARRIVAL, rx.recv()).await;
        assert!(matches!(got, Ok(Some(()))), "no signal after the bound");
        assert!(began.elapsed() >= max_hold, "signal before the bound");
        expect_quiet(&mut rx, "after the bound").await;
        // The hold was forgotten with the signal; the late close is a change of its own, and
        // signals a debounce later, not a bound later.
        drop(f);
        let closed = Instant::now();
        expect_signals(&mut rx, 1, "the late close").await;
        assert!(closed.elapsed() < max_hold + QUIET);
    }

    #[tokio::test]
    async fn a_file_renamed_or_removed_while_open_is_not_held() {
        let tmp = config_dir();
        let d = tmp.path();
        let (_w, mut rx) = start(d, vec![]);
        // A temp file written, then renamed into place before being closed: neither name is
        // held (its close, reported under the new name, is one more change).
        let temp = d.join(".roster.yaml.tmp.99");
        let mut f = fs::File::create(&temp).unwrap();
        f.write_all(b"time_zone: UTC\n").unwrap();
        fs::rename(&temp, d.join("roster.yaml")).unwrap();
        expect_signals(&mut rx, 1, "renamed while open").await;
        drop(f);
        expect_signals(&mut rx, 1, "closed after the rename").await;
        // The same for a file removed while open, and a directory removed with one inside.
        let mut f = fs::File::create(d.join("providers/gone.yaml")).unwrap();
        f.write_all(b"a: 1\n").unwrap();
        fs::remove_file(d.join("providers/gone.yaml")).unwrap();
        fs::create_dir(d.join("providers/sub")).unwrap();
        let mut g = fs::File::create(d.join("providers/sub/x.yaml")).unwrap();
        g.write_all(b"a: 1\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::rename(d.join("providers/sub"), outside.path().join("sub")).unwrap();
        expect_signals(&mut rx, 1, "removed and moved away while open").await;
        drop((f, g));
        // The unlinked file's close may or may not be reported; the moved one's is not.
        let _ = timeout(QUIET, rx.recv()).await;
        expect_quiet(&mut rx, "after the closes").await;
    }

    #[tokio::test]
    async fn an_ignored_file_held_open_does_not_hold_the_signal() {
        let tmp = config_dir();
        let d = tmp.path();
        let state = d.join("state");
        fs::create_dir(&state).unwrap();
        let (_w, mut rx) = start(d, vec![state.clone()]);
        // The state database stays open for writing while the daemon runs.
        let mut db = fs::File::create(state.join("state.duckdb")).unwrap();
        db.write_all(b"x").unwrap();
        let mut swap = fs::File::create(d.join(".roster.yaml.swp")).unwrap();
        swap.write_all(b"x").unwrap();
        fs::write(d.join("roster.yaml"), "time_zone: UTC\n").unwrap();
        expect_signals(&mut rx, 1, "real change beside open ignored files").await;
        drop((db, swap));
    }

    #[tokio::test]
    async fn a_subdirectory_created_later_is_watched() {
        let tmp = config_dir();
        let d = tmp.path();
        let (_w, mut rx) = start(d, vec![]);
        fs::create_dir(d.join("mappings/extra")).unwrap();
        expect_signals(&mut rx, 1, "new subdirectory").await;
        fs::write(d.join("mappings/extra/new.yaml"), "a: 1\n").unwrap();
        expect_signals(&mut rx, 1, "file in the new subdirectory").await;
        // Nested directories created in one go are watched too.
        fs::create_dir_all(d.join("providers/x/y")).unwrap();
        fs::write(d.join("providers/x/y/z.yaml"), "a: 1\n").unwrap();
        expect_signals(&mut rx, 1, "nested directories").await;
        fs::write(d.join("providers/x/y/z.yaml"), "a: 2\n").unwrap();
        expect_signals(&mut rx, 1, "file in a nested directory").await;
    }

    #[tokio::test]
    async fn a_symlinked_config_dir_follows_repointing() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        for v in ["v1", "v2"] {
            let r = base.join("releases").join(v);
            fs::create_dir_all(&r).unwrap();
            fs::write(r.join("roster.yaml"), format!("{v}\n")).unwrap();
        }
        let link = base.join("roster");
        symlink("releases/v1", &link).unwrap();
        let (_w, mut rx) = start(&link, vec![]);

        fs::write(link.join("roster.yaml"), "v1 edited\n").unwrap();
        expect_signals(&mut rx, 1, "edit through the link").await;

        // Re-point atomically, as deploy tools do: new link, rename over.
        symlink("releases/v2", base.join(".roster.new")).unwrap();
        fs::rename(base.join(".roster.new"), &link).unwrap();
        expect_signals(&mut rx, 1, "re-pointed").await;
        fs::write(base.join("releases/v2/roster.yaml"), "v2 edited\n").unwrap();
        expect_signals(&mut rx, 1, "edit in the new target").await;
        // Neither the old target nor the parent's other entries count.
        fs::write(base.join("releases/v1/roster.yaml"), "v1 again\n").unwrap();
        fs::write(base.join("notes.txt"), "x").unwrap();
        expect_quiet(&mut rx, "old target, parent noise").await;
    }

    #[tokio::test]
    async fn an_ignore_entry_through_a_symlink_is_matched() {
        let tmp = config_dir();
        let d = tmp.path();
        let state = d.join("state");
        fs::create_dir(&state).unwrap();
        // The daemon may name the state directory through a link to the config directory.
        let elsewhere = tempfile::tempdir().unwrap();
        let alias = elsewhere.path().join("alias");
        symlink(d, &alias).unwrap();
        let (_w, mut rx) = start(d, vec![alias.join("state"), d.to_path_buf()]);
        fs::write(state.join("state.duckdb"), "x").unwrap();
        expect_quiet(&mut rx, "state through the alias").await;
        // `d` itself was dropped from the ignore list (it would swallow everything).
        fs::write(d.join("roster.yaml"), "x").unwrap();
        expect_signals(&mut rx, 1, "real change").await;
    }

    #[tokio::test]
    async fn dropping_the_watch_stops_it() {
        let tmp = config_dir();
        let (w, mut rx) = start(tmp.path(), vec![]);
        let started = Instant::now();
        drop(w);
        assert!(started.elapsed() < Duration::from_secs(1));
        // The thread is gone, and with it the sender.
        assert_eq!(timeout(ARRIVAL, rx.recv()).await, Ok(None));
    }

    #[tokio::test]
    async fn a_closed_receiver_ends_the_thread() {
        let tmp = config_dir();
        let (w, rx) = start(tmp.path(), vec![]);
        drop(rx);
        fs::write(tmp.path().join("roster.yaml"), "x").unwrap();
        tokio::time::sleep(DEBOUNCE * 2).await;
        assert!(w.thread.as_ref().is_some_and(|t| t.is_finished()));
    }

    #[test]
    fn errors_say_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, _rx) = channel(1);
        let missing = tmp.path().join("nope");
        let e = ConfigWatch::start(&missing, vec![], DEBOUNCE, tx.clone()).unwrap_err();
        assert!(matches!(e, WatchError::NotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("does not exist"), "{e}");

        let file = tmp.path().join("roster.yaml");
        fs::write(&file, "x").unwrap();
        let e = ConfigWatch::start(&file, vec![], DEBOUNCE, tx).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");

        let limit = notify::Error::new(notify::ErrorKind::MaxFilesWatch).add_path(file.clone());
        let e = WatchError::from_notify(limit, tmp.path());
        assert!(
            e.to_string().contains("fs.inotify.max_user_watches")
                && e.to_string().contains("roster.yaml"),
            "{e}"
        );
        let instances = notify::Error::io(std::io::Error::from_raw_os_error(EMFILE));
        let e = WatchError::from_notify(instances, tmp.path());
        assert!(
            e.to_string().contains("fs.inotify.max_user_instances"),
            "{e}"
        );
    }

    #[test]
    fn editor_scratch_names() {
        let cases = [
            (".roster.yaml.swp", true),
            (".roster.yaml.swx", true),
            ("roster.yaml~", true),
            ("4913", true),
            (".#roster.yaml", true),
            ("#roster.yaml#", true),
            ("acme.yaml___jb_tmp___", true),
            ("roster.yaml", false),
            ("acme.yml", false),
            ("#", false),
            ("swp.yaml", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_editor_scratch(OsStr::new(name)), want, "{name}");
        }
    }
}
