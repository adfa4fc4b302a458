//! Black-box tests of the `drover` binary without a cluster (validate, render,
//! version, completions, the deployment's flags), ripgrep `tests/util.rs` style: a
//! failing assertion prints the command, its exit code, stdout, stderr and the
//! fixture tree.

use std::path::Path;

use crate::harness::{Repo, Run, drover, repo, root};

/// `drover ARGS` in `cwd`, `tree` listed if it fails; no cluster.
fn drover_in(cwd: &Path, tree: Option<&Path>, args: &[&str]) -> Run {
    let mut c = drover(args).current_dir(cwd);
    if let Some(t) = tree {
        c = c.tree(t);
    }
    c.run()
}

/// A temp directory holding a copy of examples/fleet (no git).
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    repo::copy_dir(&root("examples/fleet"), dir.path());
    dir
}

const TYPO: &str = "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata:\n  name: node-exporter\nspec:\n  imgae: quay.io/prometheus/node-exporter:v1.8.2\n";

/// A git repository in a temp dir: commit 1 is the example fleet (valid), commit 2
/// breaks daemons/node-exporter.yaml (`imgae` at 6:3).
fn two_commit_repo() -> (Repo, String, String) {
    let repo = Repo::with_copy_of("examples/fleet");
    let good = repo.commit("fleet: prod-eu1");
    repo.write("daemons/node-exporter.yaml", TYPO);
    let bad = repo.commit("node-exporter: typo");
    (repo, good, bad)
}

/// The DaemonSets' names in a render stream; every other document must be a config
/// ConfigMap, printed before the first DaemonSet (so `kubectl apply -f -` creates it
/// before the pods that mount it).
fn daemonset_names(yaml_stream: &str) -> Vec<String> {
    let mut names = Vec::new();
    for d in yaml_stream.split("---\n").filter(|d| !d.trim().is_empty()) {
        let v: serde_json::Value = serde_yaml::from_str(d).expect("a YAML document");
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        if v["kind"] == "ConfigMap" {
            assert!(names.is_empty(), "a ConfigMap after a DaemonSet: {d}");
            assert!(
                v["metadata"]["labels"]["drover.dev/config"].is_string(),
                "{d}"
            );
        } else {
            assert_eq!(v["kind"], "DaemonSet", "{d}");
            names.push(name);
        }
    }
    names
}

#[test]
fn render_of_the_example_fleet_prints_twelve_daemonsets_from_head() {
    let top = root("");
    let run = drover_in(
        &top,
        Some(&top.join("examples/fleet")),
        &["render", "--repo", "examples/fleet"],
    );
    run.expect_code(0);
    let names = daemonset_names(&run.stdout);
    assert_eq!(names.len(), 12, "{names:?}{}", run.report());
    assert!(
        names.contains(&"nvidia-device-plugin-gpu".to_string()),
        "{}",
        run.report()
    );
    // Read from a commit: the commit annotation names one of this repository's.
    let repo = git2::Repository::open(&top).unwrap();
    let sha = run
        .stdout
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
    let run = drover_in(
        fleet.path(),
        Some(fleet.path()),
        &["render", "--repo", ".", "--out", out_dir.to_str().unwrap()],
    );
    run.expect_code(0)
        .expect_stdout_empty()
        .expect_stderr_contains("wrote 12 DaemonSets and 1 config ConfigMaps");
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // fluent-bit's config file, one ConfigMap for its three groups.
    let (config, files): (Vec<String>, Vec<String>) =
        files.into_iter().partition(|f| f.starts_with("configmap-"));
    assert_eq!(config.len(), 1, "{config:?}");
    let cm: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out_dir.join(&config[0])).unwrap()).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(
        cm["metadata"]["labels"]["drover.dev/config"],
        "fluent-bit-config"
    );
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
    let stream = drover_in(fleet.path(), Some(fleet.path()), &["render", "--repo", "."]);
    stream.expect_code(0);
    let mut names = daemonset_names(&stream.stdout);
    names.sort();
    let stems: Vec<String> = files
        .iter()
        .map(|f| f.trim_end_matches(".yaml").to_string())
        .collect();
    assert_eq!(names, stems);
}

#[test]
fn validate_reads_the_commit_named_by_rev() {
    let (repo, good, _bad) = two_commit_repo();
    let p = repo.path();
    let repo_arg = p.to_str().unwrap();
    let ok = drover_in(
        p,
        Some(p),
        &["validate", "--repo", repo_arg, "--rev", "HEAD~1"],
    );
    ok.expect_code(0)
        .expect_stdout_contains("fleet prod-eu1 is valid")
        .expect_stdout_contains(&good[..12])
        .expect_stdout_contains("12 DaemonSets");

    let bad = drover_in(
        p,
        Some(p),
        &["validate", "--repo", repo_arg, "--rev", "HEAD"],
    );
    bad.expect_code(1)
        .expect_stdout_empty()
        .expect_stderr_contains(
            "daemons/node-exporter.yaml:6:3: spec.imgae: unknown field `imgae`",
        );
    // Without --rev, a git repository is read at HEAD.
    drover_in(p, Some(p), &["validate", "--repo", repo_arg])
        .expect_code(1)
        .expect_stderr_contains("daemons/node-exporter.yaml:6:3");
}

#[test]
fn validate_with_worktree_reads_uncommitted_files() {
    let (repo, _good, _bad) = two_commit_repo();
    let p = repo.path();
    // Fix the typo on disk only: HEAD is still broken, the working tree is not.
    std::fs::copy(
        root("").join("examples/fleet/daemons/node-exporter.yaml"),
        p.join("daemons/node-exporter.yaml"),
    )
    .unwrap();
    drover_in(p, Some(p), &["validate", "--repo", "."])
        .expect_code(1)
        .expect_stdout_empty()
        .expect_stderr_contains("daemons/node-exporter.yaml:6:3");
    let run = drover_in(p, Some(p), &["validate", "--repo", ".", "--worktree"]);
    run.expect_code(0)
        .expect_stdout_contains("fleet prod-eu1 is valid:");
    assert!(
        !run.stdout.contains(" at "),
        "a worktree has no commit{}",
        run.report()
    );
}

#[test]
fn invalid_fixture_fails_with_diagnostics_on_stderr_and_nothing_on_stdout() {
    let top = root("");
    let case = top.join("fixtures/invalid/99-many-errors");
    let run = drover_in(
        &top,
        Some(&case),
        &[
            "validate",
            "--repo",
            "fixtures/invalid/99-many-errors",
            "--worktree",
        ],
    );
    run.expect_code(1)
        .expect_stdout_empty()
        .expect_stderr_contains("daemons/agent.yaml:15:12: spec.groups[0]: unknown group `canery`")
        .expect_stderr_contains("daemons/exporter.yaml:9:38")
        .expect_stderr_contains("daemons/exporter.yaml:13:21")
        .expect_stderr_contains("drover.yaml:20:14")
        .expect_stderr_contains("groups/canary.yaml:10:59")
        .expect_stderr_contains("5 problem(s) found");
    // render refuses too, and prints no partial stream.
    drover_in(
        &top,
        Some(&case),
        &[
            "render",
            "--repo",
            "fixtures/invalid/99-many-errors",
            "--worktree",
        ],
    )
    .expect_code(1)
    .expect_stdout_empty()
    .expect_stderr_contains("drover.yaml:20:14");
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
        drover_in(p, Some(p), args)
            .expect_code(1)
            .expect_stdout_empty()
            .expect_stderr_contains("daemons/linked.yaml: is a symbolic link");
    }
}

#[test]
fn symlink_committed_in_a_git_tree_is_refused() {
    let repo = Repo::with_copy_of("examples/fleet");
    let p = repo.path();
    std::os::unix::fs::symlink("/etc/passwd", p.join("daemons/passwd.yaml")).unwrap();
    repo.commit("a link out of the tree");
    // Gone from disk, still in the commit: drover reads the tree, not the disk.
    repo.remove("daemons/passwd.yaml");
    let head = repo.git.head().unwrap().peel_to_tree().unwrap();
    let entry = head.get_path(Path::new("daemons/passwd.yaml")).unwrap();
    assert_eq!(
        entry.filemode(),
        0o120000,
        "the fixture must commit a symlink"
    );
    drover_in(p, Some(p), &["validate", "--repo", "."])
        .expect_code(1)
        .expect_stdout_empty()
        .expect_stderr_contains("daemons/passwd.yaml: is a symbolic link");
    // The working tree, without the link, is fine.
    drover_in(p, Some(p), &["validate", "--repo", ".", "--worktree"]).expect_code(0);
}

#[test]
fn version_prints_the_crate_version_and_the_git_commit() {
    let top = root("");
    let run = drover_in(&top, None, &["--version"]);
    run.expect_code(0);
    let line = run.stdout.trim().to_string();
    let expected_prefix = format!("drover {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected_prefix), "{line}{}", run.report());
    let sha = line[expected_prefix.len()..].trim_end_matches(')');
    assert_eq!(sha.len(), 12, "{line}");
    let repo = git2::Repository::open(&top).unwrap();
    assert!(
        repo.revparse_single(sha)
            .and_then(|o| o.peel_to_commit())
            .is_ok(),
        "{sha} is not a commit of this repository"
    );
}

#[test]
fn completions_for_bash_print_a_completion_script() {
    let run = drover_in(&root(""), None, &["completions", "bash"]);
    run.expect_code(0)
        .expect_stdout_contains("_drover()")
        .expect_stdout_contains("complete -F _drover")
        .expect_stdout_contains("validate")
        .expect_stdout_contains("render");
}

#[test]
fn rev_outside_a_git_repository_is_an_error() {
    let fleet = example_copy();
    let p = fleet.path();
    let run = drover_in(p, Some(p), &["validate", "--repo", ".", "--rev", "HEAD"]);
    run.expect_code(1)
        .expect_stdout_empty()
        .expect_stderr_contains("cannot open git repository");
    // The cause is named once: the error keeps git's error as its source and also
    // writes it into its message, and the binary prints the chain without repeats.
    assert_eq!(
        run.stderr.matches("could not find repository").count(),
        1,
        "{}",
        run.report()
    );
}

#[test]
fn files_under_dot_directories_are_not_read() {
    let dir = root("").join("fixtures/valid/selectors-and-env");
    let files = drover::shell::source::read_worktree(&dir, &drover::core::limits::LIMITS)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    assert!(
        files.iter().all(|f| !f.path.starts_with(".github")),
        "{:?}",
        files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    assert!(
        root("")
            .join("fixtures/valid/selectors-and-env/.github/workflows/lint.yaml")
            .exists()
    );
}

#[test]
fn the_deployment_passes_only_flags_drover_sync_accepts() {
    let text = std::fs::read_to_string(root("deploy/deployment.yaml")).unwrap();
    let d: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
    let scratch = tempfile::tempdir().unwrap();
    let state = scratch.path().join("state");
    let args: Vec<String> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| match a.as_str().unwrap() {
            "$(DROVER_REPO)" => scratch.path().display().to_string(),
            "/var/lib/drover" => state.display().to_string(),
            "0.0.0.0:8080" => "127.0.0.1:0".to_string(),
            other => other.to_string(),
        })
        .collect();
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    let env_names: Vec<&str> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in [
        "DROVER_GIT_TOKEN",
        "DROVER_SSH_KEY",
        "POD_NAME",
        "POD_NAMESPACE",
    ] {
        assert!(env_names.contains(&name), "{name} in {env_names:?}");
    }
    // Every flag parses; the run then fails only for want of a cluster (no
    // kubeconfig, and the clean environment has no KUBERNETES_SERVICE_HOST).
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = drover(&args)
        .kubeconfig(scratch.path().join("no-such-kubeconfig"))
        .env("POD_NAME", "drover-0")
        .env("POD_NAMESPACE", "drover-system")
        .run();
    r.expect_code(1)
        .expect_stderr_contains("connecting to the cluster");
}
