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

use serde_json::Value;

mod common;
use common::serve;

/// The allocator `roster` itself uses (`src/main.rs`), so the bare loop allocates its parsed
/// records as `roster fetch` does (see `benches/sync.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Count(u64);

impl roster::provider::fetch::Observer for Count {
    fn record(&mut self, _record: Value) -> bool {
        self.0 += 1;
        true
    }
}

fn child_engine(base: &str) -> u64 {
    let yaml = common::provider_yaml(base);
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

/// Runs the real `roster fetch` on the fake, output to a pipe that is read and discarded;
/// peak RSS is sampled from /proc while it runs (VmHWM only grows, so the last sample holds).
fn run_cli(base: &str, total: usize) -> (f64, f64) {
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
        common::provider_yaml(base),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mappings/benchhr.yaml"),
        "provider: benchhr\nstream: employees\nfields:\n  work_email: $.attributes.email.value\n",
    )
    .unwrap();
    let (secs, peak_mb, lines) = common::run_sampled(
        std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["fetch", "bench", "--config", dir.path().to_str().unwrap()])
            .env("STATE_DIRECTORY", dir.path())
            .stderr(std::process::Stdio::null()),
        |mut stdout| {
            use std::io::Read as _;
            let mut lines = 0usize;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = stdout.read(&mut buf).unwrap();
                if n == 0 {
                    return lines;
                }
                lines += buf[..n].iter().filter(|b| **b == b'\n').count();
            }
        },
    );
    assert_eq!(lines, total, "roster fetch printed every record");
    (secs, peak_mb)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "child" {
        let start = Instant::now();
        let n = match args[2].as_str() {
            "engine" => child_engine(&args[3]),
            _ => common::bare_loop(&args[3]),
        };
        println!(
            "{n} {} {}",
            start.elapsed().as_secs_f64(),
            common::peak_rss_mb()
        );
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
