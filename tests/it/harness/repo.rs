//! Fleet repositories: real git repositories in temp dirs, written and committed with
//! git2, plus the one builder of Fleet YAML the tests use and the Daemon document.
//!
//! Commits have a fixed author and time (one hour apart), so commit ids, and the
//! snapshots that show them, are the same on every run.

use std::cell::Cell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use git2::{IndexAddOption, Repository, Signature, Time};

/// A work tree with a git repository, edited and committed by the test.
pub struct Repo {
    dir: tempfile::TempDir,
    pub git: Repository,
    commits: Cell<i64>,
}

impl Default for Repo {
    fn default() -> Self {
        Repo::new()
    }
}

impl Repo {
    /// An empty repository (`git init`).
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("a temp dir");
        let git = Repository::init(dir.path()).expect("git init");
        Repo {
            dir,
            git,
            commits: Cell::new(0),
        }
    }

    /// A repository whose work tree (not committed yet) is a copy of `rel`, a directory
    /// of this repository, e.g. `examples/fleet`.
    pub fn with_copy_of(rel: &str) -> Repo {
        let r = Repo::new();
        r.copy_dir(&Path::new(super::ROOT).join(rel), "");
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> String {
        self.path().display().to_string()
    }

    /// Writes a file of the work tree (directories created as needed).
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel))
            .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel))
            .unwrap_or_else(|e| panic!("removing {rel}: {e}"));
    }

    pub fn rename(&self, from: &str, to: &str) {
        let text = self.read(from);
        self.remove(from);
        self.write(to, text);
    }

    /// Replaces the first `from` by `to` in a file; panics when `from` is not there, so
    /// a fixture edit can never silently do nothing.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(
            text.contains(from),
            "fixture edit: {rel} does not contain {from:?}"
        );
        self.write(rel, text.replacen(from, to, 1));
    }

    /// Copies every file under `src` into the work tree at `dest` (relative; "" for
    /// the top).
    pub fn copy_dir(&self, src: &Path, dest: &str) {
        copy_dir(src, &self.path().join(dest));
    }

    /// Commits the whole work tree (additions, changes and deletions) on HEAD as
    /// `Fleet Tester`; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.commit_as("Fleet Tester", "tester@example.com", message)
    }

    /// [`Repo::commit`] with another author and committer.
    pub fn commit_as(&self, name: &str, email: &str, message: &str) -> String {
        let mut index = self.git.index().expect("index");
        index
            .add_all(["*"], IndexAddOption::DEFAULT, None)
            .expect("add");
        // Files deleted from disk leave the index too.
        index.update_all(["*"], None).expect("update");
        index.write().expect("write index");
        let tree = self
            .git
            .find_tree(index.write_tree().expect("write tree"))
            .expect("tree");
        let sig = self.signature(name, email);
        let parent = self.git.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.git
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    /// The signature of the next commit: a fixed time, one hour after the previous.
    pub fn signature(&self, name: &str, email: &str) -> Signature<'static> {
        self.commits.set(self.commits.get() + 1);
        let when = Time::new(1_700_000_000 + 3600 * self.commits.get(), 0);
        Signature::new(name, email, &when).expect("a signature")
    }

    /// The branch HEAD is on (`master` or `main`, as libgit2's default says).
    pub fn branch(&self) -> String {
        self.git
            .head()
            .expect("HEAD")
            .shorthand()
            .expect("a branch")
            .to_string()
    }

    /// Pushes HEAD to `remote` as its branch `main`.
    pub fn push(&self, remote: &Remote) {
        let mut r = self
            .git
            .remote_anonymous(remote.path().to_str().expect("a UTF-8 path"))
            .expect("a remote");
        let head = self.git.head().expect("HEAD");
        let name = head.name().expect("a ref name").to_string();
        r.push(&[format!("+{name}:refs/heads/main")], None)
            .expect("push");
    }

    /// The files of the work tree, for a failing test's message.
    pub fn listing(&self) -> String {
        listing(self.path())
    }
}

/// A bare repository that `drover sync` follows (its branch `main`).
pub struct Remote {
    dir: tempfile::TempDir,
}

impl Default for Remote {
    fn default() -> Self {
        Remote::new()
    }
}

impl Remote {
    pub fn new() -> Remote {
        let dir = tempfile::tempdir().expect("a temp dir");
        Repository::init_bare(dir.path()).expect("git init --bare");
        Remote { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> String {
        self.path().display().to_string()
    }
}

/// Copies a directory tree (regular files only) to `to`, creating it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.expect("an entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("a file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// A listing of every file under `dir` but `.git/` (symlinks with their target).
pub fn listing(dir: &Path) -> String {
    let mut stack = vec![dir.to_path_buf()];
    let mut paths: Vec<PathBuf> = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(p);
                }
            } else {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let mut out = String::new();
    for p in paths {
        let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
        match std::fs::read_link(&p) {
            Ok(target) => writeln!(out, "  {rel} -> {}", target.display()).unwrap(),
            Err(_) => writeln!(out, "  {rel}").unwrap(),
        }
    }
    out
}

/// Daemon spec lines whose pods never become Ready (the testbed's fail-ready stage).
pub const NEVER_READY: &str =
    "  podTemplate:\n    metadata:\n      labels: {drover.test/fail-ready: \"true\"}\n";

/// A Daemon document; `extra` is appended to its spec (two-space indented lines).
pub fn daemon(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n{extra}"
    )
}

/// One NodeGroup: its name and the labels its nodes carry besides the test's own
/// `drover.test/ns`.
struct Group {
    name: String,
    labels: Vec<(String, String)>,
}

struct Stage {
    name: String,
    groups: Vec<String>,
    bake: Option<String>,
    timeout: String,
}

/// The Fleet document and its NodeGroups, for a test's own nodes: every group selects
/// `drover.test/ns: <selector namespace>` (the label [`super::TestEnv::nodes`] puts on
/// the test's nodes) plus its own labels.
pub struct FleetYaml {
    name: String,
    namespace: String,
    selector_ns: String,
    groups: Vec<Group>,
    stages: Vec<Stage>,
    rollout: Option<String>,
    prune: Option<String>,
    on_failure: Option<String>,
    force_conflicts: bool,
    extra: String,
}

impl FleetYaml {
    /// Fleet `ns` deploying to namespace `ns`, for the nodes labelled with `ns`; no
    /// groups yet.
    pub fn new(ns: &str) -> FleetYaml {
        FleetYaml {
            name: ns.into(),
            namespace: ns.into(),
            selector_ns: ns.into(),
            groups: Vec::new(),
            stages: Vec::new(),
            rollout: None,
            prune: None,
            on_failure: None,
            force_conflicts: false,
            extra: String::new(),
        }
    }

    /// Three stages, canary → blue → green (bakes 3 s and 2 s), over nodes labelled
    /// `role: canary`, `role: blue` and the rest; 50% unavailable, prune up to half.
    pub fn staged(ns: &str, on_failure: &str, canary_timeout: &str) -> FleetYaml {
        FleetYaml::new(ns)
            .group("canary", &[("role", "canary")])
            .group("blue", &[("role", "blue")])
            .group("green", &[])
            .stage("canary", &["canary"], Some("3s"), canary_timeout)
            .stage("blue", &["blue"], Some("2s"), "90s")
            .stage("green", &["green"], None, "90s")
            .rollout(r#"{maxUnavailable: "50%", maxSurge: 0, minReadySeconds: 1}"#)
            .prune("{enabled: true, maxDeleteFraction: 0.5}")
            .on_failure(on_failure)
    }

    /// One group `group` over all the test's nodes and, when `timeout` is given, one
    /// stage `all` holding it.
    pub fn one_group(ns: &str, group: &str, timeout: Option<&str>) -> FleetYaml {
        let f = FleetYaml::new(ns).group(group, &[]);
        match timeout {
            Some(t) => f.stage("all", &[group], None, t),
            None => f,
        }
    }

    pub fn namespace(mut self, ns: &str) -> FleetYaml {
        self.namespace = ns.into();
        self
    }

    /// Whose nodes the groups select (`drover.test/ns: <ns>`).
    pub fn selecting(mut self, ns: &str) -> FleetYaml {
        self.selector_ns = ns.into();
        self
    }

    pub fn group(mut self, name: &str, labels: &[(&str, &str)]) -> FleetYaml {
        self.groups.push(Group {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        self
    }

    pub fn stage(
        mut self,
        name: &str,
        groups: &[&str],
        bake: Option<&str>,
        timeout: &str,
    ) -> FleetYaml {
        self.stages.push(Stage {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            bake: bake.map(str::to_string),
            timeout: timeout.into(),
        });
        self
    }

    /// Changes the bake of stage `name`.
    pub fn bake(mut self, name: &str, bake: &str) -> FleetYaml {
        let s = self
            .stages
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stage {name}"));
        s.bake = Some(bake.into());
        self
    }

    /// Changes the timeout of stage `name`.
    pub fn timeout(mut self, name: &str, timeout: &str) -> FleetYaml {
        let s = self
            .stages
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stage {name}"));
        s.timeout = timeout.into();
        self
    }

    /// `defaults.rollout`, as a YAML flow mapping.
    pub fn rollout(mut self, flow: &str) -> FleetYaml {
        self.rollout = Some(flow.into());
        self
    }

    /// `prune`, as a YAML flow mapping.
    pub fn prune(mut self, flow: &str) -> FleetYaml {
        self.prune = Some(flow.into());
        self
    }

    pub fn on_failure(mut self, policy: &str) -> FleetYaml {
        self.on_failure = Some(policy.into());
        self
    }

    /// Raw lines for the Fleet's spec (two-space indented, each ending in a newline),
    /// e.g. a `freezeWindows:` block; "" for none.
    pub fn spec_lines(mut self, lines: &str) -> FleetYaml {
        self.extra.push_str(lines);
        self
    }

    pub fn force_conflicts(mut self) -> FleetYaml {
        self.force_conflicts = true;
        self
    }

    /// The `drover.yaml` text.
    pub fn yaml(&self) -> String {
        let names: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
        let mut y = format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: {}}}\nspec:\n  namespace: {}\n  groups: [{}]\n",
            self.name,
            self.namespace,
            names.join(", ")
        );
        if !self.stages.is_empty() {
            y.push_str("  stages:\n");
            for s in &self.stages {
                let bake = s
                    .bake
                    .as_ref()
                    .map(|b| format!(", bake: {b}"))
                    .unwrap_or_default();
                writeln!(
                    y,
                    "    - {{name: {}, groups: [{}]{bake}, timeout: {}}}",
                    s.name,
                    s.groups.join(", "),
                    s.timeout
                )
                .unwrap();
            }
        }
        if let Some(r) = &self.rollout {
            writeln!(y, "  defaults:\n    rollout: {r}").unwrap();
        }
        if let Some(p) = &self.prune {
            writeln!(y, "  prune: {p}").unwrap();
        }
        if let Some(o) = &self.on_failure {
            writeln!(y, "  onFailure: {o}").unwrap();
        }
        if self.force_conflicts {
            y.push_str("  forceConflicts: true\n");
        }
        y.push_str(&self.extra);
        for g in &self.groups {
            let mut labels = format!("drover.test/ns: {}", self.selector_ns);
            for (k, v) in &g.labels {
                write!(labels, ", {k}: {v}").unwrap();
            }
            write!(
                y,
                "---\napiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {}}}\nspec:\n  selector:\n    matchLabels: {{{labels}}}\n",
                g.name
            )
            .unwrap();
        }
        y
    }
}
