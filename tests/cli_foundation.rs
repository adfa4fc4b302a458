//! Black-box tests of the `drover` binary for issue 2 (validate, render, version,
//! completions), ripgrep `tests/util.rs` style: a failing assertion prints the
//! command, its exit code, stdout, stderr and the fixture tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One run of the binary, kept for its report.
struct Run {
    cmd: String,
    cwd: PathBuf,
    tree: Option<PathBuf>,
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Everything needed to understand a failure.
    fn report(&self) -> String {
        let mut s = format!(
            "\n### command (in {}):\n{}\n### exit: {:?}\n### stdout:\n{}\n### stderr:\n{}",
            self.cwd.display(),
            self.cmd,
            self.code(),
            self.stdout(),
            self.stderr()
        );
        if let Some(t) = &self.tree {
            let _ = write!(s, "### fixture tree {}:\n{}", t.display(), tree(t));
        }
        s
    }

    #[track_caller]
    fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit code{}",
            self.report()
        );
        self
    }

    #[track_caller]
    fn assert_stdout_empty(&self) -> &Self {
        assert!(
            self.out.stdout.is_empty(),
            "stdout should be empty{}",
            self.report()
        );
        self
    }

    #[track_caller]
    fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr should contain {needle:?}{}",
            self.report()
        );
        self
    }

    #[track_caller]
    fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout should contain {needle:?}{}",
            self.report()
        );
        self
    }
}

/// Runs `drover ARGS` in `cwd`; `tree` is the fixture listed on failure.
fn drover(cwd: &Path, tree: Option<&Path>, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("running drover");
    Run {
        cmd: format!("drover {}", args.join(" ")),
        cwd: cwd.to_path_buf(),
        tree: tree.map(Path::to_path_buf),
        out,
    }
}

/// A listing of every file under `dir` (symlinks shown with their target).
fn tree(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut paths = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() && e.file_name() != ".git" {
                stack.push(p);
            } else if !meta.is_dir() {
                paths.push(p);
            }
        }
    }
    paths.sort();
    for p in paths {
        let rel = p.strip_prefix(dir).unwrap().display().to_string();
        match std::fs::read_link(&p) {
            Ok(target) => writeln!(out, "  {rel} -> {}", target.display()).unwrap(),
            Err(_) => writeln!(out, "  {rel}").unwrap(),
        }
    }
    out
}

/// Copies a directory tree (regular files only).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A temp directory holding a copy of examples/fleet.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/fleet"), dir.path());
    dir
}

/// Commits the whole working tree of `repo` (files as they are on disk now).
fn commit_all(repo: &git2::Repository, message: &str) -> git2::Oid {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    // Files deleted from disk leave the index too.
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Drover Test", "test@drover.dev").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}

const TYPO: &str = "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata:\n  name: node-exporter\nspec:\n  imgae: quay.io/prometheus/node-exporter:v1.8.2\n";

/// A git repository in a temp dir: commit 1 is the example fleet (valid), commit 2
/// breaks daemons/node-exporter.yaml (`imgae` at 6:3).
fn two_commit_repo() -> (tempfile::TempDir, git2::Repository, git2::Oid, git2::Oid) {
    let dir = example_copy();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let good = commit_all(&repo, "fleet: prod-eu1");
    std::fs::write(dir.path().join("daemons/node-exporter.yaml"), TYPO).unwrap();
    let bad = commit_all(&repo, "node-exporter: typo");
    (dir, repo, good, bad)
}

fn daemonset_names(yaml_stream: &str) -> Vec<String> {
    yaml_stream
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            let v: serde_json::Value = serde_yaml::from_str(d).expect("a YAML document");
            assert_eq!(v["kind"], "DaemonSet", "{d}");
            v["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn render_of_the_example_fleet_prints_twelve_daemonsets_from_head() {
    let root = repo_root();
    let run = drover(
        &root,
        Some(&root.join("examples/fleet")),
        &["render", "--repo", "examples/fleet"],
    );
    run.assert_exit(0);
    let names = daemonset_names(&run.stdout());
    assert_eq!(names.len(), 12, "{names:?}{}", run.report());
    assert!(
        names.contains(&"nvidia-device-plugin-gpu".to_string()),
        "{}",
        run.report()
    );
    // Read from a commit: the commit annotation names one of this repository's.
    let repo = git2::Repository::open(&root).unwrap();
    let stdout = run.stdout();
    let sha = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("drover.dev/commit: "))
        .unwrap_or_else(|| panic!("no commit annotation{}", run.report()));
    let oid = git2::Oid::from_str(sha).unwrap_or_else(|_| panic!("not a sha: {sha}"));
    assert!(repo.find_commit(oid).is_ok(), "{sha} is not a commit here");
}

#[test]
fn render_with_out_writes_one_file_per_daemonset() {
    let fleet = example_copy();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("rendered");
    let run = drover(
        fleet.path(),
        Some(fleet.path()),
        &["render", "--repo", ".", "--out", out_dir.to_str().unwrap()],
    );
    run.assert_exit(0)
        .assert_stdout_empty()
        .assert_stderr_contains("wrote 12 DaemonSets");
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 12, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(out_dir.join(f)).unwrap();
        let v: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["kind"], "DaemonSet", "{f}");
        assert_eq!(
            format!("{}.yaml", v["metadata"]["name"].as_str().unwrap()),
            *f
        );
        // Not a git repository: the commit annotation says so.
        assert_eq!(
            v["metadata"]["annotations"]["drover.dev/commit"], "worktree",
            "{f}"
        );
    }
    // The files hold exactly what the stream holds.
    let stream = drover(fleet.path(), Some(fleet.path()), &["render", "--repo", "."]);
    stream.assert_exit(0);
    let mut names = daemonset_names(&stream.stdout());
    names.sort();
    let stems: Vec<String> = files
        .iter()
        .map(|f| f.trim_end_matches(".yaml").to_string())
        .collect();
    assert_eq!(names, stems);
}

#[test]
fn validate_reads_the_commit_named_by_rev() {
    let (dir, _repo, good, _bad) = two_commit_repo();
    let p = dir.path();
    let repo_arg = p.to_str().unwrap();
    let ok = drover(
        p,
        Some(p),
        &["validate", "--repo", repo_arg, "--rev", "HEAD~1"],
    );
    ok.assert_exit(0)
        .assert_stdout_contains("fleet prod-eu1 is valid")
        .assert_stdout_contains(&good.to_string()[..12])
        .assert_stdout_contains("12 DaemonSets");

    let bad = drover(
        p,
        Some(p),
        &["validate", "--repo", repo_arg, "--rev", "HEAD"],
    );
    bad.assert_exit(1)
        .assert_stdout_empty()
        .assert_stderr_contains(
            "daemons/node-exporter.yaml:6:3: spec.imgae: unknown field `imgae`",
        );
    // Without --rev, a git repository is read at HEAD.
    drover(p, Some(p), &["validate", "--repo", repo_arg])
        .assert_exit(1)
        .assert_stderr_contains("daemons/node-exporter.yaml:6:3");
}

#[test]
fn validate_with_worktree_reads_uncommitted_files() {
    let (dir, _repo, _good, _bad) = two_commit_repo();
    let p = dir.path();
    // Fix the typo on disk only: HEAD is still broken, the working tree is not.
    std::fs::copy(
        repo_root().join("examples/fleet/daemons/node-exporter.yaml"),
        p.join("daemons/node-exporter.yaml"),
    )
    .unwrap();
    drover(p, Some(p), &["validate", "--repo", "."])
        .assert_exit(1)
        .assert_stdout_empty()
        .assert_stderr_contains("daemons/node-exporter.yaml:6:3");
    let run = drover(p, Some(p), &["validate", "--repo", ".", "--worktree"]);
    run.assert_exit(0)
        .assert_stdout_contains("fleet prod-eu1 is valid:");
    assert!(
        !run.stdout().contains(" at "),
        "a worktree has no commit{}",
        run.report()
    );
}

#[test]
fn invalid_fixture_fails_with_diagnostics_on_stderr_and_nothing_on_stdout() {
    let root = repo_root();
    let case = root.join("fixtures/invalid/99-many-errors");
    let run = drover(
        &root,
        Some(&case),
        &[
            "validate",
            "--repo",
            "fixtures/invalid/99-many-errors",
            "--worktree",
        ],
    );
    run.assert_exit(1)
        .assert_stdout_empty()
        .assert_stderr_contains("daemons/agent.yaml:15:12: spec.groups[0]: unknown group `canery`")
        .assert_stderr_contains("daemons/exporter.yaml:9:38")
        .assert_stderr_contains("daemons/exporter.yaml:13:21")
        .assert_stderr_contains("drover.yaml:20:14")
        .assert_stderr_contains("groups/canary.yaml:10:59")
        .assert_stderr_contains("5 problem(s) found");
    // render refuses too, and prints no partial stream.
    drover(
        &root,
        Some(&case),
        &[
            "render",
            "--repo",
            "fixtures/invalid/99-many-errors",
            "--worktree",
        ],
    )
    .assert_exit(1)
    .assert_stdout_empty()
    .assert_stderr_contains("drover.yaml:20:14");
}

#[test]
fn symlink_in_a_working_tree_is_refused() {
    let fleet = example_copy();
    let p = fleet.path();
    std::os::unix::fs::symlink("../drover.yaml", p.join("daemons/linked.yaml")).unwrap();
    for args in [
        &["validate", "--repo", ".", "--worktree"][..],
        &["render", "--repo", "."][..],
    ] {
        drover(p, Some(p), args)
            .assert_exit(1)
            .assert_stdout_empty()
            .assert_stderr_contains("daemons/linked.yaml: is a symbolic link");
    }
}

#[test]
fn symlink_committed_in_a_git_tree_is_refused() {
    let dir = example_copy();
    let p = dir.path();
    let repo = git2::Repository::init(p).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.join("daemons/passwd.yaml")).unwrap();
    commit_all(&repo, "a link out of the tree");
    // Gone from disk, still in the commit: drover reads the tree, not the disk.
    std::fs::remove_file(p.join("daemons/passwd.yaml")).unwrap();
    let head = repo.head().unwrap().peel_to_tree().unwrap();
    let entry = head.get_path(Path::new("daemons/passwd.yaml")).unwrap();
    assert_eq!(
        entry.filemode(),
        0o120000,
        "the fixture must commit a symlink"
    );
    drover(p, Some(p), &["validate", "--repo", "."])
        .assert_exit(1)
        .assert_stdout_empty()
        .assert_stderr_contains("daemons/passwd.yaml: is a symbolic link");
    // The working tree, without the link, is fine.
    drover(p, Some(p), &["validate", "--repo", ".", "--worktree"]).assert_exit(0);
}

#[test]
fn version_prints_the_crate_version_and_the_git_commit() {
    let root = repo_root();
    let run = drover(&root, None, &["--version"]);
    run.assert_exit(0);
    let line = run.stdout().trim().to_string();
    let expected_prefix = format!("drover {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected_prefix), "{line}{}", run.report());
    let sha = line[expected_prefix.len()..].trim_end_matches(')');
    assert_eq!(sha.len(), 12, "{line}");
    let repo = git2::Repository::open(&root).unwrap();
    assert!(
        repo.revparse_single(sha)
            .and_then(|o| o.peel_to_commit())
            .is_ok(),
        "{sha} is not a commit of this repository"
    );
}

#[test]
fn completions_for_bash_print_a_completion_script() {
    let run = drover(&repo_root(), None, &["completions", "bash"]);
    run.assert_exit(0)
        .assert_stdout_contains("_drover()")
        .assert_stdout_contains("complete -F _drover")
        .assert_stdout_contains("validate")
        .assert_stdout_contains("render");
}

#[test]
fn rev_outside_a_git_repository_is_an_error() {
    let fleet = example_copy();
    let p = fleet.path();
    let run = drover(p, Some(p), &["validate", "--repo", ".", "--rev", "HEAD"]);
    run.assert_exit(1)
        .assert_stdout_empty()
        .assert_stderr_contains("cannot open git repository");
    // The cause is named once: the error keeps git's error as its source and also
    // writes it into its message, and the binary prints the chain without repeats.
    assert_eq!(
        run.stderr().matches("could not find repository").count(),
        1,
        "{}",
        run.report()
    );
}

#[test]
fn files_under_dot_directories_are_not_read() {
    let dir = repo_root().join("fixtures/valid/selectors-and-env");
    let files = drover::shell::source::read_worktree(&dir, &drover::core::limits::LIMITS)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    assert!(
        files.iter().all(|f| !f.path.starts_with(".github")),
        "{:?}",
        files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    assert!(
        repo_root()
            .join("fixtures/valid/selectors-and-env/.github/workflows/lint.yaml")
            .exists()
    );
}
