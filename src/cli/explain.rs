//! `roster explain EMAIL`: why one person looks the way they do in the directory. Per field,
//! which source, record and mapping set the value and which sources lost under precedence
//! (and why); the records the filter excluded (and why); how the manager was resolved; the
//! person's history; the events sent, to which endpoints, and the ones not sent (baseline,
//! subscriptions, conditions).
//!
//! It reads the published directory (beside the daemon too) and the config on disk for the
//! mappings and the precedence; it prints to the terminal of whoever asked, which may show
//! the person's values (they can read the directory anyway). It writes nothing and logs no
//! value.

use std::collections::BTreeSet;
use std::io::Write as _;

use serde_json::{Map, Value};

use super::ConfigArg;
use crate::config::Config;
use crate::config::person::Field;
use crate::store::read::{Directory, RecordRow};

/// Arguments of `roster explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is (mappings, precedence, webhooks; and the directory).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The person's work email.
    pub email: String,
    /// Read this directory file instead of the config's.
    #[arg(long)]
    pub directory: Option<std::path::PathBuf>,
}

/// Runs `roster explain`.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let cfg = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let path = args
        .directory
        .clone()
        .unwrap_or_else(|| crate::sync::directory_path(&cfg));
    let directory = match Directory::open(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let email = args.email.trim().to_lowercase();
    let mut out = Vec::new();
    let found = explain(&mut out, &cfg, &directory, &email)?;
    std::io::stdout().lock().write_all(&out)?;
    if !found {
        eprintln!(
            "error: nobody with the work email `{email}` is in the directory at {}, and no stored record mentions it (help: check the spelling; `roster query \"select work_email from people where work_email ilike '%part%'\"` finds similar ones)",
            path.display()
        );
        return Ok(1);
    }
    Ok(0)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn quoted(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(empty)".into(),
    }
}

/// The sources in precedence order for a field (`status` is decided by `hris_status`).
fn precedence(table: &[(String, String, i32)], field: &str) -> Vec<String> {
    let key = if field == "status" {
        "hris_status"
    } else {
        field
    };
    let mut rows: Vec<&(String, String, i32)> = table.iter().filter(|r| r.0 == key).collect();
    if rows.is_empty() {
        rows = table.iter().filter(|r| r.0 == "*").collect();
    }
    rows.sort_by_key(|r| r.2);
    rows.into_iter().map(|r| r.1.clone()).collect()
}

/// How a source's mapping sets a field, as written (compact JSON of the mapping entry).
fn mapping_of(cfg: &Config, source: &str, field: Field) -> String {
    let Some(plan) = cfg.sources.iter().find(|s| s.name == source) else {
        return format!("source `{source}` is no longer in roster.yaml");
    };
    match plan.fields.iter().find(|(f, _)| *f == field) {
        Some((_, m)) => format!(
            "mappings/{}.yaml fields.{}: {}",
            plan.mapping,
            field.name(),
            serde_json::to_string(m).unwrap_or_default()
        ),
        None => format!("not mapped by mappings/{}.yaml", plan.mapping),
    }
}

/// Writes the explanation; returns false when nothing is known about `email`.
pub fn explain(
    out: &mut impl std::io::Write,
    cfg: &Config,
    directory: &Directory,
    email: &str,
) -> anyhow::Result<bool> {
    let people = directory.people_json(&[email.to_string()])?;
    let person = people.get(email);
    let records = directory.records_of(email)?;
    if person.is_none() && records.is_empty() {
        return Ok(false);
    }
    let empty = Map::new();
    let p = person.unwrap_or(&empty);
    let get = |k: &str| text(p.get(k));
    let kept: Vec<&RecordRow> = records.iter().filter(|r| r.outcome == "kept").collect();
    match person {
        Some(_) => writeln!(
            out,
            "{email}: {}, {}; sources: {}",
            get("display_name").unwrap_or_else(|| "(no name)".into()),
            get("status").unwrap_or_else(|| "(no status)".into()),
            p.get("sources")
                .and_then(Value::as_array)
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        )?,
        None => writeln!(
            out,
            "{email}: not in the directory (the records below mention the email)"
        )?,
    }
    writeln!(
        out,
        "(from {}; mappings and precedence as the config on disk says now)",
        directory.path().display()
    )?;

    // Fields.
    let table = crate::sync::precedence_table(cfg);
    let provenance = p.get("provenance").and_then(Value::as_object);
    if person.is_some() {
        writeln!(out, "\nfields (value <- source record, mapping):")?;
        for field in Field::ALL {
            let name = field.name();
            let value = get(name);
            let from = provenance.and_then(|m| text(m.get(name)));
            let offered: Vec<(&RecordRow, &String)> = kept
                .iter()
                .filter_map(|r| r.values[*field as usize].as_ref().map(|v| (*r, v)))
                .collect();
            if value.is_none() && offered.is_empty() {
                continue;
            }
            let winner = from
                .as_deref()
                .and_then(|s| kept.iter().find(|r| r.source == s));
            match (&value, winner) {
                (Some(_), Some(w)) => writeln!(
                    out,
                    "  {name} = {} <- {} record {}: {}",
                    quoted(&value),
                    w.source,
                    w.record_key,
                    mapping_of(cfg, &w.source, *field)
                )?,
                (Some(_), None) => writeln!(
                    out,
                    "  {name} = {} <- {}",
                    quoted(&value),
                    match (*field, from) {
                        (Field::status, _) =>
                            "derived from the dates (no source gives a status)".to_string(),
                        (_, Some(s)) =>
                            format!("{s} (its record is no longer listed: kept as it was)"),
                        (_, None) => "derived".to_string(),
                    }
                )?,
                (None, _) => writeln!(out, "  {name} = (empty)")?,
            }
            if *field == Field::status {
                if let Some(h) = get("hris_status") {
                    writeln!(
                        out,
                        "      status is the HRIS's status ({h:?}) corrected by the dates (a start date ahead: pre_hire; an end date passed: terminated)"
                    )?;
                }
            }
            if let Some(failed) = winner.and_then(|w| w.failed_fields.as_deref()) {
                if failed.split(',').any(|f| f == name) {
                    writeln!(
                        out,
                        "      the latest value failed to convert; the last good one stands (see data problems)"
                    )?;
                }
            }
            let order = precedence(&table, name);
            for (r, v) in &offered {
                if winner.is_some_and(|w| std::ptr::eq(*w, *r)) {
                    continue;
                }
                let why = if Some(*v) == value.as_ref() {
                    "same value".to_string()
                } else {
                    let rank = |s: &str| order.iter().position(|x| x == s);
                    match (winner.and_then(|w| rank(&w.source)), rank(&r.source)) {
                        (Some(a), Some(b)) if a < b => {
                            format!("lost under precedence for {name}: {}", order.join(" > "))
                        }
                        _ => "not used".to_string(),
                    }
                };
                writeln!(
                    out,
                    "      {} record {} has {v:?}: {why}",
                    r.source, r.record_key
                )?;
            }
            // Sources that rank higher but have nothing for the field.
            if let Some(w) = winner {
                for s in order.iter().take_while(|s| **s != w.source) {
                    if let Some(r) = kept.iter().find(|r| &r.source == s) {
                        if r.values[*field as usize].is_none() {
                            writeln!(
                                out,
                                "      {s} record {} ranks higher but is empty ({})",
                                r.record_key,
                                mapping_of(cfg, s, *field)
                            )?;
                        }
                    }
                }
            }
        }
    }

    // Records.
    writeln!(out, "\nrecords:")?;
    for r in &records {
        let detail = r
            .problems
            .as_deref()
            .map(|p| p.replace('\n', "; "))
            .unwrap_or_default();
        let line = match r.outcome.as_str() {
            "kept" if detail.is_empty() => "kept".to_string(),
            "kept" => format!("kept, with problems: {detail}"),
            "excluded" => format!("excluded by the filter of its mapping: {detail}"),
            "failed" => format!(
                "could not be mapped: {detail} (the person keeps this source's last good record)"
            ),
            other => other.to_string(),
        };
        writeln!(out, "  {} record {}: {line}", r.source, r.record_key)?;
    }
    let keys: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.source.clone(), r.record_key.clone()))
        .collect();

    // Manager.
    if person.is_some() {
        writeln!(out, "\nmanager:")?;
        let manager = get("manager_email");
        let from = provenance.and_then(|m| text(m.get("manager_email")));
        let record = from
            .as_deref()
            .and_then(|s| kept.iter().find(|r| r.source == s))
            .or_else(|| {
                kept.iter()
                    .find(|r| r.values[Field::manager_id as usize].is_some())
            });
        match record {
            Some(r) => {
                let id = &r.values[Field::manager_id as usize];
                let mapped = &r.values[Field::manager_email as usize];
                match id {
                    Some(id) => match directory.record_by_employee_id(&r.source, id)? {
                        Some((key, mail)) => writeln!(
                            out,
                            "  {} record {} names manager id {id:?}: {} record {key} ({}) -> {}",
                            r.source,
                            r.record_key,
                            r.source,
                            mail.as_deref().unwrap_or("no work email"),
                            quoted(&manager)
                        )?,
                        None => writeln!(
                            out,
                            "  {} record {} names manager id {id:?}, which no kept record of `{}` has; {} -> {}",
                            r.source,
                            r.record_key,
                            r.source,
                            match mapped {
                                Some(m) => format!("the mapped manager_email {m:?} is used"),
                                None =>
                                    "nothing to fall back on (an unresolved_manager data problem)"
                                        .to_string(),
                            },
                            quoted(&manager)
                        )?,
                    },
                    None => writeln!(
                        out,
                        "  {} record {} maps manager_email {} (no manager id) -> {}",
                        r.source,
                        r.record_key,
                        quoted(mapped),
                        quoted(&manager)
                    )?,
                }
            }
            None => writeln!(out, "  no source names a manager: {}", quoted(&manager))?,
        }
    }

    // Data problems.
    let problems = directory.problems_of(email, &keys)?;
    writeln!(out, "\ndata problems:")?;
    if problems.is_empty() {
        writeln!(out, "  none")?;
    }
    for [kind, source, key, field, detail] in &problems {
        writeln!(
            out,
            "  {}: {}{}{}",
            kind.as_deref().unwrap_or(""),
            match (source, key) {
                (Some(s), Some(k)) => format!("{s} record {k}: "),
                _ => String::new(),
            },
            field
                .as_deref()
                .map(|f| format!("{f}: "))
                .unwrap_or_default(),
            detail.as_deref().unwrap_or("")
        )?;
    }

    // History.
    let history = directory.history(email)?;
    let baselines = directory.baseline_runs()?;
    writeln!(out, "\nhistory (UTC):")?;
    if history.is_empty() {
        writeln!(out, "  none")?;
    }
    for h in &history {
        writeln!(
            out,
            "  {} .. {}  {} = {:?} ({}, run {})",
            h.valid_from,
            h.valid_to.as_deref().unwrap_or("now"),
            h.field,
            h.value,
            h.source,
            h.sync_run
        )?;
    }

    // Events.
    writeln!(out, "\nevents:")?;
    let spec = &cfg.deployment.spec;
    let routing = crate::events::Routing::from_deployment(spec);
    let runs: BTreeSet<i64> = history.iter().map(|h| h.sync_run).collect();
    for (source, run) in &baselines {
        if runs.contains(run) {
            writeln!(
                out,
                "  run {run} was the first sync of `{source}`: a baseline, so its changes to this person sent no person events{}",
                if routing.created_on_first_sync {
                    " but person.created (events.created_on_first_sync)"
                } else {
                    " (events.created_on_first_sync: false)"
                }
            )?;
        }
    }
    if spec.webhooks.is_empty() {
        writeln!(
            out,
            "  no webhooks are configured, so no events are written (see \"Events and webhooks\" in the README)"
        )?;
        return Ok(true);
    }
    let outbox = crate::store::events::Outbox::published(directory.path())?;
    let events = outbox.list(&crate::store::events::ListFilter {
        work_email: Some(email.to_string()),
        limit: 500,
        ..Default::default()
    })?;
    if events.is_empty() {
        writeln!(out, "  none written about this person")?;
    }
    for e in events.iter().rev() {
        let sent: Vec<String> = e
            .deliveries
            .iter()
            .map(|d| format!("{} {}", d.endpoint, d.state))
            .collect();
        writeln!(
            out,
            "  {} {}{} {}: {}",
            e.created_at,
            e.kind,
            e.trigger
                .as_deref()
                .map(|t| format!(" (trigger {t}, {})", e.occurrence.as_deref().unwrap_or("")))
                .unwrap_or_default(),
            e.id,
            if sent.is_empty() {
                "to no endpoint".to_string()
            } else {
                sent.join(", ")
            }
        )?;
        for s in &routing.subscriptions {
            if e.deliveries.iter().any(|d| d.endpoint == s.endpoint) {
                continue;
            }
            let why = if !s
                .patterns
                .iter()
                .any(|pat| crate::events::type_matches(pat, &e.kind))
            {
                format!("subscribes to {} only", s.patterns.join(", "))
            } else if e
                .trigger
                .as_ref()
                .is_some_and(|t| !s.triggers.is_empty() && !s.triggers.contains(t))
            {
                format!("takes only the triggers {}", s.triggers.join(", "))
            } else if !s.when.is_empty() && !crate::events::person_matches(&s.when, p) {
                let conds: Vec<String> = s
                    .when
                    .iter()
                    .map(|(f, v)| {
                        format!(
                            "{f} in [{}] (this person: {})",
                            v.values().join(", "),
                            quoted(&text(p.get(f.as_str())))
                        )
                    })
                    .collect();
                format!("its `when` does not match: {}", conds.join("; "))
            } else {
                "was not configured (or was disabled) when the event was written".to_string()
            };
            writeln!(out, "      not sent to {}: {why}", s.endpoint)?;
        }
    }
    Ok(true)
}
