//! Logging: one global `tracing` subscriber writing to stderr, in the format the reader needs.
//!
//! - a terminal or a plain file gets human lines (`Text`: timestamp, level, message, fields;
//!   colours only on a terminal);
//! - journald gets lines prefixed with the syslog priority it parses (`<4>`), and no timestamp of
//!   our own, since journald stamps every entry (`Journal`);
//! - log pipelines get one JSON object per line (`Json`).
//!
//! `Auto` picks `Journal` when stderr *is* the journal stream systemd set up (`JOURNAL_STREAM`,
//! checked against stderr's device and inode as systemd documents), else `Text`.
//!
//! This module only installs the subscriber; it does not decide what to log, and it never fails:
//! a second `init` (a test, an embedding program) leaves the first subscriber in place.

use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::io::IsTerminal as _;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines look on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `journal` when stderr is connected to journald (`JOURNAL_STREAM`), else `text`.
    #[default]
    Auto,
    /// Human lines: timestamp, level, message and fields; colours on a terminal.
    Text,
    /// journald: `<N>` syslog priority prefix, no timestamp (journald adds one), no colours.
    Journal,
    /// One JSON object per line: timestamp, level, target, message and fields flattened.
    Json,
}

/// Installs the global subscriber on stderr. The filter is `RUST_LOG` when set (e.g.
/// `RUST_LOG=roster=debug`), else `default_filter` ("warn" for one-shot commands, "info" for
/// `roster run`). Calling it again does nothing: the first subscriber stays.
pub fn init(format: LogFormat, default_filter: &str) {
    let format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journal,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    // Err means a subscriber is already installed: keep it.
    let _ = subscriber(format, filter, std::io::stderr, ansi).try_init();
}

/// The subscriber for a resolved format (`Auto` is treated as `Text`), writing to `writer`.
/// Separate from `init` so tests can format into a buffer.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Auto | LogFormat::Text => {
            Box::new(builder.with_ansi(ansi).with_target(false).finish())
        }
        LogFormat::Journal => Box::new(builder.with_ansi(false).event_format(Journal).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// True when stderr is the stream systemd connected to journald: `JOURNAL_STREAM` is set (to
/// `device:inode`) and matches stderr's own. A child that inherited the variable but whose
/// stderr was redirected (to a file, a pipe, a terminal) does not match, so it gets `Text`.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    // fstat(2) on a duplicate of fd 2 (closed again when `file` drops), as systemd documents.
    let meta = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata());
    meta.is_ok_and(|m| journal_stream_matches(&var, m.dev(), m.ino()))
}

/// Whether a `JOURNAL_STREAM` value (`<device>:<inode>`, both decimal) names this file.
fn journal_stream_matches(var: &OsStr, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// journald's line format: `<priority>spans: message fields`, one line per line of the message
/// (journald splits its stream on newlines, so a multi-line message would otherwise lose its
/// priority after the first line).
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                line.push_str(span.name());
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(line, "{{{fields}}}")?;
                }
                line.push_str(": ");
            }
        }
        ctx.field_format()
            .format_fields(Writer::new(&mut line), event)?;
        let priority = syslog_priority(*event.metadata().level());
        for l in line.lines() {
            writeln!(writer, "<{priority}>{l}")?;
        }
        Ok(())
    }
}

/// The syslog priority journald records for a level (sd-daemon(3)).
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3, // SD_ERR
        Level::WARN => 4,  // SD_WARNING
        Level::INFO => 6,  // SD_INFO
        _ => 7,            // SD_DEBUG (DEBUG, TRACE)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buf {
        type Writer = Buf;
        fn make_writer(&'w self) -> Buf {
            self.clone()
        }
    }

    /// Logs a few events through `format` and returns what was written.
    fn capture(format: LogFormat) -> String {
        let buf = Buf::default();
        let sub = subscriber(format, EnvFilter::new("debug"), buf.clone(), false);
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("sync", source = "personio").entered();
            tracing::warn!(records = 3, "held: too many removals");
            tracing::error!("line one\nline two");
            drop(span);
            tracing::info!(endpoint = "crm", "delivered");
            tracing::debug!("detail");
            tracing::trace!("filtered out");
        });
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn journal_lines_carry_the_priority_and_no_timestamp() {
        let out = capture(LogFormat::Journal);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "<4>sync{source=\"personio\"}: held: too many removals records=3",
                "<3>sync{source=\"personio\"}: line one",
                "<3>line two",
                "<6>delivered endpoint=\"crm\"",
                "<7>detail",
            ],
            "{out}"
        );
        assert!(!out.contains('\x1b'), "no ANSI escapes: {out:?}");
    }

    #[test]
    fn json_is_one_object_per_line_with_flattened_fields() {
        let out = capture(LogFormat::Json);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 4, "{out}");
        let first = &lines[0];
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["message"], "held: too many removals");
        assert_eq!(first["records"], 3);
        assert_eq!(first["span"]["source"], "personio");
        assert!(first["timestamp"].is_string(), "{first}");
        assert_eq!(lines[1]["message"], "line one\nline two");
    }

    #[test]
    fn text_has_timestamp_level_message_and_fields() {
        let out = capture(LogFormat::Text);
        let first = out.lines().next().unwrap();
        // e.g. `2025-01-01T00:00:00.000000Z  WARN sync{source="personio"}: held: … records=3`
        assert!(first.starts_with("20"), "{first}");
        assert!(first.contains(" WARN "), "{first}");
        assert!(
            first.ends_with("held: too many removals records=3"),
            "{first}"
        );
        assert!(!out.contains('\x1b'), "{out:?}");
    }

    #[test]
    fn journal_stream_must_match_device_and_inode() {
        let check = |v: &str| journal_stream_matches(OsStr::new(v), 8, 12345);
        assert!(check("8:12345"));
        assert!(!check("8:12346"));
        assert!(!check("9:12345"));
        assert!(!check(""));
        assert!(!check("8"));
        assert!(!check("x:12345"));
    }

    #[test]
    fn priorities_follow_sd_daemon() {
        let got: Vec<u8> = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .into_iter()
        .map(syslog_priority)
        .collect();
        assert_eq!(got, [3, 4, 6, 7, 7]);
    }
}
