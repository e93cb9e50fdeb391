//! The deployment file (`roster.yaml`): store, time zone, sources, precedence, safety,
//! limits, webhooks, triggers, events and the admin endpoint.
//!
//! These are the types as written; `config::compile` checks every reference from here into
//! the provider specs and mappings, and into this file's own names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mapping::FieldMapping;
use super::secret::{CredentialValue, SecretRef};
use super::value::{
    ByteSize, CronExpr, DataSize, Duration, HttpUrl, Name, Offset, Ratio, TimeOfDay, TimeZoneName,
};

/// The deployment: what Roster syncs, where it stores it, and who hears about changes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Company time zone (IANA name such as `Europe/Berlin`). Date triggers and cron schedules are evaluated in it.
    pub time_zone: TimeZoneName,
    /// Where Roster keeps its state and publishes the directory.
    #[serde(default)]
    pub store: Store,
    /// The HR systems to sync from, by name. The order is the default precedence when one person comes from several sources.
    pub sources: IndexMap<String, Source>,
    /// Which source wins for each field when one person (same work email) comes from several sources.
    #[serde(default)]
    pub precedence: Precedence,
    /// Guards against applying a sync that would remove many people at once.
    #[serde(default)]
    pub safety: Safety,
    /// Size limits on what a source may send, so one oversized value cannot bloat the directory or every webhook body.
    #[serde(default)]
    pub limits: Limits,
    /// Outbound webhook endpoints, by name.
    #[serde(default)]
    pub webhooks: IndexMap<String, Webhook>,
    /// Date triggers (start date, end date, probation end, anniversaries, birthdays), by name.
    #[serde(default)]
    pub triggers: IndexMap<String, Trigger>,
    /// Event settings.
    #[serde(default)]
    pub events: EventSettings,
    /// The local admin endpoint (health, metrics, status, sync now).
    #[serde(default)]
    pub admin: Admin,
    /// The endpoint HRIS notifications are posted to (off unless `listen` is set): a verified notification triggers a sync of its source.
    #[serde(default)]
    pub inbound: InboundListener,
}

/// Where Roster keeps its files.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Directory for Roster's private state database. Default: `$STATE_DIRECTORY` (systemd `StateDirectory=`), else `/var/lib/roster`. Relative paths are relative to the config directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// The published directory file that people query read-only with SQL; replaced atomically after each sync. Default: `directory.duckdb` in `state_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// Memory DuckDB may use before it spills to disk (under `state_dir`). Default: automatic, 48 MiB plus 200 bytes per record of the source being synced (68 MiB at 100k people, 143 MiB at 500k; doubled, twice at most, for a sync that runs out of it), at most 1 GiB. Set it only when a sync fails with DuckDB's `Out of Memory Error`, or to cap memory below the automatic figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<ByteSize>,
}

/// One HR system to sync from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Provider spec: a built-in (`personio`, `kenjo`, `justworks`, `merge`, `bamboohr`, `hibob`, `rippling`, `deel`) or a file `providers/NAME.yaml` in the config directory.
    pub provider: Name,
    /// Mapping: a built-in or a file `mappings/NAME.yaml`. Default: the provider's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Name>,
    /// Credentials the provider declares, by name. Secret ones must be `{env: NAME}`, `{file: PATH}` or `{credential: NAME}`.
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialValue>,
    /// Settings the provider declares (non-secret), by name.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Replaces the provider spec's `base_url` for this source (a vendor's sandbox, a staging or mock host) without copying the spec. Absolute URLs in the spec on the same scheme, host and port as its `base_url` (an OAuth `token_url`, a login request) move with it; other hosts are left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<HttpUrl>,
    /// Per-source field overrides on top of the mapping (e.g. the tenant-specific custom attribute that holds the date of birth).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, FieldMapping>,
    /// When to sync. Default: every 4h with 10m of jitter.
    #[serde(default)]
    pub schedule: Schedule,
    /// Set to false to keep the source configured but never synced.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Accept the HRIS's change notifications at `POST /inbound/NAME` on `inbound.listen` (the provider spec must say how they are signed): each verified one triggers a sync (incremental where the stream reads incrementally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<SourceInbound>,
    /// Safety overrides for this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<Safety>,
}

fn yes() -> bool {
    true
}

/// A sync schedule: `every` (with jitter) or `cron`, not both.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Sync at this interval, e.g. `4h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
    /// Random delay added to each `every` run so sources do not all start at once (default 10m, at most half of `every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    /// Sync on a five-field cron schedule in the company time zone, e.g. `0 6-18/2 * * MON-FRI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronExpr>,
}

/// Field precedence between sources ("source of truth").
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Precedence {
    /// Source order for every field without its own rule; the first source with a value wins. Default: the order of `sources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default: Vec<Name>,
    /// Source order per field, e.g. `job_title: [kenjo, personio]`. Sources not listed follow in default order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Vec<Name>>,
}

/// Safety thresholds. A held sync applies nothing until released with `roster sync --allow-removals`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    /// Hold a sync that would remove more than this share of a source's people (default 20%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removals: Option<Ratio>,
    /// Never hold for fewer removals than this, so small teams are not blocked by one leaver (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_removals_to_hold: Option<u32>,
    /// Hold a sync whose listing is empty while the directory has people from the source (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_on_empty: Option<bool>,
}

/// Size limits on provider data. A value over its limit is never stored or sent: the person keeps the last value that fit, and the value is reported as a data problem.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest value of one field (canonical or custom), as text, e.g. `8KiB` (the default). A longer value is a data problem of that field and the person keeps its last value that fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_field_bytes: Option<DataSize>,
    /// Largest provider record, as JSON, e.g. `1MiB` (the default). A larger record is not mapped: it is a data problem, and the directory keeps what it had from that record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_record_bytes: Option<DataSize>,
}

/// An outbound webhook endpoint (Standard Webhooks signing).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The receiver's URL (https recommended). Loopback, private, link-local and other special-purpose addresses are refused unless `allow_private_network` is true; documentation, multicast, broadcast and unspecified addresses always are, and cloud metadata addresses unless written literally with `allow_private_network`.
    pub url: HttpUrl,
    /// Signing secret (`whsec_...`), as a reference.
    pub secret: SecretRef,
    /// More secrets that also sign every message, while a receiver moves to a new secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotating_secrets: Vec<SecretRef>,
    /// Event types to send; `*` wildcards a segment, e.g. `person.*`, `lifecycle.start_date`, `*`.
    pub events: Vec<String>,
    /// Only lifecycle events from these triggers (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Name>,
    /// Only events about people matching these conditions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: Conditions,
    /// `full` (the person's fields in the body, default) or `thin` (ids only; the receiver reads the rest).
    #[serde(default)]
    pub payload: PayloadKind,
    /// How a date of birth is sent: `month_day` (default), `full` or `omit`.
    #[serde(default)]
    pub birth_date: BirthDateDisclosure,
    /// Time allowed for the receiver to answer (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The delay before each attempt: the first entry is the first attempt's (`0s`: at once), each next one follows a failure (±10% jitter; a longer `Retry-After` wins). After the last attempt fails the delivery is dead-lettered. Default: `0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h` (about a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<Vec<Duration>>,
    /// Allow a URL on a loopback, private, link-local or other special-purpose address (for a receiver on the same host or network). Documentation, multicast, broadcast and unspecified (0.0.0.0) addresses stay refused, and a cloud metadata address passes only when the URL names it literally.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private_network: bool,
}

/// Conditions on person fields: each field must equal one of the listed values (case-insensitive). Custom fields are written `custom.NAME`.
pub type Conditions = BTreeMap<String, OneOrMany>;

/// One value or a list of values.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Any of several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values.
    pub fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Payload kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// The person's fields are in the body.
    #[default]
    Full,
    /// Only ids and the event type; the receiver reads the directory.
    Thin,
}

/// How a date of birth is disclosed to a receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BirthDateDisclosure {
    /// Month and day only (`--11-09`).
    #[default]
    MonthDay,
    /// The full date.
    Full,
    /// Not sent.
    Omit,
}

/// A date trigger: fires a lifecycle event for each person on (or offset from) a date.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The event to fire: `lifecycle.start_date`, `lifecycle.end_date`, `lifecycle.probation_end`, `lifecycle.work_anniversary`, `lifecycle.birthday`, or `lifecycle.date` for a custom date field.
    pub event: LifecycleEvent,
    /// The date field (required for `lifecycle.date`; the others have their own). Custom fields are written `custom.NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Fire this long before (`-7d`) or after (`1d`) the date (default `0d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<Offset>,
    /// Local time of day to fire, in the company time zone (default `09:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<TimeOfDay>,
    /// Only for people matching these conditions, e.g. `worker_type: contractor`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: Conditions,
}

/// Lifecycle event types a trigger can fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum LifecycleEvent {
    /// On the start date (once).
    #[serde(rename = "lifecycle.start_date")]
    StartDate,
    /// On the end date (once).
    #[serde(rename = "lifecycle.end_date")]
    EndDate,
    /// On the probation end date (once).
    #[serde(rename = "lifecycle.probation_end")]
    ProbationEnd,
    /// Every year on the start date, from the first anniversary; not for people who have left.
    #[serde(rename = "lifecycle.work_anniversary")]
    WorkAnniversary,
    /// Every year on the date of birth; not for people who have left.
    #[serde(rename = "lifecycle.birthday")]
    Birthday,
    /// On a custom date field (once); set `field`.
    #[serde(rename = "lifecycle.date")]
    Date,
}

impl LifecycleEvent {
    /// The event type name.
    pub fn name(self) -> &'static str {
        match self {
            LifecycleEvent::StartDate => "lifecycle.start_date",
            LifecycleEvent::EndDate => "lifecycle.end_date",
            LifecycleEvent::ProbationEnd => "lifecycle.probation_end",
            LifecycleEvent::WorkAnniversary => "lifecycle.work_anniversary",
            LifecycleEvent::Birthday => "lifecycle.birthday",
            LifecycleEvent::Date => "lifecycle.date",
        }
    }

    /// The canonical date field this event reads, if fixed.
    pub fn default_field(self) -> Option<&'static str> {
        match self {
            LifecycleEvent::StartDate | LifecycleEvent::WorkAnniversary => Some("start_date"),
            LifecycleEvent::EndDate => Some("end_date"),
            LifecycleEvent::ProbationEnd => Some("probation_end_date"),
            LifecycleEvent::Birthday => Some("birth_date"),
            LifecycleEvent::Date => None,
        }
    }
}

/// Every event type Roster emits, for subscriptions.
pub const EVENT_TYPES: &[&str] = &[
    "person.created",
    "person.updated",
    "person.terminated",
    "person.reactivated",
    "person.manager_changed",
    "lifecycle.start_date",
    "lifecycle.end_date",
    "lifecycle.probation_end",
    "lifecycle.work_anniversary",
    "lifecycle.birthday",
    "lifecycle.date",
    "sync.completed",
    "sync.failed",
    "sync.held",
];

/// Event settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Emit `person.created` for everyone on the first sync into an empty directory (default false: the first sync is a silent baseline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_on_first_sync: bool,
    /// After downtime, date triggers missed within this window still fire, marked late; older ones are skipped and logged (default 3d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_window: Option<Duration>,
    /// When a 29 February birthday or anniversary fires in a non-leap year: `feb_28` (default) or `mar_1`.
    #[serde(default)]
    pub leap_day: LeapDay,
}

/// The 29 February rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeapDay {
    /// 28 February in non-leap years.
    #[default]
    #[serde(rename = "feb_28")]
    Feb28,
    /// 1 March in non-leap years.
    #[serde(rename = "mar_1")]
    Mar1,
}

/// The admin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address for `/healthz`, `/readyz`, `/metrics`, `/status` and sync-now (default `127.0.0.1:9187`). Keep it on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// The inbound notification endpoint: `POST /inbound/SOURCE`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundListener {
    /// Address to listen on, e.g. `0.0.0.0:8788` behind a TLS-terminating reverse proxy. Unset: no inbound endpoint. Read at start; a change needs a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Verified notifications accepted per source per minute (default 12); more get `429` with `Retry-After`. Notifications that arrive while a sync of the source is queued join it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// A source's inbound notifications.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceInbound {
    /// The signing secret the HRIS shows when the webhook is created, as a reference (`{file: ...}`, `{env: ...}`, `{credential: ...}`).
    pub secret: SecretRef,
}

/// The admin endpoint's default address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9187";

impl Admin {
    /// `listen`, or the default.
    pub fn address(&self) -> String {
        self.listen
            .clone()
            .unwrap_or_else(|| DEFAULT_ADMIN.to_string())
    }
}
