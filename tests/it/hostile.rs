//! The hostile-input corpus (`fixtures/hostile/`, README there): every case is
//! refused with exit code 1, an error naming the file and the problem, nothing on
//! stdout (no plan), no raw control character on the terminal, and **not one
//! request** to an API server, let alone a write.
//!
//! The refusals need no cluster: drover's kubeconfig points at
//! [`ApiProxy::offline`], a recorder with no API server behind it, and the test
//! asserts that it saw no request at all (so no POST/PUT/PATCH/DELETE, dry runs
//! included). Each case runs `validate`, `plan --format json` and `apply --yes`,
//! from the commit (git objects, the production path) and, where the case is a plain
//! file, from the working tree (`--worktree`) too. Only the two cases at the end,
//! which need objects in a cluster, use the testbed (and the recording proxy where a
//! write could happen).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{ApiProxy, Repo, Run, TestEnv, drover, root};

type Files = BTreeMap<String, Vec<u8>>;

fn read_tree(dir: &Path, rel: &str, out: &mut Files) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            read_tree(&e.path(), &path, out);
        } else {
            out.insert(path, std::fs::read(e.path()).unwrap());
        }
    }
}

/// `fixtures/hostile/base` with the committed case's files laid over it.
fn corpus(case: &str) -> Files {
    let root = root("fixtures/hostile");
    let mut files = Files::new();
    read_tree(&root.join("base"), "", &mut files);
    if !case.is_empty() {
        let dir = root.join(case);
        assert!(dir.is_dir(), "no corpus case {}", dir.display());
        read_tree(&dir, "", &mut files);
    }
    files.retain(|p, _| !p.ends_with(".md"));
    files
}

fn base() -> Files {
    corpus("")
}

/// Writes `files` into a new git repository and commits them.
fn repo_of(files: &Files, message: &str) -> Repo {
    let repo = Repo::new();
    for (p, bytes) in files {
        repo.write(p, bytes);
    }
    repo.commit(message);
    repo
}

/// A tree object written byte for byte, so that entries git itself would refuse
/// (`..`, names with `/`, control characters) can be planted.
fn raw_tree(repo: &git2::Repository, entries: &[(&str, &[u8], git2::Oid)]) -> git2::Oid {
    let mut buf = Vec::new();
    for (mode, name, oid) in entries {
        buf.extend_from_slice(mode.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(name);
        buf.push(0);
        buf.extend_from_slice(oid.as_bytes());
    }
    repo.odb()
        .unwrap()
        .write(git2::ObjectType::Tree, &buf)
        .unwrap()
}

/// A repository whose HEAD holds the base fleet plus one extra entry in `daemons/`
/// with an arbitrary name and mode pointing at `target` (a blob's content, or for a
/// gitlink a commit id).
fn repo_with_entry(name: &[u8], mode: &str, target: &[u8]) -> Repo {
    let repo = Repo::new();
    let r = &repo.git;
    let files = base();
    let blob = |b: &[u8]| r.blob(b).unwrap();
    let mut daemons: Vec<(&str, Vec<u8>, git2::Oid)> = files
        .iter()
        .filter_map(|(p, b)| {
            p.strip_prefix("daemons/")
                .map(|n| ("100644", n.as_bytes().to_vec(), blob(b)))
        })
        .collect();
    let target = if mode == "160000" {
        git2::Oid::from_str(std::str::from_utf8(target).unwrap()).unwrap()
    } else {
        blob(target)
    };
    daemons.push((mode, name.to_vec(), target));
    daemons.sort_by(|a, b| a.1.cmp(&b.1));
    let d: Vec<(&str, &[u8], git2::Oid)> = daemons
        .iter()
        .map(|(m, n, o)| (*m, n.as_slice(), *o))
        .collect();
    let daemons_tree = raw_tree(r, &d);
    let groups: Vec<(&str, Vec<u8>, git2::Oid)> = files
        .iter()
        .filter_map(|(p, b)| {
            p.strip_prefix("groups/")
                .map(|n| ("100644", n.as_bytes().to_vec(), blob(b)))
        })
        .collect();
    let g: Vec<(&str, &[u8], git2::Oid)> = groups
        .iter()
        .map(|(m, n, o)| (*m, n.as_slice(), *o))
        .collect();
    let groups_tree = raw_tree(r, &g);
    let root = raw_tree(
        r,
        &[
            ("40000", b"daemons", daemons_tree),
            ("100644", b"drover.yaml", blob(&files["drover.yaml"])),
            ("40000", b"groups", groups_tree),
        ],
    );
    {
        let tree = r.find_tree(root).unwrap();
        let sig = repo.signature("Mallory", "mallory@example.com");
        r.commit(Some("HEAD"), &sig, &sig, "hostile entry", &tree, &[])
            .unwrap();
    }
    repo
}

/// How one case must be refused.
struct Expect<'a> {
    /// Shown in the error: the file (as the fleet names it).
    file: &'a str,
    /// Shown in the error: what is wrong.
    problem: &'a str,
}

/// Runs the drover binary with the proxy's kubeconfig. The limits must stop hostile
/// input early: a run that takes a minute fails the test.
fn drover_via(proxy: &ApiProxy, args: &[&str]) -> Run {
    drover(args)
        .kubeconfig(&proxy.kubeconfig)
        .deadline(Duration::from_secs(60))
        .run()
}

fn assert_refused_run(run: &Run, e: &Expect<'_>) {
    run.expect_code(1);
    let context = format!(
        "command: {}\n--- stdout\n{}\n--- stderr\n{}",
        run.cmd, run.stdout, run.stderr
    );
    assert!(
        run.stdout.trim().is_empty(),
        "a refused fleet printed something on stdout (a plan?)\n{context}"
    );
    assert!(
        run.stderr.contains(e.file),
        "the error does not name the file `{}`\n{context}",
        e.file
    );
    assert!(
        run.stderr.contains(e.problem),
        "the error does not say `{}`\n{context}",
        e.problem
    );
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character on {what}\n{context}"
        );
    }
}

/// The heart of the corpus: every command refuses, and no request reached an API
/// server. (Nothing of the corpus fleet can exist in a cluster: there is none.)
fn assert_refused(repo: &Path, worktree_too: bool, e: Expect<'_>) {
    let proxy = ApiProxy::offline();
    let r = repo.display().to_string();
    let mut runs: Vec<Vec<&str>> = vec![
        vec!["validate", "--repo", &r],
        vec!["plan", "--repo", &r, "--format", "json"],
        vec!["apply", "--repo", &r, "--yes"],
    ];
    if worktree_too {
        runs.push(vec!["validate", "--worktree", "--repo", &r]);
        runs.push(vec!["apply", "--worktree", "--repo", &r, "--yes"]);
    }
    for args in runs {
        let run = drover_via(&proxy, &args);
        assert_refused_run(&run, &e);
    }
    let requests = proxy.requests();
    assert!(
        requests.is_empty(),
        "a refused fleet reached the API server: {requests:#?}"
    );
}

/// A committed corpus case (`fixtures/hostile/<case>/` over `base/`).
fn committed_case(case: &str, e: Expect<'_>) {
    let mut files = corpus(case);
    if case == "negation-terms" {
        files.remove("groups/canary.yaml");
    }
    let repo = repo_of(&files, &format!("hostile case {case}"));
    assert_refused(repo.path(), true, e);
}

/// The check above can fail: a command that does reach for a cluster (the valid base
/// fleet, planned) is seen by the offline recorder, and fails for want of one.
#[test]
fn the_offline_recorder_sees_a_command_that_reaches_for_a_cluster() {
    let repo = repo_of(&base(), "the valid base fleet");
    let proxy = ApiProxy::offline();
    let run = drover_via(&proxy, &["plan", "--repo", &repo.path_str()]);
    run.expect_code(1);
    assert!(
        !proxy.requests().is_empty(),
        "plan of a valid fleet made no request{}",
        run.report()
    );
}

// ---- committed cases -------------------------------------------------------------

#[test]
fn duplicate_key_is_refused() {
    committed_case(
        "duplicate-key",
        Expect {
            file: "daemons/agent.yaml:7:3",
            problem: "duplicate key `image`",
        },
    );
}

#[test]
fn unknown_kind_is_refused() {
    committed_case(
        "unknown-kind",
        Expect {
            file: "daemons/agent.yaml:2:7",
            problem: "unknown kind `ClusterRoleBinding`",
        },
    );
}

#[test]
fn kubernetes_object_with_foreign_api_version_is_refused() {
    committed_case(
        "unknown-apiversion",
        Expect {
            file: "daemons/agent.yaml:2:13",
            problem: "unsupported apiVersion `rbac.authorization.k8s.io/v1`",
        },
    );
}

#[test]
fn port_past_32_bits_is_not_wrapped_but_refused() {
    committed_case(
        "port-overflow",
        Expect {
            file: "daemons/agent.yaml:7:",
            problem: "port must be between 1 and 65535 (is 4294976396)",
        },
    );
}

#[test]
fn port_past_128_bits_is_refused() {
    committed_case(
        "port-overflow-u128",
        Expect {
            file: "daemons/agent.yaml:6:",
            problem: "spec.ports[0].hostPort",
        },
    );
}

#[test]
fn quantity_overflow_is_refused() {
    committed_case(
        "quantity-overflow",
        Expect {
            file: "daemons/agent.yaml:7:",
            problem: "is too large (more than 2^63)",
        },
    );
}

#[test]
fn name_longer_than_253_characters_is_refused() {
    committed_case(
        "long-name",
        Expect {
            file: "daemons/agent.yaml:3:",
            problem: "metadata.name: must be at most 63 characters (is 300)",
        },
    );
    committed_case(
        "long-name-subdomain",
        Expect {
            file: "daemons/agent.yaml:6:",
            problem: "spec.serviceAccountName: must be at most 253 characters (is 254)",
        },
    );
}

#[test]
fn label_value_with_illegal_characters_is_refused() {
    committed_case(
        "label-value",
        Expect {
            file: "daemons/agent.yaml:5:",
            problem: "label `team`: label value must be",
        },
    );
}

#[test]
fn pod_template_label_value_with_illegal_characters_is_refused() {
    committed_case(
        "label-value-pod-template",
        Expect {
            file: "daemons/agent.yaml:8:",
            problem: "spec.podTemplate.metadata.labels.team: label `team`: label value must be",
        },
    );
}

#[test]
fn malformed_image_digest_is_refused() {
    committed_case(
        "malformed-digest",
        Expect {
            file: "daemons/agent.yaml:5:",
            problem: "a sha256 digest has 64 lowercase hex digits",
        },
    );
}

#[test]
fn pod_template_setting_another_namespace_is_refused() {
    committed_case(
        "podtemplate-namespace",
        Expect {
            file: "daemons/agent.yaml:7:",
            problem: "podTemplate.metadata may only set labels and annotations, not `namespace`",
        },
    );
}

#[test]
fn pod_template_setting_owner_labels_is_refused() {
    committed_case(
        "podtemplate-owner-labels",
        Expect {
            file: "daemons/agent.yaml:9:",
            problem: "`drover.dev/fleet` is set by drover and cannot be overridden",
        },
    );
}

#[test]
fn host_path_with_dotdot_is_refused() {
    committed_case(
        "dotdot-mount",
        Expect {
            file: "daemons/agent.yaml:7:",
            problem: "must not contain `..`",
        },
    );
    committed_case(
        "relative-mount",
        Expect {
            file: "daemons/agent.yaml:7:",
            problem: "`../../etc` must be an absolute path",
        },
    );
}

#[test]
fn selector_whose_negation_passes_the_term_limit_is_refused() {
    committed_case(
        "negation-terms",
        Expect {
            file: "groups/general.yaml:5:3",
            problem: "needs more than 64 nodeSelectorTerms",
        },
    );
}

#[test]
fn byte_order_mark_is_refused() {
    committed_case(
        "bom",
        Expect {
            file: "daemons/agent.yaml:1:1",
            problem: "file starts with a UTF-8 byte order mark",
        },
    );
}

#[test]
fn non_utf8_file_is_refused() {
    committed_case(
        "non-utf8",
        Expect {
            file: "daemons/agent.yaml:8:",
            problem: "file is not valid UTF-8",
        },
    );
}

#[test]
fn raw_control_bytes_in_a_file_are_refused() {
    committed_case(
        "raw-control-bytes",
        Expect {
            file: "daemons/agent.yaml",
            problem: "control characters are not allowed",
        },
    );
}

#[test]
fn ansi_escapes_in_names_are_refused_and_printed_escaped() {
    committed_case(
        "ansi-in-names",
        Expect {
            file: "daemons/agent.yaml:12:",
            problem: "`\\u{1b}[31mLOG_LEVEL` is not a valid environment variable name",
        },
    );
}

// ---- generated cases (too big, or git objects) ------------------------------------

fn with_file(path: &str, bytes: Vec<u8>) -> Files {
    let mut f = base();
    f.insert(path.into(), bytes);
    f
}

#[test]
fn yaml_alias_bomb_is_refused() {
    let mut text = String::from(
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: lol}\nspec:\n  image: registry.example/lol:v1\n  podTemplate:\n    metadata:\n      annotations:\n        l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let p = format!("*l{}", i - 1);
        text.push_str(&format!(
            "        l{i}: &l{i} [{}]\n",
            [p.as_str(); 10].join(", ")
        ));
    }
    let repo = repo_of(&with_file("daemons/lol.yaml", text.into_bytes()), "lol");
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "daemons/lol.yaml:",
            problem: "document expands to more than 1000000 nodes (YAML alias bomb?)",
        },
    );
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused() {
    let text = format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: deep}}\nspec:\n  image: registry.example/deep:v1\n  args: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let repo = repo_of(&with_file("daemons/deep.yaml", text.into_bytes()), "deep");
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "daemons/deep.yaml:6:",
            problem: "nesting deeper than 64 levels",
        },
    );
}

#[test]
fn ten_thousand_levels_of_block_nesting_are_refused() {
    // `- - - x` nests block sequences on one line: 10,000 levels in 20 KB.
    let text = format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: deep}}\nspec:\n  image: registry.example/deep:v1\n  args:\n    {}x\n",
        "- ".repeat(10_000)
    );
    let repo = repo_of(&with_file("daemons/deep.yaml", text.into_bytes()), "deep");
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "daemons/deep.yaml:",
            problem: "nesting deeper than 64 levels",
        },
    );
}

#[test]
fn hundred_megabyte_file_is_refused_before_it_is_read() {
    let mut big = b"apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: big}\nspec:\n  image: registry.example/big:v1\n  args:\n".to_vec();
    let line = b"    - xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
    while big.len() < 100 * 1024 * 1024 {
        big.extend_from_slice(line);
    }
    let size = big.len();
    let repo = repo_of(&with_file("daemons/big.yaml", big), "big");
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "daemons/big.yaml",
            problem: &format!("file is {size} bytes, more than the limit of 1048576"),
        },
    );
}

#[test]
fn more_than_a_thousand_documents_in_one_file_are_refused() {
    let mut text = String::new();
    for i in 0..1001 {
        text.push_str(&format!("---\napiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: d{i}}}\nspec: {{image: registry.example/d:v1}}\n"));
    }
    let repo = repo_of(&with_file("daemons/many.yaml", text.into_bytes()), "many");
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "daemons/many.yaml:",
            problem: "more than 1000 documents in one file",
        },
    );
}

/// A daemon of about 900 KB (under the file limit) whose env is copied into every
/// DaemonSet it renders to.
fn fat_daemon(name: &str) -> Vec<u8> {
    let mut t = format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: {name}}}\nspec:\n  image: registry.example/fat:v1\n  env:\n"
    );
    for i in 0..900 {
        t.push_str(&format!("    VAR_{i}: \"{}\"\n", "x".repeat(980)));
    }
    t.into_bytes()
}

#[test]
fn fleet_files_past_the_total_size_limit_are_refused() {
    let mut files = base();
    for i in 0..40 {
        files.insert(
            format!("daemons/fat-{i}.yaml"),
            fat_daemon(&format!("fat-{i}")),
        );
    }
    let repo = repo_of(&files, "fat");
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "the fleet's YAML files hold",
            problem: "more than the limit of 33554432",
        },
    );
}

#[test]
fn rendered_size_past_the_limit_is_refused() {
    // 80 groups × one 900 KB daemon = 72 MB of manifests; 64 MiB is the limit.
    let mut files = base();
    let names: Vec<String> = (0..80).map(|i| format!("g{i}")).collect();
    files.insert(
        "drover.yaml".into(),
        format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: hostile}}\nspec:\n  namespace: hostile\n  groups: [{}]\n",
            names.join(", ")
        )
        .into_bytes(),
    );
    files.retain(|p, _| !p.starts_with("groups/") && !p.starts_with("daemons/"));
    let mut groups = String::new();
    for g in &names {
        groups.push_str(&format!("---\napiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {g}}}\nspec:\n  selector:\n    matchLabels: {{drover.test/hostile-group: {g}}}\n"));
    }
    files.insert("groups/all.yaml".into(), groups.into_bytes());
    files.insert("daemons/fat.yaml".into(), fat_daemon("fat"));
    let repo = repo_of(&files, "fat render");
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "daemons/fat.yaml",
            problem: "more than the limit of 67108864",
        },
    );
}

#[test]
fn ten_thousand_groups_are_refused_in_bounded_time() {
    let names: Vec<String> = (0..10_000).map(|i| format!("g{i}")).collect();
    let mut files = Files::new();
    files.insert(
        "drover.yaml".into(),
        format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: hostile}}\nspec:\n  namespace: hostile\n  groups: [{}]\n",
            names.join(", ")
        )
        .into_bytes(),
    );
    for (part, chunk) in names.chunks(1000).enumerate() {
        let mut text = String::new();
        for g in chunk {
            text.push_str(&format!("---\napiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {{name: {g}}}\nspec:\n  selector:\n    matchLabels: {{drover.test/hostile-group: {g}, zone: a}}\n"));
        }
        files.insert(format!("groups/part-{part}.yaml"), text.into_bytes());
    }
    files.insert(
        "daemons/agent.yaml".into(),
        base()["daemons/agent.yaml"].clone(),
    );
    let repo = repo_of(&files, "10k groups");
    let started = Instant::now();
    assert_refused(
        repo.path(),
        true,
        Expect {
            file: "drover.yaml:6:",
            problem: "spec.groups: 10000 groups, more than the limit of 256",
        },
    );
    // Five runs of drover (debug build) on 10,000 groups.
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn symlink_out_of_the_tree_in_a_commit_is_refused() {
    let repo = repo_with_entry(b"passwd.yaml", "120000", b"../../../../etc/passwd");
    assert_refused(
        repo.path(),
        false,
        Expect {
            file: "daemons/passwd.yaml",
            problem: "is a symbolic link; drover does not follow links",
        },
    );
}

#[test]
fn symlink_inside_the_tree_in_a_commit_is_refused() {
    let repo = repo_with_entry(b"copy.yaml", "120000", b"agent.yaml");
    assert_refused(
        repo.path(),
        false,
        Expect {
            file: "daemons/copy.yaml",
            problem: "is a symbolic link",
        },
    );
}

#[test]
fn symlinks_in_the_working_tree_are_refused() {
    for (name, target) in [
        ("passwd.yaml", PathBuf::from("/etc/passwd")),
        ("copy.yaml", PathBuf::from("agent.yaml")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for (p, b) in base() {
            let full = dir.path().join(&p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, b).unwrap();
        }
        std::os::unix::fs::symlink(&target, dir.path().join("daemons").join(name)).unwrap();
        // A plain directory (no git): read as a working tree.
        assert_refused(
            dir.path(),
            false,
            Expect {
                file: &format!("daemons/{name}"),
                problem: "is a symbolic link",
            },
        );
    }
}

#[test]
fn submodule_entry_is_refused() {
    let repo = repo_with_entry(
        b"vendor",
        "160000",
        b"0123456789abcdef0123456789abcdef01234567",
    );
    assert_refused(
        repo.path(),
        false,
        Expect {
            file: "daemons/vendor",
            problem: "is a git submodule",
        },
    );
}

#[test]
fn dotdot_tree_entry_is_refused() {
    let repo = repo_with_entry(b"..", "100644", b"kind: Daemon\n");
    assert_refused(
        repo.path(),
        false,
        Expect {
            file: "daemons/..",
            problem: "unsafe path component `..`",
        },
    );
}

#[test]
fn absolute_path_tree_entry_is_refused() {
    let repo = repo_with_entry(b"/etc/cron.d/evil.yaml", "100644", b"kind: Daemon\n");
    assert_refused(
        repo.path(),
        false,
        Expect {
            file: "daemons//etc/cron.d/evil.yaml",
            problem: "unsafe path component `/etc/cron.d/evil.yaml`",
        },
    );
}

#[test]
fn tree_entry_with_escape_sequences_is_refused_and_printed_escaped() {
    let repo = repo_with_entry(b"\x1b[2J\x1b]0;pwned\x07.yaml", "100644", b"kind: Daemon\n");
    assert_refused(
        repo.path(),
        false,
        Expect {
            file: "daemons/\\u{1b}[2J\\u{1b}]0;pwned\\u{7}.yaml",
            problem: "unsafe path component",
        },
    );
}

// ---- cases that reach the cluster ---------------------------------------------------

/// The base fleet in a test's own namespace (fleet name = namespace).
fn base_in(ns: &str) -> Files {
    let mut f = base();
    let fleet = String::from_utf8(f["drover.yaml"].clone())
        .unwrap()
        .replace("{name: hostile}", &format!("{{name: {ns}}}"))
        .replace("namespace: hostile", &format!("namespace: {ns}"));
    f.insert("drover.yaml".into(), fleet.into_bytes());
    f
}

#[test]
fn commit_deleting_every_daemon_is_refused_by_the_mass_delete_guard() {
    let env = TestEnv::new("hostile-mass-delete");
    let repo = repo_of(&base_in(&env.ns), "agent v1");
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);
    let before = env.get_json(&["daemonsets"])["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, 2);

    repo.remove("daemons/agent.yaml");
    repo.commit("\x1b[2Jremove every daemon");
    // apply could write here: the recording proxy in front of the testbed.
    let proxy = env.tb.api_proxy();
    let r = repo.path_str();
    for args in [
        vec!["apply", "--repo", &r, "--yes"],
        vec!["plan", "--repo", &r],
    ] {
        let run = drover_via(&proxy, &args);
        if args[0] == "plan" {
            // plan shows what the commit would do (it writes nothing); the guard is
            // apply's.
            run.expect_code(2);
            continue;
        }
        assert_refused_run(
            &run,
            &Expect {
                file: "renders no DaemonSets while 2 exist",
                problem: "pass --allow-mass-delete if this is intended; nothing was applied",
            },
        );
    }
    let writes = proxy.writes();
    assert!(writes.is_empty(), "{writes:#?}");
    let after = env.get_json(&["daemonsets"])["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, 2, "the guard let a delete through");
}

#[test]
fn escape_sequences_in_commit_messages_and_authors_never_reach_the_terminal() {
    let env = TestEnv::new("hostile-ansi-commit");
    let repo = Repo::new();
    for (p, b) in &base_in(&env.ns) {
        repo.write(p, b);
    }
    let msg = "\x1b]0;pwned\x07\x1b[2J\x1b[1Adeploy agent\n\n\x1b[8mhidden body\x1b[0m\n";
    repo.commit_as("\x1b[31mEve\x1b[0m", "eve\x07@example.com", msg);
    let r = repo.path_str();
    // These runs write on purpose (apply, sync): straight to the testbed, no proxy.
    let run = |args: &[&str]| env.drover(args).deadline(Duration::from_secs(60)).run();
    let runs = [
        vec!["-vvv", "validate", "--repo", &r],
        vec!["-vvv", "render", "--repo", &r],
        vec!["-vvv", "plan", "--repo", &r, "--format", "text"],
        vec!["-vvv", "plan", "--repo", &r, "--format", "json"],
        vec!["-vvv", "plan", "--repo", &r, "--format", "markdown"],
        vec![
            "-vvv", "diff", "--repo", &r, "--base", "HEAD", "--head", "HEAD",
        ],
        vec![
            "-vvv",
            "--log-format",
            "json",
            "apply",
            "--repo",
            &r,
            "--yes",
        ],
    ];
    for args in runs {
        let run = run(&args);
        assert!(
            run.code == 0 || run.code == 2,
            "{}\n{}",
            run.cmd,
            run.stderr
        );
        for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains('\x1b') && !text.contains('\x07'),
                "{}: raw escape on {what}:\n{text}",
                run.cmd
            );
        }
    }
    // The reconciler records the commit (message, author) in its audit trail, and
    // `drover history` prints it: escaped there too.
    let state = tempfile::tempdir().unwrap();
    let st = state.path().display().to_string();
    let branch = repo.branch();
    let runs = [
        vec![
            "-vvv",
            "sync",
            "--once",
            "--repo",
            &r,
            "--branch",
            &branch,
            "--state-dir",
            &st,
        ],
        vec!["history", "--state-dir", &st],
        vec!["history", "--state-dir", &st, "--format", "json"],
    ];
    for args in runs {
        let run = run(&args);
        run.expect_code(0);
        for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains('\x1b') && !text.contains('\x07'),
                "{}: raw escape on {what}:\n{text}",
                run.cmd
            );
        }
        if args[0] == "history" && args.len() == 3 {
            assert!(run.stdout.contains("\\u{1b}"), "{}", run.stdout);
        }
    }
}
