//! `roster events upcoming`: the calendar of lifecycle events the date triggers will fire in
//! the next days: when (company time zone), for whom, to which endpoints. It runs the same
//! rules as the daemon's evaluation (`lifecycle::upcoming`: offsets, `when:` conditions,
//! 29 February, leavers) against the published directory, so it works beside the daemon
//! and writes nothing.
//!
//! It does not show occurrences already due (those are in `roster events list`), nor person
//! events, which only a sync's changes cause (`roster plan` lists those).

use std::io::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::fetch::EX_USAGE;
use crate::config::Config;
use crate::lifecycle::Upcoming;

/// Arguments of `roster events upcoming`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpcomingArgs {
    /// How many days ahead to look.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Only events going to this webhook endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only this trigger's events.
    #[arg(long)]
    pub trigger: Option<String>,
    /// Start the window here instead of now: a date (`2027-02-20`, midnight in the company
    /// time zone), a local date-time (`2027-02-20T08:00`) or an RFC 3339 instant. Checks a
    /// go-live date ahead of time.
    #[arg(long, value_name = "WHEN")]
    pub from: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Read this directory file instead of the config's published directory.
    #[arg(long)]
    pub directory: Option<std::path::PathBuf>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per event.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Serialize)]
struct JsonUpcoming<'a> {
    from: String,
    to: String,
    time_zone: &'a str,
    events: Vec<JsonEvent<'a>>,
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    /// When it fires, UTC.
    fire_at: String,
    /// When it fires, in the company time zone (RFC 9557, with the zone's name).
    fire_at_local: String,
    trigger: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    work_email: Option<&'a str>,
    /// The day the event is about (after the 29 February rule, before the offset).
    date: String,
    years: Option<i16>,
    endpoints: &'a [String],
}

/// Parses `--from`: an instant, a local date-time or a date in the company time zone.
fn parse_from(text: &str, tz: &jiff::tz::TimeZone) -> Result<Timestamp, String> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "--from `{text}` is not a date (2027-02-20), a local date-time (2027-02-20T08:00) or an RFC 3339 instant (2027-02-20T07:00:00Z)"
    ))
}

/// Runs `roster events upcoming`. Returns the exit code.
pub fn run(cfg: &Config, args: &UpcomingArgs) -> anyhow::Result<u8> {
    let spec = &cfg.deployment.spec;
    let triggers: Vec<&String> = spec.triggers.keys().collect();
    let endpoints: Vec<&String> = spec.webhooks.keys().collect();
    for (asked, what, names) in [
        (&args.trigger, "trigger", &triggers),
        (&args.endpoint, "webhook endpoint", &endpoints),
    ] {
        if let Some(name) = asked.as_ref().filter(|n| !names.contains(n)) {
            let list: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
            eprintln!(
                "error: no {what} `{name}` in roster.yaml; the {what}s are: {}",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }
            );
            return Ok(EX_USAGE);
        }
    }
    let tz = cfg.time_zone();
    let from = match &args.from {
        Some(text) => match parse_from(text, &tz) {
            Ok(ts) => ts,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(EX_USAGE);
            }
        },
        None => Timestamp::now(),
    };
    let to = from
        .checked_add(SignedDuration::from_hours(24 * i64::from(args.days)))
        .unwrap_or(from);
    let path = args
        .directory
        .clone()
        .unwrap_or_else(|| crate::sync::directory_path(cfg));
    let directory = match crate::store::read::Directory::open(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let mut found = crate::lifecycle::upcoming(cfg, &directory, args.trigger.as_deref(), from, to)?;
    if let Some(e) = &args.endpoint {
        found.retain(|u| u.endpoints.contains(e));
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let doc = JsonUpcoming {
                from: from.to_string(),
                to: to.to_string(),
                time_zone: spec.time_zone.as_str(),
                events: found
                    .iter()
                    .map(|u| JsonEvent {
                        fire_at: u.occurrence.fire_at.to_string(),
                        fire_at_local: u.occurrence.fire_at.to_zoned(tz.clone()).to_string(),
                        trigger: &u.trigger,
                        kind: &u.event.kind,
                        work_email: u.event.work_email.as_deref(),
                        date: u.occurrence.date.to_string(),
                        years: u.occurrence.years,
                        endpoints: &u.endpoints,
                    })
                    .collect(),
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&mut out, cfg, args, &found, from, to)?,
    }
    out.flush()?;
    Ok(0)
}

fn local(ts: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn write_text(
    out: &mut impl std::io::Write,
    cfg: &Config,
    args: &UpcomingArgs,
    found: &[Upcoming],
    from: Timestamp,
    to: Timestamp,
) -> std::io::Result<()> {
    let spec = &cfg.deployment.spec;
    let tz = cfg.time_zone();
    if spec.triggers.is_empty() {
        writeln!(
            out,
            "no date triggers are configured (help: add `triggers:` to roster.yaml; see \"Date triggers\" in the README)"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "lifecycle events from {} to {} ({}):",
        local(from, &tz),
        local(to, &tz),
        spec.time_zone.as_str()
    )?;
    let width = |f: &dyn Fn(&Upcoming) -> usize| found.iter().map(f).max().unwrap_or(0);
    let (wl, wt, wk, we) = (
        width(&|u| local(u.occurrence.fire_at, &tz).len()),
        width(&|u| u.trigger.len()),
        width(&|u| u.event.kind.len()),
        width(&|u| u.event.work_email.as_deref().unwrap_or("").len()),
    );
    let mut unrouted = 0;
    for u in found {
        let about = match u.occurrence.years {
            Some(1) => format!("{} (1 year)", u.occurrence.date),
            Some(y) => format!("{} ({y} years)", u.occurrence.date),
            None => u.occurrence.date.to_string(),
        };
        let to = if u.endpoints.is_empty() {
            unrouted += 1;
            "(no endpoint subscribes)".to_string()
        } else {
            u.endpoints.join(", ")
        };
        writeln!(
            out,
            "  {:<wl$}  {:<wt$}  {:<wk$}  {:<we$}  {:<24} -> {to}",
            local(u.occurrence.fire_at, &tz),
            u.trigger,
            u.event.kind,
            u.event.work_email.as_deref().unwrap_or(""),
            about,
        )?;
    }
    let mut summary = format!(
        "{} event{} in the next {} day{}",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        args.days,
        if args.days == 1 { "" } else { "s" }
    );
    if unrouted > 0 {
        summary.push_str(&format!(
            "; {unrouted} go to no endpoint (no webhook's `events`, `triggers` and `when` take them)"
        ));
    }
    writeln!(out, "{summary}.")
}
