//! Benchmark: the HTTP engine against a bare loop, on the same pages from a local fake.
//!
//! The fake (in this process) serves 10k and 100k realistic Personio-shaped employee records,
//! 100 per page, with offset paging and a reported total. Each reader runs in a child
//! process (this binary re-executed) so its peak RSS is its own:
//! - `engine`: `SourceClient::fetch_stream` with the built-in paging, retries, record
//!   selection by JSONPath and the completeness check, records counted and dropped;
//! - `bare`: reqwest + serde_json, the same requests, `data` array counted, nothing else;
//! - `cli`: the real `roster fetch` binary printing every record as a JSON line to a pipe
//!   (config loading and process start included), peak RSS sampled from /proc.
//!
//! Run: `cargo bench --bench fetch`. Prints records/s, wall time and peak RSS; asserts nothing.
//! Targets (issue 3): engine ≥ 0.8× the bare loop's throughput, peak RSS < 64 MB at 100k.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

fn record(i: usize) -> Value {
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

const PAGE: usize = 100;

fn serve(total: usize) -> (String, std::thread::JoinHandle<()>) {
    let pages: Vec<String> = (0..total.div_ceil(PAGE))
        .map(|p| {
            let data: Vec<Value> = (p * PAGE..((p + 1) * PAGE).min(total)).map(record).collect();
            json!({"success": true, "metadata": {"total_elements": total, "current_page": p}, "data": data}).to_string()
        })
        .collect();
    let pages = std::sync::Arc::new(pages);
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
                let pages = pages.clone();
                async move {
                    let offset: usize =
                        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                            .find(|(k, _)| k == "offset")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                    let body = pages.get(offset / PAGE).cloned().unwrap_or_else(|| {
                        json!({"data": [], "metadata": {"total_elements": 0}}).to_string()
                    });
                    ([("content-type", "application/json")], body)
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/v1"), handle)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Count(u64);

impl roster::provider::fetch::Observer for Count {
    fn record(&mut self, _record: Value) -> bool {
        self.0 += 1;
        true
    }
}

fn child_engine(base: &str) -> u64 {
    let yaml = format!(
        "base_url: {base}\nauth: {{kind: none}}\nstreams:\n  employees:\n    request: {{path: /company/employees}}\n    pagination: {{kind: offset, page_size: {PAGE}}}\n    records: $.data[*]\n    total: $.metadata.total_elements\n"
    );
    let spec: roster::config::provider::ProviderSpec =
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            &yaml,
        ))
        .unwrap();
    let ctx = roster::provider::request::Context::new(&spec, &BTreeMap::new(), &BTreeMap::new());
    let client =
        roster::provider::fetch::SourceClient::new("bench", &spec, ctx, std::path::Path::new("."))
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut count = Count(0);
    let summary = rt
        .block_on(client.fetch_stream("employees", &mut count))
        .unwrap();
    assert_eq!(summary.records, count.0);
    count.0
}

fn child_bare(base: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut offset = 0u64;
        let mut n = 0u64;
        loop {
            let url = format!("{base}/company/employees?offset={offset}&limit={PAGE}");
            let bytes = http.get(&url).send().await.unwrap().bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            let got = body["data"].as_array().map_or(0, Vec::len) as u64;
            n += got;
            offset += got;
            if got < PAGE as u64 {
                return n;
            }
        }
    })
}

/// Runs the real `roster fetch` on the fake, output to a pipe that is read and discarded;
/// peak RSS is sampled from /proc while it runs (VmHWM only grows, so the last sample holds).
fn run_cli(base: &str, total: usize) -> (f64, f64) {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("providers")).unwrap();
    std::fs::create_dir_all(dir.path().join("mappings")).unwrap();
    std::fs::write(
        dir.path().join("roster.yaml"),
        "time_zone: UTC\nsources:\n  bench:\n    provider: benchhr\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("providers/benchhr.yaml"),
        format!("base_url: {base}\nauth: {{kind: none}}\nstreams:\n  employees:\n    request: {{path: /company/employees}}\n    pagination: {{kind: offset, page_size: {PAGE}}}\n    records: $.data[*]\n    total: $.metadata.total_elements\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mappings/benchhr.yaml"),
        "provider: benchhr\nstream: employees\nfields:\n  work_email: $.attributes.email.value\n",
    )
    .unwrap();
    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["fetch", "bench", "--config", dir.path().to_str().unwrap()])
        .env("STATE_DIRECTORY", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                return lines;
            }
            lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        }
    });
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
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        reader.join().unwrap(),
        total,
        "roster fetch printed every record"
    );
    (secs, peak_kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "child" {
        let start = Instant::now();
        let n = match args[2].as_str() {
            "engine" => child_engine(&args[3]),
            _ => child_bare(&args[3]),
        };
        println!("{n} {} {}", start.elapsed().as_secs_f64(), peak_rss_mb());
        return;
    }
    let me = std::env::current_exe().unwrap();
    println!(
        "{:>7}  {:<6}  {:>12}  {:>8}  {:>9}",
        "records", "reader", "records/s", "wall", "peak RSS"
    );
    for total in [10_000usize, 100_000] {
        let (base, _server) = serve(total);
        let mut rates = Vec::new();
        for reader in ["bare", "engine", "cli"] {
            // Best of three, to keep scheduler noise out of the ratio.
            let mut best: Option<(f64, f64)> = None;
            for _ in 0..3 {
                let (secs, rss) = if reader == "cli" {
                    run_cli(&base, total)
                } else {
                    let out = std::process::Command::new(&me)
                        .args(["child", reader, &base])
                        .output()
                        .unwrap();
                    let line = String::from_utf8(out.stdout).unwrap();
                    let v: Vec<f64> = line
                        .split_whitespace()
                        .map(|x| x.parse().unwrap())
                        .collect();
                    assert_eq!(v[0] as usize, total, "{reader} read {} of {total}", v[0]);
                    (v[1], v[2])
                };
                if best.is_none_or(|(s, _)| secs < s) {
                    best = Some((secs, rss));
                }
            }
            let (secs, rss) = best.unwrap();
            let rate = total as f64 / secs;
            rates.push(rate);
            println!(
                "{total:>7}  {reader:<6}  {rate:>12.0}  {:>7.2}s  {rss:>6.1} MB",
                secs
            );
        }
        println!(
            "{total:>7}  throughput vs bare: engine {:.2}x, roster fetch {:.2}x",
            rates[1] / rates[0],
            rates[2] / rates[0]
        );
    }
}
