//! `roster org-chart`: the reporting tree of the published directory as a picture (SVG, with
//! the layout of `org_chart`), or as Graphviz DOT, Mermaid or an HTML page. Reads the
//! published directory, so it works beside the daemon; writes only the output asked for.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::ConfigArg;
use super::fetch::EX_USAGE;
use crate::org_chart::{ChartError, Scope, Tree};

/// Arguments of `roster org-chart`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config is (to find the directory).
    #[command(flatten)]
    pub config: ConfigArg,
    /// Draw only this person (work email) and everyone below them.
    #[arg(long, value_name = "EMAIL")]
    pub root: Option<String>,
    /// Draw this many levels below the top (0: the top only).
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Svg)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Read this directory file instead of the config's.
    #[arg(long)]
    pub directory: Option<PathBuf>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A standalone SVG picture (laid out by Roster).
    Svg,
    /// Graphviz DOT (`dot -Tpng`).
    Dot,
    /// A Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
    /// A self-contained HTML page with the SVG.
    Html,
}

/// Why a chart could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory could not be read.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// The scope names nobody.
    #[error("{0}")]
    Chart(#[from] ChartError),
}

/// The chart of the directory at `path`, rendered. Returns the text and how many people it
/// shows.
pub fn render(path: &Path, scope: &Scope, format: Format) -> Result<(String, usize), Error> {
    let directory = crate::store::read::Directory::open(path)?;
    let tree = Tree::new(directory.org_people()?, scope)?;
    let n = tree.drawn().len();
    let text = match format {
        Format::Svg => crate::org_chart::svg(&tree),
        Format::Dot => crate::org_chart::dot(&tree),
        Format::Mermaid => crate::org_chart::mermaid(&tree),
        Format::Html => crate::org_chart::html(&tree, "Org chart"),
    };
    Ok((text, n))
}

/// Runs `roster org-chart`.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let path = match super::directory_arg(&args.config, args.directory.as_deref()) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let scope = Scope {
        root: args.root.clone(),
        depth: args.depth,
    };
    let (text, n) = match render(&path, &scope, args.format) {
        Ok(r) => r,
        Err(e @ Error::Chart(_)) => {
            eprintln!("error: {e}");
            return Ok(EX_USAGE);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    match &args.output {
        Some(file) => {
            if let Err(e) = std::fs::write(file, &text) {
                eprintln!(
                    "error: cannot write the org chart to {}: {e} (help: check that the folder exists and is writable)",
                    file.display()
                );
                return Ok(1);
            }
            eprintln!("org chart of {n} people written to {}", file.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(0)
}
