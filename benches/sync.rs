//! Benchmark: `roster sync` (the real binary, a child process) at 10k and 100k people against
//! the bare fetch+parse loop on the same pages from a local fake (100 realistic
//! Personio-shaped records per page, mapped by the built-in Personio mapping):
//! - `bare`: reqwest + serde_json, records counted, nothing else;
//! - `full sync`: an empty state directory: fetch, hash, map, stage, merge, diff, apply,
//!   publish;
//! - `no-change re-sync`: the same listing again (nothing is mapped or written);
//! - `1% changed`: every hundredth person has a new job title.
//!
//! Run: `cargo bench --bench sync`. Prints wall time, the ratio to the bare loop and peak
//! RSS; asserts only that each sync succeeded. Targets (issue 4): full sync ≤ 1.5× bare,
//! no-change ≤ 1.2× bare, peak RSS ≤ 150 MB at 100k and < 2× the 10k figure.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

mod common;

fn write_config(dir: &Path, base: &str) {
    std::fs::create_dir_all(dir.join("providers")).unwrap();
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::write(
        dir.join("roster.yaml"),
        "time_zone: Europe/Berlin\nstore:\n  state_dir: state\nsources:\n  bench:\n    provider: benchhr\n    mapping: benchhr\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("providers/benchhr.yaml"),
        common::provider_yaml(base),
    )
    .unwrap();
    let personio = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/personio.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("mappings/benchhr.yaml"),
        personio.replace("\nprovider: personio\n", "\nprovider: benchhr\n"),
    )
    .unwrap();
}

fn sync(dir: &Path) -> (f64, f64, String) {
    // `ROSTER_BENCH_WRAP="perf record -g -o /tmp/sync.perf --"` profiles each sync.
    let wrap = std::env::var("ROSTER_BENCH_WRAP").unwrap_or_default();
    let mut argv: Vec<String> = wrap.split_whitespace().map(str::to_string).collect();
    argv.extend(
        [
            env!("CARGO_BIN_EXE_roster"),
            "sync",
            "--config",
            dir.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let (secs, rss, out) = common::run_sampled(
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stderr(std::process::Stdio::inherit()),
        |mut stdout| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
            s
        },
    );
    assert!(
        out.contains("bench: ") && !out.contains("HELD"),
        "sync failed: {out}"
    );
    (secs, rss, out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "bare" {
        let start = Instant::now();
        let n = common::bare_loop(&args[2]);
        println!(
            "{n} {} {}",
            start.elapsed().as_secs_f64(),
            common::peak_rss_mb()
        );
        return;
    }
    let me = std::env::current_exe().unwrap();
    println!(
        "{:>7}  {:<18}  {:>8}  {:>8}  {:>9}",
        "people", "run", "wall", "vs bare", "peak RSS"
    );
    // `ROSTER_BENCH_SIZES=100000` runs one size only (with `RUST_LOG=roster=debug`, each
    // sync logs its phase timings).
    let sizes: Vec<usize> = std::env::var("ROSTER_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    for total in sizes {
        let (base, _s0) = common::serve(total);
        let (changed, _s1) = common::serve_with(total, |i, r| {
            if i % 100 == 7 {
                r["attributes"]["position"]["value"] = json!("Staff Engineer");
            }
        });
        let mut bare = f64::MAX;
        let mut bare_rss = 0.0;
        for _ in 0..3 {
            let out = std::process::Command::new(&me)
                .args(["bare", &base])
                .output()
                .unwrap();
            let v: Vec<f64> = String::from_utf8(out.stdout)
                .unwrap()
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!(v[0] as usize, total);
            if v[1] < bare {
                bare = v[1];
                bare_rss = v[2];
            }
        }
        println!(
            "{total:>7}  {:<18}  {bare:>7.2}s  {:>7.2}x  {bare_rss:>6.1} MB",
            "bare fetch+parse", 1.0
        );
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &base);
        let runs = [
            ("full sync", None),
            ("no-change re-sync", None),
            ("1% changed", Some(&changed)),
        ];
        for (name, switch) in runs {
            if let Some(url) = switch {
                std::fs::write(
                    dir.path().join("providers/benchhr.yaml"),
                    common::provider_yaml(url),
                )
                .unwrap();
            }
            let (secs, rss, out) = sync(dir.path());
            println!(
                "{total:>7}  {name:<18}  {secs:>7.2}s  {:>7.2}x  {rss:>6.1} MB",
                secs / bare
            );
            if std::env::var_os("ROSTER_BENCH_VERBOSE").is_some() {
                print!("{out}");
            }
        }
        let db = std::fs::metadata(dir.path().join("state/state.duckdb")).map_or(0, |m| m.len());
        println!(
            "{total:>7}  state database {:.1} MB",
            db as f64 / 1_048_576.0
        );
    }
}
