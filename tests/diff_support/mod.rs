//! Test support for `drover diff`: real git repositories in temp dirs (git2), built
//! from a directory of files and edited commit by commit, with fixed signatures so
//! that commit ids (and so snapshots) are the same on every run.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{IndexAddOption, Repository, Signature, Time};

/// A repository whose work tree the test edits between commits.
pub struct GitFixture {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
    commits: usize,
}

impl GitFixture {
    /// An empty repository.
    pub fn new() -> GitFixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init(dir.path()).expect("git init");
        GitFixture {
            dir,
            repo,
            commits: 0,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies every file under `src` into the work tree at `dest` (relative).
    pub fn copy_dir(&self, src: &Path, dest: &str) {
        for (rel, text) in read_dir(src) {
            self.write(&join(dest, &rel), &text);
        }
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel))
            .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).expect("remove");
    }

    pub fn rename(&self, from: &str, to: &str) {
        let text = self.read(from);
        self.remove(from);
        self.write(to, &text);
    }

    /// Replaces `from` by `to` in a file; panics when `from` is not there, so a
    /// fixture edit can never silently do nothing.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(
            text.contains(from),
            "fixture edit: {rel} does not contain {from:?}"
        );
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// Commits the whole work tree (additions, changes and deletions) on HEAD, with
    /// a fixed author and time. Returns the commit id.
    pub fn commit(&mut self, message: &str) -> String {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"], None).expect("update");
        index.write().expect("write index");
        let tree_id = index.write_tree().expect("write tree");
        let tree = self.repo.find_tree(tree_id).expect("tree");
        self.commits += 1;
        let when = Time::new(1_700_000_000 + 3600 * self.commits as i64, 0);
        let sig = Signature::new("Fleet Tester", "tester@example.com", &when).expect("sig");
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let id = self
            .repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit");
        id.to_string()
    }

    /// The files of the work tree, for a failing test's message.
    pub fn tree_listing(&self) -> String {
        read_dir(self.path())
            .keys()
            .filter(|p| !p.starts_with(".git/"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// Every file under `root`, by slash-separated relative path.
pub fn read_dir(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                let rel = p.strip_prefix(root).expect("under root");
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}
