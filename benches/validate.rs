//! Benchmark: how long the config pipeline (`roster validate`) takes on a generated config of
//! 50 sources, each with its own provider spec and mapping (150 files plus the built-in
//! catalog), and how fast hostile inputs are refused. Prints figures; asserts nothing.
//!
//! Run: `cargo bench --bench validate`. Target: under 100 ms for 50 sources.

use std::path::Path;
use std::time::{Duration, Instant};

use roster::config::{LoadOptions, load};

const PROVIDER: &str = include_str!("../examples/full/providers/acme-hr.yaml");
const MAPPING: &str = include_str!("../examples/full/mappings/acme-hr.yaml");

fn generate(dir: &Path, sources: usize) {
    std::fs::create_dir_all(dir.join("providers")).unwrap();
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    let mut roster = String::from("time_zone: Europe/Berlin\nsources:\n");
    for i in 0..sources {
        let name = format!("hr{i:02}");
        std::fs::write(dir.join(format!("providers/{name}.yaml")), PROVIDER).unwrap();
        std::fs::write(
            dir.join(format!("mappings/{name}.yaml")),
            MAPPING.replace("provider: acme-hr", &format!("provider: {name}")),
        )
        .unwrap();
        roster.push_str(&format!(
            "  {name}:\n    provider: {name}\n    credentials:\n      api_token: {{env: TOKEN_{i}}}\n    settings:\n      tenant: t{i}\n    schedule:\n      every: {}h\n",
            1 + i % 6
        ));
    }
    roster.push_str("webhooks:\n");
    for i in 0..10 {
        roster.push_str(&format!(
            "  hook{i}:\n    url: https://hooks{i}.example.com/roster\n    secret: {{env: HOOK_{i}}}\n    events: [\"person.*\", \"lifecycle.*\"]\n    when: {{worker_type: contractor}}\n"
        ));
    }
    roster.push_str("triggers:\n");
    for (i, ev) in [
        "start_date",
        "end_date",
        "probation_end",
        "work_anniversary",
        "birthday",
    ]
    .iter()
    .enumerate()
    {
        roster.push_str(&format!(
            "  t{i}:\n    event: lifecycle.{ev}\n    offset: -{i}d\n    at: \"09:00\"\n"
        ));
    }
    std::fs::write(dir.join("roster.yaml"), roster).unwrap();
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, Duration) {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    samples.sort();
    (samples[0], samples[runs / 2], samples[runs - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LoadOptions::default();
    for sources in [1, 10, 50] {
        let dir = tmp.path().join(format!("s{sources}"));
        generate(&dir, sources);
        let cfg = load(&dir, &opts)
            .unwrap_or_else(|d| panic!("generated config invalid:\n{}", d.render()));
        assert_eq!(cfg.sources.len(), sources);
        let (min, median, max) = time(30, || load(&dir, &opts).is_ok());
        println!(
            "validate {sources:>2} source(s) ({:>3} files): min {}  median {}  max {}",
            1 + 2 * sources,
            ms(min),
            ms(median),
            ms(max)
        );
    }

    let hostile = tmp.path().join("hostile");
    std::fs::create_dir_all(&hostile).unwrap();
    let file = hostile.join("roster.yaml");
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(", ")
        ));
    }
    type Setup<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Setup)> = vec![
        (
            "alias bomb (9 levels x 9)",
            Box::new(|| std::fs::write(&file, &bomb).unwrap()),
        ),
        (
            "50 MB file",
            Box::new(|| {
                std::fs::File::create(&file)
                    .unwrap()
                    .set_len(50 << 20)
                    .unwrap()
            }),
        ),
        (
            "10,000 nested lists",
            Box::new(|| std::fs::write(&file, "[".repeat(10_000) + &"]".repeat(10_000)).unwrap()),
        ),
    ];
    for (name, setup) in cases {
        setup();
        let (_, median, max) = time(10, || load(&hostile, &opts).is_err());
        println!("refuse {name:<26}: median {}  max {}", ms(median), ms(max));
    }
}
