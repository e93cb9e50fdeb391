//! Shared by the benchmarks: records of two shapes, a local fake HRIS that serves pre-rendered
//! pages with no per-request work, a bare reqwest + serde_json reader, and wall time, CPU time
//! and peak-RSS sampling of a child process.
//!
//! The fake must be much faster than what it measures, or every ratio against it flatters the
//! code under test. It renders every page (status line, headers and JSON body) once, up front,
//! and answers a request by parsing its request line and writing those bytes: a bare client
//! reads well over 150k records/s from it on a 2-core machine. The benches print that rate.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::{Value, json};

/// One realistic Personio-shaped employee record (about 2 KB of JSON).
pub fn record(i: usize) -> Value {
    let attr = |label: &str, v: Value| json!({"label": label, "value": v, "type": "standard", "universal_id": label.to_lowercase()});
    json!({
        "type": "Employee",
        "attributes": {
            "id": attr("ID", json!(i)),
            "first_name": attr("First name", json!(format!("First{i}"))),
            "last_name": attr("Last name", json!(format!("Last{i}"))),
            "preferred_name": attr("Preferred name", json!("")),
            "email": attr("Email", json!(format!("person{i}@example.com"))),
            "gender": attr("Gender", json!("diverse")),
            "status": attr("Status", json!(if i % 10 == 0 { "onboarding" } else { "active" })),
            "position": attr("Position", json!("Software Engineer")),
            "employment_type": attr("Employment type", json!("internal")),
            "weekly_working_hours": attr("Weekly hours", json!("40")),
            "hire_date": attr("Hire date", json!("2021-03-01T00:00:00+01:00")),
            "contract_end_date": attr("Contract ends", Value::Null),
            "termination_date": attr("Termination date", Value::Null),
            "probation_period_end": attr("Probation end", json!("2021-09-01T00:00:00+02:00")),
            "department": attr("Department", json!({"type": "Department", "attributes": {"id": i % 40, "name": format!("Department {}", i % 40)}})),
            "office": attr("Office", json!({"type": "Office", "attributes": {"id": i % 7, "name": "Berlin"}})),
            "subcompany": attr("Subcompany", json!({"type": "Subcompany", "attributes": {"id": 1, "name": "Acme GmbH"}})),
            "supervisor": attr("Supervisor", json!({"type": "Employee", "attributes": {"id": {"label": "ID", "value": i / 8}, "email": {"label": "Email", "value": format!("person{}@example.com", i / 8)}}})),
            "cost_centers": attr("Cost center", json!([{"type": "CostCenter", "attributes": {"id": 3, "name": "R&D", "percentage": 100}}])),
            "dynamic_1146702": attr("Date of birth", json!("1990-11-09T00:00:00+01:00")),
        }
    })
}

const TITLES: [&str; 6] = [
    "Software Engineer",
    "Account Executive",
    "People Partner",
    "Product Designer",
    "Support Specialist",
    "Data Analyst",
];
const CITIES: [(&str, &str); 5] = [
    ("Berlin", "DE"),
    ("London", "GB"),
    ("Lisbon", "PT"),
    ("New York", "US"),
    ("Toronto", "CA"),
];

/// One record of a generic HR API, the shape issue 16 measured: 26 fields, 4 of them nested
/// objects, about 925 bytes of JSON. Person `i` reports to person `i / 8` (a tree 6-7 levels
/// deep at 100k); one in ten is a pre-hire, one in twenty a contractor.
pub fn generic_record(i: usize) -> Value {
    let (city, country) = CITIES[i % CITIES.len()];
    let dept = i % 40;
    let gender = ["female", "male", "diverse"][i % 3];
    let entity = ["Acme GmbH", "Acme Ltd", "Acme Inc."][i % 3];
    json!({
        "id": i,
        "employee_number": format!("E{i:07}"),
        "first_name": format!("First{i}"),
        "last_name": format!("Last{i}"),
        "preferred_name": if i % 9 == 0 { Value::String(format!("Pref{i}")) } else { Value::Null },
        "work_email": format!("person{i}@example.com"),
        "personal_email": format!("p{i}@mail.example.org"),
        "phone": format!("+49 30 {:07}", i % 10_000_000),
        "status": if i % 10 == 0 { "hired" } else { "active" },
        "employment_type": if i % 20 == 0 { "freelance" } else { "full_time" },
        "job_title": TITLES[i % TITLES.len()],
        "hire_date": format!("20{:02}-{:02}-{:02}", 10 + i % 15, 1 + i % 12, 1 + i % 28),
        "termination_date": Value::Null,
        "probation_end_date": format!("20{:02}-{:02}-{:02}", 11 + i % 15, 1 + i % 12, 1 + i % 28),
        "birth_date": format!("19{:02}-{:02}-{:02}", 60 + i % 40, 1 + i % 12, 1 + i % 28),
        "gender": gender,
        "weekly_hours": 40 - (i % 3) * 4,
        "time_zone": "Europe/Berlin",
        "cost_center": format!("CC-{:03}", dept * 7 % 100),
        "nationality": country,
        "department": {"id": dept, "name": format!("Department {dept}"), "code": format!("D{dept:02}"), "parent_id": dept / 8},
        "location": {"id": i % CITIES.len(), "name": city, "country": country, "address": format!("{} Main Street", 1 + i % 300)},
        "manager": if i == 0 { Value::Null } else { json!({"id": i / 8, "work_email": format!("person{}@example.com", i / 8), "name": format!("First{} Last{}", i / 8, i / 8)}) },
        "legal_entity": {"id": 1 + i % 3, "name": entity, "country": country},
        "created_at": "2021-02-01T09:00:00Z",
        "updated_at": format!("2024-05-{:02}T10:11:12Z", 1 + i % 28),
    })
}

/// A mapping for [`generic_record`] written the way a user maps a JSON API in YAML alone.
pub const GENERIC_MAPPING: &str = r#"provider: benchhr
stream: employees
fields:
  employee_id: $.id
  first_name:
    path: $.first_name
    transform: [trim]
  last_name:
    path: $.last_name
    transform: [trim]
  preferred_name:
    path: $.preferred_name
    transform: [trim, empty_as_null]
  display_name:
    template: "{first_name} {last_name}"
  work_email: $.work_email
  job_title: $.job_title
  department: $.department.name
  manager_id: $.manager.id
  manager_email: $.manager.work_email
  office: $.location.name
  legal_entity: $.legal_entity.name
  employment_type: $.employment_type
  worker_type:
    path: $.employment_type
    values:
      full_time: employee
      freelance: contractor
  status:
    path: $.status
    values:
      hired: pre_hire
      active: active
      left: terminated
  start_date: $.hire_date
  end_date: $.termination_date
  probation_end_date: $.probation_end_date
  birth_date: $.birth_date
custom:
  cost_center: $.cost_center
  phone: $.phone
  country: $.location.country
"#;

/// A local fake HRIS: offset paging over pre-rendered pages, swappable between runs.
pub struct Fake {
    addr: std::net::SocketAddr,
    page: usize,
    /// Full HTTP responses, one per page; the last one is the empty page past the end.
    pages: Arc<RwLock<Arc<Vec<Vec<u8>>>>>,
}

impl Fake {
    /// Starts serving on 127.0.0.1:0 with `page` records per page and no records yet.
    pub fn start(page: usize) -> Fake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pages: Arc<RwLock<Arc<Vec<Vec<u8>>>>> = Arc::new(RwLock::new(Arc::new(Vec::new())));
        let shared = pages.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let pages = shared.clone();
                std::thread::spawn(move || serve_connection(conn, page, &pages));
            }
        });
        Fake { addr, page, pages }
    }

    /// The base URL (`http://ADDR/v1`).
    pub fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Renders `records` as this fake's pages (with the reported total) and serves them from
    /// now on. Returns the average record size in bytes.
    pub fn set(&self, records: impl ExactSizeIterator<Item = Value>) -> usize {
        let total = records.len();
        let mut rendered = Vec::with_capacity(total / self.page + 2);
        let mut bytes = 0usize;
        let mut batch: Vec<Value> = Vec::with_capacity(self.page);
        let flush = |batch: &mut Vec<Value>, p: usize, rendered: &mut Vec<Vec<u8>>| {
            let body = json!({"success": true, "metadata": {"total_elements": total, "current_page": p}, "data": batch}).to_string();
            rendered.push(response(&body));
            batch.clear();
        };
        for r in records {
            bytes += r.to_string().len();
            batch.push(r);
            if batch.len() == self.page {
                flush(&mut batch, rendered.len(), &mut rendered);
            }
        }
        if !batch.is_empty() || total == 0 {
            flush(&mut batch, rendered.len(), &mut rendered);
        }
        // Past the end: an empty page.
        flush(&mut batch, rendered.len(), &mut rendered);
        *self.pages.write().unwrap() = Arc::new(rendered);
        bytes / total.max(1)
    }
}

fn response(body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// One keep-alive connection: read a request head, write the pre-rendered page it names.
fn serve_connection(conn: std::net::TcpStream, page: usize, pages: &RwLock<Arc<Vec<Vec<u8>>>>) {
    conn.set_nodelay(true).ok();
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        // The rest of the head (no request here has a body).
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let offset: usize = target
            .split_once('?')
            .map_or("", |(_, q)| q)
            .split('&')
            .find_map(|kv| kv.strip_prefix("offset="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let pages = pages.read().unwrap().clone();
        let i = (offset / page).min(pages.len().saturating_sub(1));
        if out.write_all(&pages[i]).is_err() {
            return;
        }
    }
}

/// Records per page of the Personio-shaped fake.
pub const PAGE: usize = 100;

/// Serves `total` Personio-shaped records (each passed through `edit`), 100 per page, on
/// 127.0.0.1:0; returns the base URL (`http://ADDR/v1`) and the fake.
pub fn serve_with(total: usize, edit: impl Fn(usize, &mut Value)) -> (String, Fake) {
    let fake = Fake::start(PAGE);
    fake.set((0..total).map(|i| {
        let mut r = record(i);
        edit(i, &mut r);
        r
    }));
    (fake.base(), fake)
}

/// Serves `total` unedited Personio-shaped records.
pub fn serve(total: usize) -> (String, Fake) {
    serve_with(total, |_, _| {})
}

/// What a child process cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// Wall seconds.
    pub wall: f64,
    /// User + system CPU seconds (of the child and any children it waited for).
    pub cpu: f64,
    /// Peak resident set, MB.
    pub rss: f64,
}

/// User + system CPU time of this process's waited-for children, in seconds (`cutime` and
/// `cstime` of /proc/self/stat, clock ticks of 1/100 s).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // rest[0] is field 3 (state); cutime and cstime are fields 16 and 17.
    (f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0)) / 100.0
}

/// Runs a command to completion, sampling its peak RSS (VmHWM) from /proc every 5 ms while
/// `consume` reads its stdout on another thread. Returns its cost and what `consume` returned.
pub fn run_measured<T: Send + 'static>(
    cmd: &mut std::process::Command,
    consume: impl FnOnce(std::process::ChildStdout) -> T + Send + 'static,
) -> (Cost, T) {
    let cpu0 = children_cpu();
    let start = Instant::now();
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || consume(stdout));
    let mut peak_kb = 0.0f64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(st) = std::fs::read_to_string(&status_path)
            && let Some(kb) = st
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let wall = start.elapsed().as_secs_f64();
    let cost = Cost {
        wall,
        cpu: children_cpu() - cpu0,
        rss: peak_kb / 1024.0,
    };
    (cost, reader.join().unwrap())
}

/// [`run_measured`] without the CPU time: (wall seconds, peak RSS in MB, what `consume`
/// returned).
pub fn run_sampled<T: Send + 'static>(
    cmd: &mut std::process::Command,
    consume: impl FnOnce(std::process::ChildStdout) -> T + Send + 'static,
) -> (f64, f64, T) {
    let (cost, out) = run_measured(cmd, consume);
    (cost.wall, cost.rss, out)
}

/// Peak RSS of this process in MB.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The bare loop: reqwest + serde_json over the same pages (`page` records each), every
/// record parsed into a `serde_json::Value`, counted, nothing else.
pub fn bare_loop_paged(base: &str, page: usize) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut offset = 0u64;
        let mut n = 0u64;
        loop {
            let url = format!("{base}/company/employees?offset={offset}&limit={page}");
            let bytes = http.get(&url).send().await.unwrap().bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            let got = body["data"].as_array().map_or(0, Vec::len) as u64;
            n += got;
            offset += got;
            if got < page as u64 {
                return n;
            }
        }
    })
}

/// [`bare_loop_paged`] over the Personio-shaped fake's pages.
pub fn bare_loop(base: &str) -> u64 {
    bare_loop_paged(base, PAGE)
}

/// A provider spec for the fake: no auth, offset paging of `page`, the reported total.
pub fn provider_yaml_paged(base: &str, page: usize) -> String {
    format!(
        "base_url: {base}\nauth: {{kind: none}}\nstreams:\n  employees:\n    request: {{path: /company/employees}}\n    pagination: {{kind: offset, page_size: {page}}}\n    records: $.data[*]\n    total: $.metadata.total_elements\n"
    )
}

/// [`provider_yaml_paged`] for the Personio-shaped fake.
pub fn provider_yaml(base: &str) -> String {
    provider_yaml_paged(base, PAGE)
}
