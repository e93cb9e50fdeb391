//! `roster org-chart` on the demo company: `roster demo` writes `org-chart.svg`; a real XML
//! parser reads it back and finds one card per person in the directory, pre-hires and
//! contractors marked, every card inside the picture and no two overlapping. The other
//! formats and `--root`/`--depth` are drawn from the same directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cli::roster;

/// The directory's people who have not left: email → (status, worker type).
fn people(directory: &Path) -> BTreeMap<String, (String, String)> {
    let conn = roster::store::open_readonly(directory).unwrap();
    let (_, rows) = roster::cli::query::execute(
        &conn,
        "select work_email, status, coalesce(worker_type, '') from people where status <> 'terminated'",
    )
    .unwrap();
    rows.iter()
        .map(|r| {
            let t: Vec<String> = r.iter().map(roster::cli::query::text).collect();
            (t[0].clone(), (t[1].clone(), t[2].clone()))
        })
        .collect()
}

/// A card of an SVG chart: email (its `<title>`), classes, and its box (x1, y1, x2, y2).
type Card = (String, BTreeSet<String>, [f64; 4]);

/// The cards of an SVG chart, and the picture's width and height.
fn cards(svg: &str) -> (Vec<Card>, f64, f64) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let dim = |k: &str| root.attribute(k).unwrap().parse::<f64>().unwrap();
    let (w, h) = (dim("width"), dim("height"));
    let mut out = Vec::new();
    for g in doc.descendants().filter(|n| n.has_tag_name("g")) {
        let classes: BTreeSet<String> = g
            .attribute("class")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !classes.contains("person") {
            continue;
        }
        let email = g
            .children()
            .find(|c| c.has_tag_name("title"))
            .and_then(|t| t.text())
            .unwrap()
            .to_string();
        let t = g.attribute("transform").unwrap();
        let xy: Vec<f64> = t
            .trim_start_matches("translate(")
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        let rect = g.children().find(|c| c.has_tag_name("rect")).unwrap();
        let size = |k: &str| rect.attribute(k).unwrap().parse::<f64>().unwrap();
        out.push((
            email,
            classes,
            [xy[0], xy[1], xy[0] + size("width"), xy[1] + size("height")],
        ));
    }
    (out, w, h)
}

#[test]
fn the_demo_draws_an_org_chart_with_one_card_per_person() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("roster-demo");
    let (code, out, err) = roster(&["demo", "--dir", demo.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let config = demo.join("config");
    let directory = roster::sync::directory_path(&crate::load(&config).unwrap());
    let people = people(&directory);
    assert!(people.len() >= 200, "{}", people.len());
    assert!(
        out.contains(&format!("The org chart of {} people: ", people.len())),
        "{out}"
    );

    let svg = std::fs::read_to_string(demo.join("org-chart.svg")).unwrap();
    let (cards, width, height) = cards(&svg);
    let drawn: BTreeMap<&str, &BTreeSet<String>> =
        cards.iter().map(|(e, c, _)| (e.as_str(), c)).collect();
    assert_eq!(drawn.len(), cards.len(), "each person once");
    assert_eq!(
        drawn.keys().copied().collect::<BTreeSet<_>>(),
        people.keys().map(String::as_str).collect::<BTreeSet<_>>()
    );
    let mut marked = (0, 0);
    for (email, (status, kind)) in &people {
        let classes = drawn[email.as_str()];
        assert_eq!(
            classes.contains("pre-hire"),
            status == "pre_hire",
            "{email}"
        );
        assert_eq!(
            classes.contains("contractor"),
            kind == "contractor",
            "{email}"
        );
        marked.0 += usize::from(status == "pre_hire");
        marked.1 += usize::from(kind == "contractor");
    }
    assert!(
        marked.0 > 0 && marked.1 > 0,
        "the demo has both: {marked:?}"
    );
    // Readable: every card inside the picture, none on another.
    for (i, (a, _, p)) in cards.iter().enumerate() {
        assert!(
            p[0] >= 0.0 && p[1] >= 0.0 && p[2] <= width && p[3] <= height,
            "{a}"
        );
        for (b, _, q) in &cards[i + 1..] {
            let apart = p[2] <= q[0] || q[2] <= p[0] || p[3] <= q[1] || q[3] <= p[1];
            assert!(apart, "{a} and {b} overlap");
        }
    }

    // The top person's subtree, two levels deep, in the other formats.
    let conn = roster::store::open_readonly(&directory).unwrap();
    let (_, rows) = roster::cli::query::execute(
        &conn,
        "select work_email from org_chart where depth = 0 order by work_email limit 1",
    )
    .unwrap();
    let top = roster::cli::query::text(&rows[0][0]);
    let (_, below) = roster::cli::query::execute(
        &conn,
        &format!(
            "select count(*) from org_chart where list_contains(chain, '{top}') and depth <= 2"
        ),
    )
    .unwrap();
    let expected: usize = roster::cli::query::text(&below[0][0]).parse().unwrap();
    let c = config.to_str().unwrap();
    let (code, dot, err) = roster(&[
        "org-chart",
        "-c",
        c,
        "--root",
        &top,
        "--depth",
        "2",
        "--format",
        "dot",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.starts_with("digraph org {"), "{dot}");
    assert_eq!(dot.matches(" [label=").count(), expected, "{dot}");
    assert_eq!(
        dot.matches(" -> ").count(),
        expected - 1,
        "a tree: one edge per report"
    );
    let (code, mermaid, _) = roster(&[
        "org-chart",
        "-c",
        c,
        "--root",
        &top,
        "--depth",
        "2",
        "--format",
        "mermaid",
    ]);
    assert_eq!(code, 0);
    assert!(mermaid.starts_with("flowchart TD\n"));
    assert_eq!(mermaid.matches(" --> ").count(), expected - 1);
    let html = demo.join("chart.html");
    let (code, _, err) = roster(&[
        "org-chart",
        "-c",
        c,
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("org chart of {} people written to", people.len())),
        "{err}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<g class=\"person").count(), people.len());

    let (code, _, err) = roster(&["org-chart", "-c", c, "--root", "nobody@nowhere.example"]);
    assert_eq!(code, 64);
    assert!(
        err.contains("nobody with the work email `nobody@nowhere.example`"),
        "{err}"
    );
}
