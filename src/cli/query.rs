//! `roster query "SQL"`: runs SQL against the published directory, read-only (the same file
//! `duckdb -readonly` opens), and prints a table, CSV or JSON lines.

use std::io::Write as _;

pub use crate::store::value::{execute, json, text};

use super::ConfigArg;

/// Arguments of `roster query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is (to find the directory).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The SQL, e.g. "select display_name, job_title from active_people".
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Query this directory file instead of the config's.
    #[arg(long)]
    pub directory: Option<std::path::PathBuf>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
}

/// Runs the query.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let path = match super::directory_arg(&args.config, args.directory.as_deref()) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let conn = match crate::store::open_readonly(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let (columns, rows) = match execute(&conn, &args.sql) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "help: the tables are people, source_records, sync_runs, data_problems; the views person_values (history), active_people, org_chart, upcoming_dates, raw_records (see `roster query \"show tables\"`)"
            );
            return Ok(1);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        Format::Table => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header(&columns);
            for r in &rows {
                t.add_row(r.iter().map(text));
            }
            writeln!(out, "{t}")?;
            writeln!(
                out,
                "{} row{}",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            )?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(&columns)?;
            for r in &rows {
                w.write_record(r.iter().map(text))?;
            }
            w.flush()?;
        }
        Format::Json => {
            for r in &rows {
                let obj: serde_json::Map<String, serde_json::Value> =
                    columns.iter().cloned().zip(r.iter().map(json)).collect();
                serde_json::to_writer(&mut out, &obj)?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}
