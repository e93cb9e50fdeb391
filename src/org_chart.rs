//! The org chart as a picture: the reporting tree of the directory's people, pure (the people
//! are an argument; `store::read::Directory::org_people` reads them), drawn as SVG (with a
//! layout computed here, no external tool), Graphviz DOT, Mermaid or a self-contained HTML
//! page around the SVG.
//!
//! **The tree.** Everyone who has not left is one node. A person whose manager is empty, has
//! left or is not in the directory is a root; people on a management cycle (a data problem)
//! reach no root, so the lowest email of each such group becomes one, and nobody is lost.
//! Roots and reports are in name order.
//!
//! **The layout**, for a company of a few hundred: a manager sits centred above their reports;
//! reports who manage someone are laid out side by side as subtrees; reports who manage nobody
//! are stacked in columns of at most [`STACK`] under the manager (a team of 30 is three
//! columns, not 30 boxes in a row). Each subtree is a box that never overlaps its siblings, so
//! no two cards overlap and no line crosses a card. Connectors are orthogonal.
//!
//! Pre-hires are drawn dashed with their start date; contractors on a tinted card with a
//! "contractor" tag.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// One person as the chart needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgPerson {
    /// Work email (the node's identity).
    pub work_email: String,
    /// Display name (or first and last name).
    pub name: String,
    /// Job title.
    pub title: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Manager's work email.
    pub manager_email: Option<String>,
    /// `active`, `pre_hire`, `on_leave` (people who left are not charted).
    pub status: String,
    /// `employee`, `contractor`, ...
    pub worker_type: Option<String>,
    /// Start date (shown for pre-hires).
    pub start_date: Option<String>,
}

impl OrgPerson {
    fn pre_hire(&self) -> bool {
        self.status == "pre_hire"
    }
    fn contractor(&self) -> bool {
        self.worker_type.as_deref() == Some("contractor")
    }
}

/// Why a chart could not be drawn as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// `--root` names nobody in the chart.
    #[error(
        "nobody with the work email `{0}` is in the directory's org chart (help: people who left are not charted; `roster query \"select work_email from people where work_email ilike '%...%'\"` finds the exact email)"
    )]
    UnknownRoot(String),
}

/// The reporting tree: nodes index into `people`.
#[derive(Debug)]
pub struct Tree {
    people: Vec<OrgPerson>,
    roots: Vec<usize>,
    children: Vec<Vec<usize>>,
}

/// How deep to draw.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Draw only this person and their reports (all levels).
    pub root: Option<String>,
    /// Draw this many levels below the root(s) (0: the roots only).
    pub depth: Option<usize>,
}

impl Tree {
    /// Builds the tree of everyone who has not left, cut to `scope`.
    pub fn new(people: Vec<OrgPerson>, scope: &Scope) -> Result<Tree, ChartError> {
        let mut people: Vec<OrgPerson> = people
            .into_iter()
            .filter(|p| p.status != "terminated")
            .collect();
        people.sort_by(|a, b| (&a.name, &a.work_email).cmp(&(&b.name, &b.work_email)));
        let index: HashMap<String, usize> = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.work_email.to_lowercase(), i))
            .collect();
        let mut children = vec![Vec::new(); people.len()];
        let mut roots = Vec::new();
        for (i, p) in people.iter().enumerate() {
            match p
                .manager_email
                .as_ref()
                .and_then(|m| index.get(&m.to_lowercase()))
            {
                Some(&m) if m != i => children[m].push(i),
                _ => roots.push(i),
            }
        }
        // People on a cycle reach no root: the lowest email of each group becomes one.
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = roots.clone();
        loop {
            while let Some(n) = stack.pop() {
                if seen.insert(n) {
                    stack.extend(&children[n]);
                }
            }
            let mut lost: Vec<usize> = (0..people.len()).filter(|i| !seen.contains(i)).collect();
            if lost.is_empty() {
                break;
            }
            lost.sort_by(|a, b| people[*a].work_email.cmp(&people[*b].work_email));
            let r = lost[0];
            // Its manager no longer lists it as a report: it heads its own tree.
            for c in children.iter_mut() {
                c.retain(|x| *x != r);
            }
            roots.push(r);
            stack.push(r);
        }
        let roots = match &scope.root {
            Some(email) => match index.get(&email.trim().to_lowercase()) {
                Some(&i) => vec![i],
                None => return Err(ChartError::UnknownRoot(email.clone())),
            },
            None => roots,
        };
        let mut tree = Tree {
            people,
            roots,
            children,
        };
        if let Some(depth) = scope.depth {
            let mut level: Vec<usize> = tree.roots.clone();
            for _ in 0..depth {
                level = level
                    .iter()
                    .flat_map(|n| tree.children[*n].clone())
                    .collect();
            }
            for n in level {
                tree.children[n].clear();
            }
        }
        Ok(tree)
    }

    /// The people drawn, in drawing order (depth first from each root).
    pub fn drawn(&self) -> Vec<&OrgPerson> {
        let mut out = Vec::new();
        let mut stack: Vec<usize> = self.roots.iter().rev().copied().collect();
        while let Some(n) = stack.pop() {
            out.push(&self.people[n]);
            stack.extend(self.children[n].iter().rev());
        }
        out
    }

    /// Each drawn node with its parent, depth first.
    fn edges(&self) -> Vec<(usize, Option<usize>)> {
        let mut out = Vec::new();
        let mut stack: Vec<(usize, Option<usize>)> =
            self.roots.iter().rev().map(|r| (*r, None)).collect();
        while let Some((n, parent)) = stack.pop() {
            out.push((n, parent));
            stack.extend(self.children[n].iter().rev().map(|c| (*c, Some(n))));
        }
        out
    }
}

/// Card size and spacing, in SVG user units (pixels).
const CARD_W: i64 = 230;
const CARD_H: i64 = 62;
/// Horizontal gap between sibling subtrees.
const H_GAP: i64 = 24;
/// Vertical gap between a manager and their reports.
const V_GAP: i64 = 40;
/// Vertical gap between stacked reports.
const STACK_GAP: i64 = 12;
/// Indent of a stack of reports, where its connector runs.
const INDENT: i64 = 22;
/// Reports who manage nobody, per column.
pub const STACK: usize = 10;
/// Space above the chart for the legend.
const LEGEND_H: i64 = 40;

/// Where each card goes (top-left) and the connector paths.
#[derive(Debug, Default)]
struct Layout {
    cards: BTreeMap<usize, (i64, i64)>,
    lines: Vec<String>,
    width: i64,
    height: i64,
}

/// A laid-out subtree: size, card positions and lines relative to its top-left.
struct Boxed {
    w: i64,
    h: i64,
    cards: Vec<(usize, i64, i64)>,
    lines: Vec<[i64; 4]>,
}

impl Boxed {
    fn shift(&mut self, dx: i64, dy: i64) {
        for c in &mut self.cards {
            c.1 += dx;
            c.2 += dy;
        }
        for l in &mut self.lines {
            l[0] += dx;
            l[1] += dy;
            l[2] += dx;
            l[3] += dy;
        }
    }
}

fn layout_node(tree: &Tree, n: usize) -> Boxed {
    let kids = &tree.children[n];
    if kids.is_empty() {
        return Boxed {
            w: CARD_W,
            h: CARD_H,
            cards: vec![(n, 0, 0)],
            lines: Vec::new(),
        };
    }
    let (branches, leaves): (Vec<usize>, Vec<usize>) =
        kids.iter().partition(|k| !tree.children[**k].is_empty());
    // Columns: each branch a subtree; the leaves in stacks of at most STACK.
    let mut columns: Vec<(Boxed, bool)> = branches
        .iter()
        .map(|b| (layout_node(tree, *b), false))
        .collect();
    for chunk in leaves.chunks(STACK) {
        let mut cards = Vec::new();
        let mut lines = Vec::new();
        let mut y = 0;
        for leaf in chunk {
            cards.push((*leaf, INDENT, y));
            // Tick from the stack's spine to the card's left edge.
            lines.push([INDENT / 2, y + CARD_H / 2, INDENT, y + CARD_H / 2]);
            y += CARD_H + STACK_GAP;
        }
        let last_mid = y - STACK_GAP - CARD_H / 2;
        lines.push([INDENT / 2, 0, INDENT / 2, last_mid]);
        columns.push((
            Boxed {
                w: INDENT + CARD_W,
                h: y - STACK_GAP,
                cards,
                lines,
            },
            true,
        ));
    }
    let row_w: i64 =
        columns.iter().map(|(c, _)| c.w).sum::<i64>() + H_GAP * (columns.len() as i64 - 1);
    let w = row_w.max(CARD_W);
    let card_x = (w - CARD_W) / 2;
    let mid = card_x + CARD_W / 2;
    let bus_y = CARD_H + V_GAP / 2;
    let top = CARD_H + V_GAP;
    let mut out = Boxed {
        w,
        h: CARD_H,
        cards: vec![(n, card_x, 0)],
        lines: vec![[mid, CARD_H, mid, bus_y]],
    };
    let mut x = (w - row_w) / 2;
    let mut xs = Vec::new();
    for (mut col, stack) in columns {
        // Where the column's connector enters it: a subtree's root card centre, a stack's spine.
        let entry = if stack {
            x + INDENT / 2
        } else {
            x + col.cards[0].1 + CARD_W / 2
        };
        xs.push(entry);
        out.lines.push([entry, bus_y, entry, top]);
        col.shift(x, top);
        out.h = out.h.max(top + col.h);
        out.cards.extend(col.cards);
        out.lines.extend(col.lines);
        x += col.w + H_GAP;
    }
    let lo = xs.iter().copied().min().unwrap_or(mid).min(mid);
    let hi = xs.iter().copied().max().unwrap_or(mid).max(mid);
    if lo < hi {
        out.lines.push([lo, bus_y, hi, bus_y]);
    }
    out
}

fn layout(tree: &Tree) -> Layout {
    let mut l = Layout::default();
    let mut x = 20;
    let y = LEGEND_H + 20;
    for r in &tree.roots {
        let mut b = layout_node(tree, *r);
        b.shift(x, y);
        for (n, cx, cy) in b.cards {
            l.cards.insert(n, (cx, cy));
        }
        l.lines.extend(
            b.lines
                .iter()
                .map(|[x1, y1, x2, y2]| format!("M{x1} {y1}L{x2} {y2}")),
        );
        l.height = l.height.max(y + b.h + 20);
        x += b.w + H_GAP * 2;
    }
    l.width = (x - H_GAP * 2 + 20).max(520);
    l.height = l.height.max(LEGEND_H + 40);
    l
}

/// Escapes text for XML (SVG and HTML).
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut (a card has a fixed width).
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// The chart as a standalone SVG document.
pub fn svg(tree: &Tree) -> String {
    let l = layout(tree);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">"#,
        w = l.width,
        h = l.height
    );
    s.push_str(
        r#"<style>
.card{fill:#fff;stroke:#5b6b7f;stroke-width:1.2}
.contractor .card{fill:#fff7e0;stroke:#b7791f}
.pre-hire .card{stroke-dasharray:5 3}
.name{font-size:13px;font-weight:600;fill:#1a202c}
.title{font-size:11px;fill:#2d3748}
.dept{font-size:10px;fill:#718096}
.tag{font-size:9px;font-weight:600;fill:#b7791f}
.link{fill:none;stroke:#a0aec0;stroke-width:1.2}
.legend{font-size:11px;fill:#4a5568}
</style>
"#,
    );
    let people = tree.drawn().len();
    let _ = writeln!(
        s,
        r#"<text class="legend" x="20" y="24">{people} people. Dashed: pre-hire (start date shown). Tinted: contractor.</text>"#
    );
    let _ = writeln!(s, r#"<path class="link" d="{}"/>"#, l.lines.join(""));
    for (i, (n, _)) in tree.edges().iter().enumerate() {
        let p = &tree.people[*n];
        let (x, y) = l.cards[n];
        let mut class = "person".to_string();
        if p.pre_hire() {
            class.push_str(" pre-hire");
        }
        if p.contractor() {
            class.push_str(" contractor");
        }
        let _ = writeln!(
            s,
            r#"<g class="{class}" id="p{i}" transform="translate({x},{y})"><title>{}</title>"#,
            xml(&p.work_email)
        );
        let _ = writeln!(
            s,
            r#"<rect class="card" width="{CARD_W}" height="{CARD_H}" rx="6"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text class="name" x="10" y="19">{}</text>"#,
            xml(&fit(&p.name, 30))
        );
        if let Some(t) = &p.title {
            let _ = writeln!(
                s,
                r#"<text class="title" x="10" y="35">{}</text>"#,
                xml(&fit(t, 36))
            );
        }
        let mut dept = p.department.clone().unwrap_or_default();
        if p.pre_hire() {
            let starts = p
                .start_date
                .as_deref()
                .map(|d| format!("starts {d}"))
                .unwrap_or_else(|| "pre-hire".into());
            dept = if dept.is_empty() {
                starts
            } else {
                format!("{dept} · {starts}")
            };
        }
        if !dept.is_empty() {
            let _ = writeln!(
                s,
                r#"<text class="dept" x="10" y="51">{}</text>"#,
                xml(&fit(&dept, 40))
            );
        }
        if p.contractor() {
            let _ = writeln!(
                s,
                r#"<text class="tag" x="{}" y="14" text-anchor="end">CONTRACTOR</text>"#,
                CARD_W - 8
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

/// A label line for the text formats: name, title, department, marks.
fn label_lines(p: &OrgPerson) -> Vec<String> {
    let mut lines = vec![p.name.clone()];
    if let Some(t) = &p.title {
        lines.push(t.clone());
    }
    if let Some(d) = &p.department {
        lines.push(d.clone());
    }
    let mut marks = Vec::new();
    if p.pre_hire() {
        marks.push(match &p.start_date {
            Some(d) => format!("pre-hire, starts {d}"),
            None => "pre-hire".to_string(),
        });
    }
    if p.contractor() {
        marks.push("contractor".to_string());
    }
    if !marks.is_empty() {
        lines.push(format!("({})", marks.join(", ")));
    }
    lines
}

/// The chart as Graphviz DOT (`dot -Tsvg`), top to bottom.
pub fn dot(tree: &Tree) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut s = String::from(
        "digraph org {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"sans-serif\"];\n",
    );
    let ids: HashMap<usize, usize> = tree
        .edges()
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    for (n, parent) in tree.edges() {
        let p = &tree.people[n];
        let label = label_lines(p)
            .iter()
            .map(|l| quote(l))
            .collect::<Vec<_>>()
            .join("\\n");
        let mut style = String::new();
        if p.pre_hire() {
            style.push_str(", style=\"rounded,dashed,filled\"");
        }
        if p.contractor() {
            style.push_str(", fillcolor=\"#fff7e0\"");
        }
        let _ = writeln!(
            s,
            "  p{} [label=\"{label}\", tooltip=\"{}\"{style}];",
            ids[&n],
            quote(&p.work_email)
        );
        if let Some(m) = parent {
            let _ = writeln!(s, "  p{} -> p{};", ids[&m], ids[&n]);
        }
    }
    s.push_str("}\n");
    s
}

/// The chart as a Mermaid flowchart (GitHub and GitLab render it in Markdown).
pub fn mermaid(tree: &Tree) -> String {
    // Mermaid labels are HTML-ish: quotes and angle brackets as entities.
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut s = String::from("flowchart TD\n");
    let ids: HashMap<usize, usize> = tree
        .edges()
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    let mut pre = Vec::new();
    let mut contractors = Vec::new();
    for (n, parent) in tree.edges() {
        let p = &tree.people[n];
        let id = ids[&n];
        let label = label_lines(p)
            .iter()
            .map(|l| esc(l))
            .collect::<Vec<_>>()
            .join("<br/>");
        let _ = writeln!(s, "  p{id}[\"{label}\"]");
        if let Some(m) = parent {
            let _ = writeln!(s, "  p{} --> p{id}", ids[&m]);
        }
        if p.pre_hire() {
            pre.push(format!("p{id}"));
        }
        if p.contractor() {
            contractors.push(format!("p{id}"));
        }
    }
    s.push_str("  classDef preHire stroke-dasharray: 5 3\n  classDef contractor fill:#fff7e0\n");
    if !pre.is_empty() {
        let _ = writeln!(s, "  class {} preHire", pre.join(","));
    }
    if !contractors.is_empty() {
        let _ = writeln!(s, "  class {} contractor", contractors.join(","));
    }
    s
}

/// A self-contained HTML page around the SVG (scrolls; search with the browser's find).
pub fn html(tree: &Tree, title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>body{{margin:0;font-family:system-ui,sans-serif;background:#f7fafc}}h1{{font-size:16px;margin:12px 20px}}main{{overflow:auto}}</style>\n</head>\n<body>\n<h1>{t}</h1>\n<main>\n{svg}</main>\n</body>\n</html>\n",
        t = xml(title),
        svg = svg(tree)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(email: &str, manager: Option<&str>) -> OrgPerson {
        OrgPerson {
            work_email: email.into(),
            name: email.split('@').next().unwrap().into(),
            manager_email: manager.map(Into::into),
            status: "active".into(),
            ..OrgPerson::default()
        }
    }

    fn emails(tree: &Tree) -> Vec<&str> {
        tree.drawn().iter().map(|p| p.work_email.as_str()).collect()
    }

    #[test]
    fn cycles_and_unknown_managers_become_roots_and_nobody_is_lost() {
        let people = vec![
            p("a@x", None),
            p("b@x", Some("a@x")),
            p("c@x", Some("gone@x")),
            // A cycle: d → e → d.
            p("d@x", Some("e@x")),
            p("e@x", Some("d@x")),
            p("self@x", Some("self@x")),
        ];
        let t = Tree::new(people, &Scope::default()).unwrap();
        let mut got = emails(&t);
        got.sort();
        assert_eq!(got, ["a@x", "b@x", "c@x", "d@x", "e@x", "self@x"]);
    }

    #[test]
    fn root_and_depth_cut_the_tree() {
        let people = vec![
            p("a@x", None),
            p("b@x", Some("a@x")),
            p("c@x", Some("b@x")),
            p("d@x", Some("c@x")),
            p("z@x", None),
        ];
        let scope = |root: Option<&str>, depth| Scope {
            root: root.map(Into::into),
            depth,
        };
        let t = Tree::new(people.clone(), &scope(Some("B@x"), Some(1))).unwrap();
        assert_eq!(emails(&t), ["b@x", "c@x"]);
        let t = Tree::new(people.clone(), &scope(None, Some(0))).unwrap();
        assert_eq!(emails(&t), ["a@x", "z@x"]);
        assert_eq!(
            Tree::new(people, &scope(Some("nobody@x"), None)).unwrap_err(),
            ChartError::UnknownRoot("nobody@x".into())
        );
    }

    #[test]
    fn no_two_cards_overlap_in_a_wide_and_deep_company() {
        // 1 CEO, 6 VPs, each with 4 managers of 0..=25 reports: leaves stack in columns.
        let mut people = vec![p("ceo@x", None)];
        for v in 0..6 {
            people.push(p(&format!("vp{v}@x"), Some("ceo@x")));
            for m in 0..4 {
                let mgr = format!("m{v}-{m}@x");
                people.push(p(&mgr, Some(&format!("vp{v}@x"))));
                for r in 0..(v * 5 + m) {
                    people.push(p(&format!("r{v}-{m}-{r}@x"), Some(&mgr)));
                }
            }
        }
        let n = people.len();
        let t = Tree::new(people, &Scope::default()).unwrap();
        let l = layout(&t);
        assert_eq!(l.cards.len(), n);
        let cards: Vec<(i64, i64)> = l.cards.values().copied().collect();
        for (i, a) in cards.iter().enumerate() {
            assert!(a.0 >= 0 && a.1 >= 0 && a.0 + CARD_W <= l.width && a.1 + CARD_H <= l.height);
            for b in &cards[i + 1..] {
                let apart = a.0 + CARD_W <= b.0
                    || b.0 + CARD_W <= a.0
                    || a.1 + CARD_H <= b.1
                    || b.1 + CARD_H <= a.1;
                assert!(apart, "cards at {a:?} and {b:?} overlap");
            }
        }
        // Stacking keeps it readable: far narrower than one card per person in a row.
        assert!(l.width < (CARD_W + H_GAP) * n as i64 / 4, "{}", l.width);
    }

    #[test]
    fn text_is_escaped_in_every_format() {
        let mut evil = p("e@x", None);
        evil.name = "<b>\"Bob\" & 'Co'</b>".into();
        let t = Tree::new(vec![evil], &Scope::default()).unwrap();
        assert!(svg(&t).contains("&lt;b&gt;&quot;Bob&quot; &amp; &apos;Co&apos;&lt;/b&gt;"));
        assert!(dot(&t).contains(r#"<b>\"Bob\" & 'Co'</b>"#));
        assert!(mermaid(&t).contains("&lt;b&gt;&quot;Bob&quot; &amp; 'Co'&lt;/b&gt;"));
    }
}
