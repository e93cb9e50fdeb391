//! Shared by the benchmarks: realistic Personio-shaped employee records, a local fake that
//! serves them 100 per page, and peak-RSS sampling of a child process.

#![allow(dead_code)]

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

/// Records per page.
pub const PAGE: usize = 100;

/// Serves `total` records (each passed through `edit`) on 127.0.0.1:0 from its own thread;
/// returns the base URL (`http://ADDR/v1`).
pub fn serve_with(
    total: usize,
    edit: impl Fn(usize, &mut Value),
) -> (String, std::thread::JoinHandle<()>) {
    let pages: Vec<String> = (0..total.div_ceil(PAGE))
        .map(|p| {
            let data: Vec<Value> = (p * PAGE..((p + 1) * PAGE).min(total))
                .map(|i| {
                    let mut r = record(i);
                    edit(i, &mut r);
                    r
                })
                .collect();
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

/// Serves `total` unedited records.
pub fn serve(total: usize) -> (String, std::thread::JoinHandle<()>) {
    serve_with(total, |_, _| {})
}

/// Runs a command to completion, sampling its peak RSS (VmHWM) from /proc every 5 ms while
/// `consume` reads its stdout on another thread. Returns (wall seconds, peak RSS in MB, what
/// `consume` returned).
pub fn run_sampled<T: Send + 'static>(
    cmd: &mut std::process::Command,
    consume: impl FnOnce(std::process::ChildStdout) -> T + Send + 'static,
) -> (f64, f64, T) {
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
    let secs = start.elapsed().as_secs_f64();
    (secs, peak_kb / 1024.0, reader.join().unwrap())
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

/// The bare loop: reqwest + serde_json over the same pages, records counted, nothing else.
pub fn bare_loop(base: &str) -> u64 {
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

/// A provider spec for the fake: no auth, offset paging, the reported total.
pub fn provider_yaml(base: &str) -> String {
    format!(
        "base_url: {base}\nauth: {{kind: none}}\nstreams:\n  employees:\n    request: {{path: /company/employees}}\n    pagination: {{kind: offset, page_size: {PAGE}}}\n    records: $.data[*]\n    total: $.metadata.total_elements\n"
    )
}
