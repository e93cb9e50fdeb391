//! Webhook URLs on special-purpose addresses (issue 15.5), as `validate` sees them: each
//! refused URL is an error at its `file:line:col` with help, each allowed one passes. The
//! same classification at connect time is tested in `webhook::attempt`.

use std::path::Path;

use crate::{load, repo};

/// (host as written in the URL, allow_private_network, the error's text or None to pass).
const CASES: &[(&str, bool, Option<&str>)] = &[
    ("localhost.", false, Some("points to a loopback address")),
    ("app.localhost", false, Some("points to a loopback address")),
    ("localhost.", true, None),
    ("127.1", false, Some("points to a loopback address")),
    (
        "[::ffff:127.0.0.1]",
        false,
        Some("127.0.0.1, a loopback address, inside an IPv4-mapped address (::ffff:0:0/96)"),
    ),
    (
        "[::ffff:0:a00:1]",
        false,
        Some("10.0.0.1, a private address, inside an IPv4-translated address"),
    ),
    (
        "[::a00:1]",
        false,
        Some("10.0.0.1, a private address, inside an IPv4-compatible address"),
    ),
    (
        "[64:ff9b::7f00:1]",
        false,
        Some("127.0.0.1, a loopback address, inside a NAT64 address (64:ff9b::/96)"),
    ),
    (
        "[64:ff9b:1::a00:1]",
        false,
        Some("inside a local-use NAT64 address (64:ff9b:1::/48)"),
    ),
    (
        "[2002:7f00:1::1]",
        false,
        Some("127.0.0.1, a loopback address, inside a 6to4 address (2002::/16)"),
    ),
    (
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        false,
        Some("inside a Teredo address (2001::/32)"),
    ),
    (
        "198.18.0.1",
        false,
        Some("a benchmarking address (198.18.0.0/15)"),
    ),
    ("198.18.0.1", true, None),
    (
        "192.0.0.8",
        false,
        Some("an IETF protocol assignment address (192.0.0.0/24)"),
    ),
    (
        "192.0.2.1",
        true,
        Some("a documentation address (192.0.2.0/24)"),
    ),
    (
        "203.0.113.5",
        true,
        Some("a documentation address (203.0.113.0/24)"),
    ),
    (
        "[2001:db8::1]",
        true,
        Some("a documentation address (2001:db8::/32)"),
    ),
    ("240.0.0.1", false, Some("a reserved address (240.0.0.0/4)")),
    ("255.255.255.255", true, Some("the broadcast address")),
    ("224.0.0.1", true, Some("a multicast address")),
    ("[ff02::1]", true, Some("a multicast address")),
    (
        "0.0.0.0",
        true,
        Some("an unspecified (\"this network\") address"),
    ),
    // Cloud metadata: refused, also when private networks are allowed, unless named
    // literally with `allow_private_network`.
    ("169.254.169.254", false, Some("a cloud metadata address")),
    ("169.254.169.254", true, None),
    ("[fd00:ec2::254]", true, None),
    ("100.100.100.200", false, Some("a cloud metadata address")),
    (
        "[64:ff9b::a9fe:a9fe]",
        true,
        Some("169.254.169.254, a cloud metadata address, inside a NAT64 address"),
    ),
    (
        "[::ffff:169.254.170.2]",
        true,
        Some("169.254.170.2, a cloud metadata address, inside an IPv4-mapped address"),
    ),
    ("hooks.example.com", false, None),
    ("[2606:4700::1111]", false, None),
];

#[test]
fn special_purpose_webhook_addresses_are_located_errors_with_help() {
    let dir = tempfile::tempdir().unwrap();
    let base = repo().join("tests/fixtures/valid-base");
    for sub in ["providers", "mappings"] {
        copy_dir(&base.join(sub), &dir.path().join(sub));
    }
    let mut yaml = String::from(
        "time_zone: Europe/Berlin\nsources:\n  hr:\n    provider: hr\n    credentials:\n      api_key: {env: HR_API_KEY}\nwebhooks:\n",
    );
    let mut url_lines = Vec::new();
    for (i, (host, allow, _)) in CASES.iter().enumerate() {
        yaml.push_str(&format!("  w{i}:\n"));
        url_lines.push(yaml.lines().count() + 1);
        yaml.push_str(&format!(
            "    url: https://{host}/hook\n    secret: {{env: IT_SECRET}}\n    events: ['*']\n"
        ));
        if *allow {
            yaml.push_str("    allow_private_network: true\n");
        }
    }
    std::fs::write(dir.path().join("roster.yaml"), yaml).unwrap();
    let rendered = match load(dir.path()) {
        Ok(_) => String::new(),
        Err(d) => d.render(),
    };
    for (i, (host, allow, want)) in CASES.iter().enumerate() {
        let key = format!("error: webhooks.w{i}.url: ");
        let line = rendered.lines().find(|l| l.contains(&key));
        match (want, line) {
            (None, None) => {}
            (None, Some(l)) => panic!("{host} (allow {allow}) should pass: {l}"),
            (Some(want), None) => panic!("{host} (allow {allow}) passed; want {want}\n{rendered}"),
            (Some(want), Some(l)) => {
                let at = format!("roster.yaml:{}:10: {key}`", url_lines[i]);
                assert!(l.contains(&at), "{host}: {l} (want {at})");
                assert!(l.contains(want), "{host}: {l}");
                assert!(l.contains("(help: "), "{host}: {l}");
                let help = if want.contains("metadata") {
                    "unless the URL names this exact address as an IP literal"
                } else if *allow {
                    "no receiver can listen on such an address"
                } else {
                    "set `allow_private_network: true`"
                };
                assert!(l.contains(help), "{host}: {l}");
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
