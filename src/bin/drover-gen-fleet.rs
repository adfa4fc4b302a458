//! `drover-gen-fleet`: a dev-only generator of synthetic fleets for benchmarks.
//!
//! Writes `--daemons N` Daemons × `--groups G` NodeGroups (N × G DaemonSets) into a
//! directory, optionally committing them to a git repository there (each run one
//! commit on HEAD, so two runs with `--revision 1` and `--revision 2` give a PR-like
//! pair of commits), and optionally a matching Node list. The fleet's shape is
//! described in `benches/support/fleet.rs`, shared with the criterion benches.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;

#[allow(dead_code, reason = "the criterion benches use the rest")]
#[path = "../../benches/support/fleet.rs"]
mod fleet;

/// Generate a synthetic fleet repository (N daemons × G groups) for benchmarks.
#[derive(Debug, Parser)]
#[command(name = "drover-gen-fleet", version)]
struct Args {
    /// Number of Daemons
    #[arg(long, default_value_t = 100)]
    daemons: usize,
    /// Number of NodeGroups (pools p0…p(G-2) and a catch-all)
    #[arg(long, default_value_t = 5)]
    groups: usize,
    /// Number of rollout stages the groups are split into
    #[arg(long, default_value_t = 3)]
    stages: usize,
    /// Output directory (created; fleet files in it are replaced)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Commit the files to a git repository in DIR (created if needed)
    #[arg(long)]
    git: bool,
    /// Target namespace
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Fleet name (the drover.dev/fleet label)
    #[arg(long, default_value = "bench")]
    name: String,
    /// Revision: in revision R > 1 every --change-every'th daemon changes image and env
    #[arg(long, default_value_t = 1)]
    revision: u32,
    /// Which daemons change in a revision > 1 (every K-th; 1 = all)
    #[arg(long, default_value_t = 10, value_name = "K")]
    change_every: usize,
    /// Bake time of every stage
    #[arg(long, default_value = "0s")]
    bake: String,
    /// Fleet-wide maxUnavailable
    #[arg(long, default_value = "25%")]
    max_unavailable: String,
    /// Fleet-wide minReadySeconds
    #[arg(long, default_value_t = 0)]
    min_ready_seconds: u32,
    /// The node label the groups select on
    #[arg(long, default_value = fleet::POOL_LABEL)]
    pool_label: String,
    /// Make the last group select its own pool instead of being the catch-all
    #[arg(long)]
    no_catch_all: bool,
    /// Also write a Node list of this many nodes, spread over the pools, to --nodes-out
    #[arg(long, requires = "nodes_out")]
    nodes: Option<usize>,
    /// Where to write the Node list (outside the fleet directory)
    #[arg(long, value_name = "FILE")]
    nodes_out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(
        a.daemons >= 1 && a.groups >= 1,
        "--daemons and --groups must be at least 1"
    );
    let spec = fleet::FleetSpec {
        daemons: a.daemons,
        groups: a.groups,
        stages: a.stages,
        name: a.name.clone(),
        namespace: a.namespace.clone(),
        revision: a.revision,
        change_every: a.change_every,
        bake: a.bake.clone(),
        max_unavailable: a.max_unavailable.clone(),
        min_ready_seconds: a.min_ready_seconds,
        pool_label: a.pool_label.clone(),
        catch_all: !a.no_catch_all,
    };
    write_fleet(&a.out, &spec)?;
    if a.git {
        let id = commit(&a.out, &format!("fleet revision {}", a.revision))?;
        eprintln!(
            "committed {} daemons x {} groups = {} DaemonSets (revision {}) as {id} in {}",
            spec.daemons,
            spec.groups,
            spec.daemonsets(),
            spec.revision,
            a.out.display()
        );
    } else {
        eprintln!(
            "wrote {} daemons x {} groups = {} DaemonSets to {}",
            spec.daemons,
            spec.groups,
            spec.daemonsets(),
            a.out.display()
        );
    }
    if let (Some(n), Some(path)) = (a.nodes, &a.nodes_out) {
        std::fs::write(path, fleet::nodes_yaml(n, a.groups))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Replaces the fleet files under `dir` (other files, like `.git`, stay).
fn write_fleet(dir: &Path, spec: &fleet::FleetSpec) -> anyhow::Result<()> {
    for sub in ["daemons", "groups"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    for (rel, text) in fleet::files(spec) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("a file has a parent"))
            .with_context(|| format!("creating {}", p.display()))?;
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Commits the whole work tree on HEAD (branch `main` in a new repository) with a
/// fixed signature; returns the commit id.
fn commit(dir: &Path, message: &str) -> anyhow::Result<String> {
    use git2::{IndexAddOption, Repository, RepositoryInitOptions, Signature};
    let repo = match Repository::open(dir) {
        Ok(r) => r,
        Err(_) => Repository::init_opts(dir, RepositoryInitOptions::new().initial_head("main"))
            .with_context(|| format!("git init {}", dir.display()))?,
    };
    let mut index = repo.index()?;
    index.add_all(["*"], IndexAddOption::DEFAULT, None)?;
    index.update_all(["*"], None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let secs = parent
        .as_ref()
        .map_or(1_700_000_000, |p| p.time().seconds() + 3600);
    let when = git2::Time::new(secs, 0);
    let sig = Signature::new("drover-gen-fleet", "gen-fleet@drover.invalid", &when)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let id = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
    Ok(id.to_string())
}
