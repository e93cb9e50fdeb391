//! Embeds the repository's `providers/` and `mappings/` (the built-in catalog) into the binary.
//! The generated file lists `(name, contents)` pairs sorted by name, so builds are reproducible.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut out = String::new();
    for (konst, dir) in [("PROVIDERS", "providers"), ("MAPPINGS", "mappings")] {
        let dir = Path::new(&root).join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
        files.sort();
        writeln!(out, "pub static {konst}: &[(&str, &str)] = &[").unwrap();
        for path in files {
            let stem = path.file_stem().unwrap().to_string_lossy();
            writeln!(
                out,
                "    ({stem:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("catalog.rs");
    std::fs::write(dest, out).expect("write catalog.rs");
}
