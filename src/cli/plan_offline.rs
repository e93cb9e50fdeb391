//! `roster plan --offline`: renders `offline::plan` as `roster plan` renders a plan (the same
//! per-source text or JSON), plus what only an offline plan knows: the data problems the
//! change adds and resolves, and the events each endpoint would receive. Exit codes for CI:
//! 0 no changes, 2 changes, 75 a source would be held, 78 invalid config (before this runs),
//! 1 the plan could not be made.

use std::collections::BTreeMap;

use serde::Serialize;

use super::fetch::EX_USAGE;
use super::sync::{EX_HELD, PlanArgs, PlanOutput, pick, plural, write_json_plan, write_plan};
use crate::config::Config;

/// Exit code for a plan with changes (like `terraform plan -detailed-exitcode`).
pub const EX_CHANGES: u8 = 2;

#[derive(Serialize)]
struct Summary<'a> {
    offline: bool,
    against: String,
    changes: bool,
    held: Vec<&'a str>,
    data_problems_added: &'a [String],
    data_problems_resolved: &'a [String],
    /// Per endpoint, per event type, how many events.
    events: &'a BTreeMap<String, BTreeMap<String, u64>>,
    warnings: &'a [String],
}

/// Plans offline and renders the result.
pub fn run(cfg: &Config, args: &PlanArgs, json: bool) -> PlanOutput {
    let mut output = PlanOutput::default();
    let only = match pick(cfg, &args.sources) {
        Ok(p) => p,
        Err(e) => {
            output.stderr = format!("{e}\n");
            output.code = EX_USAGE;
            return output;
        }
    };
    let against = match crate::offline::against_file(cfg, args.against.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            output.stderr = format!("error: {e}\n");
            output.code = 1;
            return output;
        }
    };
    let plan = match crate::offline::plan(cfg, &against, &only) {
        Ok(p) => p,
        Err(e) => {
            output.stderr = format!("error: {e}\n");
            output.code = 1;
            return output;
        }
    };
    let mut out = Vec::new();
    let mut err = String::new();
    let mut code = 0u8;
    let mut changes = !plan.problems_added.is_empty() || !plan.problems_resolved.is_empty();
    let mut held = Vec::new();
    let mut events: BTreeMap<String, BTreeMap<String, u64>> = cfg
        .deployment
        .spec
        .webhooks
        .keys()
        .map(|k| (k.clone(), BTreeMap::new()))
        .collect();
    for w in &plan.warnings {
        err.push_str(&format!("warning: {w}\n"));
    }
    if !json {
        out.extend_from_slice(
            format!(
                "offline plan of {} against {} (a temporary copy; nothing is written, nothing is fetched)\n",
                cfg.dir.display(),
                plan.against.display()
            )
            .as_bytes(),
        );
    }
    for r in &plan.reports {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                err.push_str(&format!("error: {e}\n"));
                code = code.max(1);
                continue;
            }
        };
        let a = &r.applied;
        if let Some(detail) = &a.coverage_failed {
            err.push_str(&format!(
                "error: source `{}`: {detail}; a sync would fail and apply nothing (help: check the mapping's paths, or relax `coverage:` in the mapping)\n",
                r.source
            ));
            code = code.max(1);
        }
        if a.created + a.updated + a.terminated + a.reactivated > 0 || !a.events.is_empty() {
            changes = true;
        }
        if a.held.is_some() {
            held.push(r.source.as_str());
        }
        for (ev, endpoints) in &a.events {
            for e in endpoints {
                *events
                    .entry(e.clone())
                    .or_default()
                    .entry(ev.kind.clone())
                    .or_default() += 1;
            }
        }
        // Writing into memory cannot fail.
        let _ = if json {
            write_json_plan(&mut out, r)
        } else {
            write_plan(&mut out, r)
        };
    }
    if json {
        let summary = Summary {
            offline: true,
            against: plan.against.display().to_string(),
            changes,
            held: held.clone(),
            data_problems_added: &plan.problems_added,
            data_problems_resolved: &plan.problems_resolved,
            events: &events,
            warnings: &plan.warnings,
        };
        let _ = serde_json::to_writer(&mut out, &summary);
        out.push(b'\n');
    } else {
        let mut t = String::new();
        if !plan.problems_added.is_empty() || !plan.problems_resolved.is_empty() {
            t.push_str("data problems:\n");
            for p in &plan.problems_added {
                t.push_str(&format!("  + {p}\n"));
            }
            for p in &plan.problems_resolved {
                t.push_str(&format!("  - {p} (resolved)\n"));
            }
        }
        if !events.is_empty() {
            t.push_str("events per endpoint:\n");
            for (endpoint, kinds) in &events {
                let total: u64 = kinds.values().sum();
                let detail: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                t.push_str(&format!(
                    "  {endpoint}: {}{}\n",
                    plural(total, "event", "events"),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", detail.join(", "))
                    }
                ));
            }
        }
        t.push_str(&if !held.is_empty() {
            format!(
                "Offline plan: the sync of {} would be HELD by the safety thresholds (nothing of it applied).\n",
                held.join(", ")
            )
        } else if changes {
            "Offline plan: the directory would change.\n".to_string()
        } else {
            "Offline plan: no changes.\n".to_string()
        });
        out.extend_from_slice(t.as_bytes());
    }
    if changes {
        code = code.max(EX_CHANGES);
    }
    if !held.is_empty() {
        code = code.max(EX_HELD);
    }
    output.stdout = String::from_utf8_lossy(&out).into_owned();
    output.stderr = err;
    output.code = code;
    output
}
