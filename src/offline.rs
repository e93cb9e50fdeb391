//! `roster plan --offline`: what a proposed config would do to the directory and its events,
//! without the HRIS. Roster stores every raw record it read (`source_records.raw`), and the
//! published directory is a byte copy of the state database, so the records are there too:
//! this module copies that file to a private temporary directory, maps every stored raw
//! record of every source again with the proposed config (mapping, filter, precedence,
//! webhooks and their subscriptions), and runs the ordinary apply on the copy, one source
//! after another as a sync of all sources would, each re-merging everyone. The reports are
//! the same `Report`s `roster plan` renders.
//!
//! It never writes the original file (only the copy, which is removed at the end), makes no
//! network request and resolves no secret. It cannot see what changed in the HRIS since the
//! last sync (that is `roster plan`), records whose JSON was over `limits.max_record_bytes`
//! (not stored: they stay as they are), or sources the state has no records of.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::config::compile::SourcePlan;
use crate::mapping::Mapper;
use crate::store::sync::ApplyInput;
use crate::store::{Store, StoreError};
use crate::sync::Report;

/// Why an offline plan could not run.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// No state or directory file to plan against.
    #[error(
        "no directory or state database at {0} (help: pass `--against` a copy of the published directory.duckdb (or state.duckdb), or a folder holding one)"
    )]
    Missing(PathBuf),
    /// The copy could not be made.
    #[error(
        "cannot copy {from} to a temporary directory: {source} (help: check that you may read it, and that TMPDIR has room for a copy)"
    )]
    Copy {
        /// The file copied.
        from: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The copy could not be opened or planned.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The outcome of an offline plan.
#[derive(Debug, Default)]
pub struct OfflinePlan {
    /// The file planned against.
    pub against: PathBuf,
    /// One report per source planned (or why it could not be).
    pub reports: Vec<Result<Report, String>>,
    /// Data problems the change would add.
    pub problems_added: Vec<String>,
    /// Data problems the change would resolve.
    pub problems_resolved: Vec<String>,
    /// Warnings (sources not planned).
    pub warnings: Vec<String>,
}

/// The file to plan against: `against` (a file, or a folder holding `directory.duckdb` or
/// `state.duckdb`), else the config's published directory.
pub fn against_file(cfg: &Config, against: Option<&Path>) -> Result<PathBuf, OfflineError> {
    let path = match against {
        Some(p) if p.is_dir() => [crate::store::DIRECTORY_FILE, crate::store::STATE_FILE]
            .iter()
            .map(|f| p.join(f))
            .find(|f| f.is_file())
            .unwrap_or_else(|| p.join(crate::store::DIRECTORY_FILE)),
        Some(p) => p.to_path_buf(),
        None => crate::sync::directory_path(cfg),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(OfflineError::Missing(path))
    }
}

/// A private temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("roster-plan-{}-{nanos:08x}", std::process::id()));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Plans `cfg` (only `only` when not empty) against a copy of `against`.
pub fn plan(
    cfg: &Config,
    against: &Path,
    only: &[&SourcePlan],
) -> Result<OfflinePlan, OfflineError> {
    let tmp = TempDir::new().map_err(|source| OfflineError::Copy {
        from: against.to_path_buf(),
        source,
    })?;
    let copy = tmp.0.join(crate::store::STATE_FILE);
    std::fs::copy(against, &copy).map_err(|source| OfflineError::Copy {
        from: against.to_path_buf(),
        source,
    })?;
    // A state database in use may have a write-ahead log beside it; the published directory
    // (checkpointed, renamed into place) never does.
    let mut wal = against.as_os_str().to_owned();
    wal.push(".wal");
    if Path::new(&wal).is_file() {
        std::fs::copy(
            &wal,
            tmp.0.join(format!("{}.wal", crate::store::STATE_FILE)),
        )
        .map_err(|source| OfflineError::Copy {
            from: PathBuf::from(&wal),
            source,
        })?;
    }
    let mut store = Store::open(&tmp.0, &tmp.0.join(crate::store::DIRECTORY_FILE))?;
    crate::sync::configure_store(cfg, &mut store)?;
    let mut out = OfflinePlan {
        against: against.to_path_buf(),
        ..OfflinePlan::default()
    };
    let before = store.problem_lines()?;
    let stored: HashSet<String> = store
        .record_sources()?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let plans: Vec<&SourcePlan> = if only.is_empty() {
        cfg.sources.iter().filter(|s| s.enabled).collect()
    } else {
        only.to_vec()
    };
    for plan in plans {
        if !stored.contains(&plan.name) {
            out.warnings.push(format!(
                "source `{}` has no stored records (it was never synced into this directory): its people are not in this plan; `roster plan` reads it from the HRIS",
                plan.name
            ));
            continue;
        }
        out.reports.push(
            remap_source(cfg, &mut store, plan)
                .map_err(|e| format!("source `{}`: {}", plan.name, e.locate(&copy))),
        );
    }
    for (name, records) in crate::sync::orphan_sources(cfg, &store)? {
        out.warnings
            .push(crate::sync::orphan_warning(&name, records));
    }
    let after = store.problem_lines()?;
    out.problems_added = after
        .iter()
        .filter(|p| !before.contains(p))
        .cloned()
        .collect();
    out.problems_resolved = before
        .iter()
        .filter(|p| !after.contains(p))
        .cloned()
        .collect();
    drop(store);
    drop(tmp);
    Ok(out)
}

/// Maps every stored raw record of one source again with `plan`'s mapping and applies the
/// result to the copy, as a sync that read the same listing would (every record counts as
/// changed; everyone is merged again). A run the safety thresholds hold applies nothing and
/// lists no changes, so a held one is planned once more as a dry run, for the list.
fn remap_source(cfg: &Config, store: &mut Store, plan: &SourcePlan) -> Result<Report, StoreError> {
    let report = remap_once(cfg, store, plan, false)?;
    if report.applied.held.is_some() {
        return remap_once(cfg, store, plan, true);
    }
    Ok(report)
}

fn remap_once(
    cfg: &Config,
    store: &mut Store,
    plan: &SourcePlan,
    dry_run: bool,
) -> Result<Report, StoreError> {
    let started = std::time::Instant::now();
    let start = jiff::Timestamp::now();
    let mapping = &cfg.mappings[&plan.mapping].spec;
    let mapper = Mapper::new(plan, mapping);
    // A seed of its own, so that no re-mapped record has the hash of its stored version:
    // every stored version is replaced.
    let seed = mapper.fingerprint().rotate_left(17) ^ 0x6f66_666c_696e_6521;
    let precedence = crate::sync::precedence_table(cfg);
    let merge_key = crate::sync::merge_fingerprint(&precedence);
    let mut run = crate::sync::start_run(cfg, store, &plan.name, start)?;
    let records = store.raw_records(&plan.name)?;
    let listing_problems = store.listing_problems(&plan.name)?;
    let mut gone = Vec::with_capacity(records.len());
    let mut keys = HashSet::with_capacity(records.len());
    let mut duplicates = 0u64;
    let mut staging = store.begin_staging(&plan.name, run.id, start.as_microsecond())?;
    let staged = (|| {
        for (_, old_hash, raw) in &records {
            if crate::sync::raw_not_stored(raw) {
                // Its JSON was never stored: it stays as it is.
                continue;
            }
            gone.push(*old_hash);
            let Ok(record) = mapper.parse(raw.as_bytes()) else {
                continue;
            };
            let hash = xxhash_rust::xxh3::xxh3_64_with_seed(raw.as_bytes(), seed) as i64;
            let mapped = mapper.map_sized(&record, raw.len());
            let key = crate::sync::record_key(&mapped, hash);
            // A new key path can make two records share a key: the first wins, as in a
            // listing.
            if !keys.insert(key.clone()) {
                duplicates += 1;
                continue;
            }
            crate::sync::stage_mapped(mapped, &key, hash, raw, |r| staging.stage(r))?;
        }
        Ok::<_, StoreError>(())
    })();
    let staged = staged.and_then(|()| staging.finish());
    let changed = match staged {
        Ok(n) => n,
        Err(e) => {
            store.discard_staging().ok();
            return Err(e);
        }
    };
    run.pages = 0;
    run.records = records.len() as u64;
    run.changed_records = changed;
    let coverage_rules = mapping.coverage_rules();
    let safety = plan.safety;
    let input = ApplyInput {
        source: &plan.name,
        gone: &gone,
        remerge_all: true,
        now: run.started_at.clone(),
        now_us: start.as_microsecond(),
        today: start.to_zoned(cfg.time_zone()).date().to_string(),
        precedence: &precedence,
        allow_removals: false,
        max_removals: safety.max_removals,
        min_removals_to_hold: safety.min_removals_to_hold,
        hold_on_empty: safety.hold_on_empty,
        listing_empty: records.is_empty(),
        // Applied to the copy, so that the next source is planned on top of this one, as a
        // sync of every source would; the copy is thrown away.
        dry_run,
        want_changes: true,
        coverage: &coverage_rules,
        merge_key: &merge_key,
        source_problems: &listing_problems,
    };
    run.finished_at = Some(crate::sync::run_time(jiff::Timestamp::now()));
    run.duration_ms = started.elapsed().as_millis() as u64;
    let applied = store.apply(&input, &mut run);
    store.discard_staging().ok();
    let applied = applied?;
    Ok(Report {
        source: plan.name.clone(),
        coverage: applied.coverage.clone(),
        run,
        applied,
        published: false,
        relisted: 0,
        duplicates,
    })
}
