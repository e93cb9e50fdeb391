//! `roster demo`: a fake HRIS on loopback with synthetic people, so the whole pipeline can be
//! seen without credentials. Also the fixture of the sync tests and benchmarks.
//!
//! - [`Dataset::generate`] builds a deterministic company: Kestrel Labs on Personio (a few
//!   hundred people with managers, pre-hires, contractors, leavers and a few data problems)
//!   and its US subsidiary on Merge, with some people in both. See [`data`] for the exact
//!   composition and the deliberate data problems.
//! - [`FakeHris`] serves both APIs on 127.0.0.1 as the vendors document them (auth, token
//!   rotation, offset and cursor paging, `expand`), and lets tests change the data or make a
//!   page fail. See [`server`] for the paths and parameters.
//! - [`write_config`] writes a config directory that reads the fake through the built-in
//!   provider specs and mappings, with only `base_url` overridden.

pub mod data;
mod names;
pub mod receiver;
pub mod server;
#[cfg(test)]
mod tests;
mod wire;

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;

pub use self::data::{
    Dataset, MERGE_DOMAIN, PERSONIO_BIRTHDAY_ATTRIBUTE, PERSONIO_DOMAIN, personio_id,
};
pub use self::server::{
    CompactDataset, FakeHris, MERGE_ACCOUNT_TOKEN, MERGE_API_KEY, MERGE_PATH, PERSONIO_CLIENT_ID,
    PERSONIO_CLIENT_SECRET, PERSONIO_PATH, merge_base_url, personio_base_url,
};

/// The demo receiver's signing secret (Standard Webhooks `whsec_`, 24 random bytes).
pub const WEBHOOK_SECRET: &str = "whsec_a2VzdHJlbC1kZW1vLXdlYmhvb2stc2VjcmV0";

/// Secret files [`write_config`] writes, relative to the config directory.
pub const SECRET_FILES: &[(&str, &str)] = &[
    ("secrets/personio_client_secret", PERSONIO_CLIENT_SECRET),
    ("secrets/merge_api_key", MERGE_API_KEY),
    ("secrets/merge_account_token", MERGE_ACCOUNT_TOKEN),
    ("secrets/webhook_secret", WEBHOOK_SECRET),
];

/// Appends a webhook endpoint for the demo receiver at `receiver` to the config's
/// `roster.yaml`, with date triggers for the common workflows.
pub fn write_webhook_config(dir: &Path, receiver: SocketAddr) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(crate::config::DEPLOYMENT_FILE))?;
    write!(
        f,
        "
# The demo's webhook receiver on loopback (`allow_private_network`: webhooks go to public
# addresses only unless allowed). Every event type; signed with secrets/webhook_secret.
webhooks:
  demo-receiver:
    url: http://{receiver}{path}
    secret: {{file: secrets/webhook_secret}}
    allow_private_network: true
    events: ['*']

# Date triggers, evaluated in the company time zone; each fires once per person and date.
triggers:
  day-one:
    event: lifecycle.start_date
    at: '08:00'
  pre-boarding:
    event: lifecycle.start_date
    offset: -7d
    when: {{worker_type: employee}}
  offboarding:
    event: lifecycle.end_date
    at: '17:00'
  probation-review:
    event: lifecycle.probation_end
    offset: -14d
  anniversaries:
    event: lifecycle.work_anniversary
  birthdays:
    event: lifecycle.birthday
",
        path = receiver::PATH
    )
}

/// What changes in the fake HRIS "a day later" in the demo: a promotion, a move to another
/// manager, a leaver and a new hire starting next week. Returns one line per change.
pub fn a_day_later(data: &mut Dataset, today: jiff::civil::Date) -> Vec<String> {
    let mut said = Vec::new();
    let value = |r: &serde_json::Value, a: &str| r["attributes"][a]["value"].clone();
    let active: Vec<usize> = (0..data.personio.len())
        .filter(|&i| value(&data.personio[i], "status") == "active")
        .collect();
    let email = |r: &serde_json::Value| value(r, "email").as_str().unwrap_or("?").to_string();
    let supervisor_id = |r: &serde_json::Value| {
        r["attributes"]["supervisor"]["value"]["attributes"]["id"]["value"].as_u64()
    };
    let is_manager = |d: &Dataset, id: Option<u64>| {
        d.personio
            .iter()
            .any(|r| supervisor_id(r) == id && id.is_some())
    };
    // A move to another manager.
    let with_manager: Vec<usize> = active
        .iter()
        .copied()
        .filter(|&i| supervisor_id(&data.personio[i]).is_some())
        .collect();
    // A promotion.
    if let Some(&i) = with_manager.iter().find(|&&i| {
        value(&data.personio[i], "position")
            .as_str()
            .is_some_and(|p| !p.starts_with("Senior"))
    }) {
        let r = &mut data.personio[i];
        let old = value(r, "position")
            .as_str()
            .unwrap_or_default()
            .to_string();
        r["attributes"]["position"]["value"] = format!("Senior {old}").into();
        said.push(format!("{}: promoted to Senior {old}", email(r)));
    }
    if let (Some(&a), Some(&b)) = (
        with_manager.get(3),
        with_manager.iter().rev().find(|&&b| {
            supervisor_id(&data.personio[b]) != supervisor_id(&data.personio[with_manager[3]])
        }),
    ) {
        let boss = data.personio[b]["attributes"]["supervisor"].clone();
        let r = &mut data.personio[a];
        r["attributes"]["supervisor"] = boss;
        said.push(format!("{}: moves to another manager", email(r)));
    }
    // A leaver: someone nobody reports to.
    if let Some(&i) = active.iter().rev().find(|&&i| {
        let id = personio_id(&data.personio[i]);
        !is_manager(data, id)
    }) {
        said.push(format!("{}: leaves the company", email(&data.personio[i])));
        data.personio.remove(i);
    }
    // A new hire, starting next week, in the team of the first person with a manager.
    if let Some(&i) = with_manager.first() {
        let mut r = data.personio[i].clone();
        let id = data
            .personio
            .iter()
            .filter_map(personio_id)
            .max()
            .unwrap_or(0)
            + 1;
        let start = today
            .checked_add(jiff::Span::new().days(7))
            .unwrap_or(today)
            .to_string();
        let hire = value(&r, "hire_date")
            .as_str()
            .unwrap_or_default()
            .to_string();
        let hire = format!("{start}{}", hire.get(10..).unwrap_or("T00:00:00+01:00"));
        let mail = format!("noor.haddad@{PERSONIO_DOMAIN}");
        r["attributes"]["id"]["value"] = id.into();
        r["attributes"]["first_name"]["value"] = "Noor".into();
        r["attributes"]["last_name"]["value"] = "Haddad".into();
        r["attributes"]["email"]["value"] = mail.clone().into();
        r["attributes"]["hire_date"]["value"] = hire.into();
        r["attributes"]["status"]["value"] = "onboarding".into();
        said.push(format!("{mail}: hired, starts {start}"));
        data.personio.push(r);
    }
    said
}

/// Writes a complete config directory for the fake at `addr` into `dir`: `roster.yaml`,
/// `providers/personio.yaml` and `providers/merge.yaml` (the built-in specs with only
/// `base_url` changed) and the secret files under `secrets/`. Existing files of the same
/// names are replaced.
pub fn write_config(dir: &Path, addr: SocketAddr) -> io::Result<()> {
    std::fs::create_dir_all(dir.join("providers"))?;
    std::fs::create_dir_all(dir.join("secrets"))?;
    std::fs::write(dir.join(crate::config::DEPLOYMENT_FILE), roster_yaml(addr))?;
    for (name, base_url) in [
        ("personio", personio_base_url(addr)),
        ("merge", merge_base_url(addr)),
    ] {
        let text = provider_override(name, &base_url)?;
        std::fs::write(dir.join("providers").join(format!("{name}.yaml")), text)?;
    }
    for (path, value) in SECRET_FILES {
        write_secret(&dir.join(path), value)?;
    }
    Ok(())
}

fn roster_yaml(addr: SocketAddr) -> String {
    format!(
        "\
# Written by `roster demo`: a deployment that reads the demo's fake HRIS on {addr}
# (Personio and Merge, synthetic people), through the built-in provider specs and mappings.
# providers/ overrides only their `base_url`; the secrets are demo values in secrets/.
time_zone: Europe/Berlin

store:
  # Relative to this directory: the state database and the published directory.
  state_dir: state

sources:
  # Kestrel Labs in Berlin. Listed first, so Personio wins whenever both sources know a
  # field of the same person (same work email).
  personio:
    provider: personio
    credentials:
      client_id: {PERSONIO_CLIENT_ID}
      client_secret: {{file: secrets/personio_client_secret}}
    # The date of birth is a tenant-specific custom attribute in Personio; in the demo
    # tenant it is {PERSONIO_BIRTHDAY_ATTRIBUTE}.
    settings:
      birth_date_attribute: {PERSONIO_BIRTHDAY_ATTRIBUTE}
    schedule:
      every: 4h

  # The US subsidiary's HRIS, read through Merge. About ten people are in both systems
  # (seconded from Berlin), some with a different job title here.
  merge:
    provider: merge
    credentials:
      api_key: {{file: secrets/merge_api_key}}
      account_token: {{file: secrets/merge_account_token}}
    schedule:
      every: 4h

# Personio wins every field by default (the order of `sources`). The US HRIS knows the
# current title of the people seconded there, so for job_title it comes first.
precedence:
  fields:
    job_title: [merge, personio]
"
    )
}

/// The built-in spec `name` with its `base_url` line replaced, under a header comment.
fn provider_override(name: &str, base_url: &str) -> io::Result<String> {
    let (_, builtin) = crate::config::builtin_providers()
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no built-in provider `{name}`"),
            )
        })?;
    let title = match name {
        "personio" => "Personio",
        "merge" => "Merge",
        other => other,
    };
    let mut out = format!(
        "# Written by `roster demo`: the built-in `{name}` provider spec with only `base_url`\n\
         # changed, to read the demo's fake {title} API. Delete this file to use the built-in spec.\n\
         #\n"
    );
    let mut replaced = 0;
    for line in builtin.lines() {
        if line.starts_with("base_url:") {
            out.push_str(&format!("base_url: {base_url}\n"));
            replaced += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if replaced != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the built-in `{name}` spec has {replaced} top-level `base_url:` lines, not one"
            ),
        ));
    }
    Ok(out)
}

/// Writes a secret file, readable by its owner only on Unix.
fn write_secret(path: &Path, value: &str) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(value.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}
