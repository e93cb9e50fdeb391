//! Hostile input: an alias bomb, a 50 MB file and 10,000 levels of nesting are refused with
//! a clear message, without reading the big file or expanding the bomb. (How long each takes
//! is printed by `cargo bench --bench validate`, not asserted here.) An HRIS can be hostile
//! too: an error body that never ends is read only as far as its excerpt needs.

use crate::load;

fn config_with(roster_yaml: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("roster.yaml"), roster_yaml).unwrap();
    let rendered = load(dir.path())
        .expect_err("hostile input must be refused")
        .render();
    (dir, rendered)
}

/// The classic "billion laughs": nine levels of nine aliases each, 387 million nodes.
pub fn alias_bomb() -> String {
    let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s
}

#[test]
fn alias_bomb_is_refused() {
    let (_d, out) = config_with(alias_bomb().as_bytes());
    assert!(out.contains("roster.yaml:"), "{out}");
    assert!(out.contains("expands to more than 200000 values"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[test]
fn fifty_megabyte_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("roster.yaml")).unwrap();
    f.set_len(50 * 1024 * 1024).unwrap(); // sparse: the test itself stays small
    let out = load(dir.path()).expect_err("refused").render();
    assert!(
        out.contains("roster.yaml:1:1: error: file is 50.0 MiB; config files are limited to 4 MiB"),
        "{out}"
    );
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused() {
    let flow = "[".repeat(10_000) + &"]".repeat(10_000);
    let (_d, out) = config_with(flow.as_bytes());
    assert!(out.contains("nesting is deeper than 64 levels"), "{out}");
    let block = "- ".repeat(10_000) + "x\n";
    let (_d, out) = config_with(block.as_bytes());
    assert!(out.contains("nesting is deeper than 64 levels"), "{out}");
}

#[test]
fn a_binary_file_is_refused_with_a_message() {
    let (_d, out) = config_with(&[0xff, 0xfe, 0x00, 0x01]);
    assert!(out.contains("not UTF-8"), "{out}");
}

/// A hostile or broken HRIS: an error response that announces 100 MB and then stalls is read
/// only as far as its excerpt needs (64 KiB), not held in memory nor waited for until the
/// read timeout, and the log line shows at most 200 characters of it.
#[tokio::test]
async fn a_huge_stalling_error_body_is_read_only_for_its_excerpt() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\ncontent-length: 100000000\r\n\r\n";
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&vec![b'x'; 100 * 1024]).await;
                // Then nothing: the connection stays open, the body never ends.
                tokio::time::sleep(std::time::Duration::from_secs(600)).await;
            });
        }
    });
    let s = crate::fetch::spec(&format!("http://{addr}/v1"), crate::fetch::PLAIN);
    let c = crate::fetch::client(&s, &[]);
    let started = std::time::Instant::now();
    let e = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        crate::fetch::fetch(&c, "people"),
    )
    .await
    .expect("the excerpt does not wait for the whole body")
    .1
    .unwrap_err();
    assert!(started.elapsed().as_secs() < 20);
    let text = e.to_string();
    let excerpt = text
        .split("HTTP 400: ")
        .nth(1)
        .and_then(|t| t.split(" (help").next())
        .unwrap_or_default();
    assert_eq!(excerpt, format!("{}…", "x".repeat(200)), "{text}");
    assert_eq!(e.code(), "hris_http_error");
}
