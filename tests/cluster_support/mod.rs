//! Support for tests against the real local control plane (`scripts/testbed`).
//!
//! One testbed per test run: attach to `DROVER_TESTBED_KUBECONFIG` when set (CI
//! starts it once), else start or reuse the instance `cargo-test`. Every test gets
//! its own namespace, fleet name and node labels, so tests run in parallel without
//! seeing each other. On a panic, the test's objects are dumped to stderr.
#![allow(dead_code)] // reason: each test binary uses a different part of the support

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The running testbed.
pub struct Testbed {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub dir: PathBuf,
}

fn env_file_value(dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("env")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Attaches to (or starts) the shared testbed.
pub fn testbed() -> &'static Testbed {
    static TB: OnceLock<Testbed> = OnceLock::new();
    TB.get_or_init(|| {
        if let Ok(kc) = std::env::var("DROVER_TESTBED_KUBECONFIG") {
            let dir = PathBuf::from(
                std::env::var("DROVER_TESTBED_DIR")
                    .expect("DROVER_TESTBED_DIR with DROVER_TESTBED_KUBECONFIG"),
            );
            return Testbed {
                kubeconfig: PathBuf::from(kc),
                kubectl: dir.join("bin/kubectl"),
                dir,
            };
        }
        let out = Command::new(format!("{ROOT}/scripts/testbed"))
            .args(["up", "--name", "cargo-test"])
            .output()
            .expect("run scripts/testbed up");
        assert!(
            out.status.success(),
            "scripts/testbed up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = std::env::temp_dir().join("drover-testbed-cargo-test");
        let kc = env_file_value(&dir, "KUBECONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("kubeconfig"));
        Testbed {
            kubeconfig: kc,
            kubectl: dir.join("bin/kubectl"),
            dir,
        }
    })
}

/// Output of a command, with everything needed to understand a failure.
pub struct Run {
    pub cmd: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(cmd: String, o: Output) -> Run {
        Run {
            cmd,
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, printing the command and its output otherwise.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "command: {}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        );
        self
    }
}

/// One test's slice of the cluster: a namespace (= fleet name) and its nodes.
pub struct TestEnv {
    pub ns: String,
    pub tb: &'static Testbed,
}

impl TestEnv {
    /// A fresh namespace named after the test.
    pub fn new(test: &str) -> TestEnv {
        let tb = testbed();
        let short: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(30)
            .collect();
        let ns = format!(
            "t-{}-{}",
            short.trim_matches('-'),
            std::process::id() % 100_000
        );
        let env = TestEnv { ns, tb };
        env.kubectl(&[
            "delete",
            "namespace",
            &env.ns,
            "--ignore-not-found",
            "--wait=true",
        ]);
        env.kubectl(&["create", "namespace", &env.ns])
            .expect_code(0);
        env
    }

    pub fn kubectl(&self, args: &[&str]) -> Run {
        let o = Command::new(&self.tb.kubectl)
            .env("KUBECONFIG", &self.tb.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl");
        Run::from(format!("kubectl {}", args.join(" ")), o)
    }

    /// `kubectl apply -f -` of a manifest string.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write as _;
        let mut child = Command::new(&self.tb.kubectl)
            .env("KUBECONFIG", &self.tb.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        Run::from(format!("kubectl {} <stdin>", args.join(" ")), o)
    }

    /// A `drover` command against the testbed, to spawn.
    pub fn drover_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
        c.env("KUBECONFIG", &self.tb.kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .args(args);
        c
    }

    /// Runs the drover binary against the testbed.
    pub fn drover(&self, args: &[&str]) -> Run {
        let o = Command::new(env!("CARGO_BIN_EXE_drover"))
            .env("KUBECONFIG", &self.tb.kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .expect("run drover");
        Run::from(format!("drover {}", args.join(" ")), o)
    }

    /// Creates `n` simulated nodes `<ns>-<prefix>-i` labelled for this test.
    pub fn nodes(&self, prefix: &str, n: usize, labels: &[(&str, &str)]) {
        let mut l = format!("drover.test/ns={}", self.ns);
        for (k, v) in labels {
            l.push_str(&format!(",{k}={v}"));
        }
        let o = Command::new(format!("{ROOT}/scripts/testbed"))
            .env("KUBECONFIG", &self.tb.kubeconfig)
            .env("DROVER_TESTBED_DIR", &self.tb.dir)
            .args([
                "nodes",
                &n.to_string(),
                "--name",
                &self.instance_name(),
                "--prefix",
                &format!("{}-{prefix}", self.ns),
                "--labels",
                &l,
            ])
            .output()
            .expect("run scripts/testbed nodes");
        Run::from("scripts/testbed nodes".into(), o).expect_code(0);
    }

    fn instance_name(&self) -> String {
        env_file_value(&self.tb.dir, "DROVER_TESTBED_NAME").unwrap_or_else(|| "cargo-test".into())
    }

    /// A JSON object or list from `kubectl get -o json`.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-n", self.ns.as_str(), "get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let r = self.kubectl(&a);
        r.expect_code(0);
        serde_json::from_str(&r.stdout).expect("kubectl json")
    }

    /// Polls `f` until it returns true or `limit` passes; panics with `what`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("timed out after {limit:?} waiting for {what}");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let r = self.kubectl(&["-n", &self.ns, "get", "daemonsets,pods", "-o", "wide"]);
            eprintln!(
                "=== objects in {} at failure\n{}{}",
                self.ns, r.stdout, r.stderr
            );
            let r = self.kubectl(&["-n", &self.ns, "get", "daemonsets", "-o", "yaml"]);
            eprintln!("=== daemonsets\n{}", r.stdout);
        } else {
            self.kubectl(&["delete", "namespace", &self.ns, "--wait=false"]);
            self.kubectl(&[
                "delete",
                "nodes",
                "-l",
                &format!("drover.test/ns={}", self.ns),
                "--wait=false",
            ]);
        }
    }
}

/// A git repository in a temp dir, written and committed with git2.
pub struct FleetRepo {
    pub dir: tempfile::TempDir,
    pub repo: git2::Repository,
}

impl FleetRepo {
    pub fn new() -> FleetRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init(dir.path()).expect("git init");
        FleetRepo { dir, repo }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> String {
        self.dir.path().display().to_string()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.path().join(rel)).unwrap();
    }

    /// Pushes HEAD to `bare` as its branch `main`.
    pub fn push(&self, bare: &Path) {
        let mut remote = self.repo.remote_anonymous(bare.to_str().unwrap()).unwrap();
        let head = self.repo.head().unwrap();
        let name = head.name().unwrap().to_string();
        remote
            .push(&[format!("+{name}:refs/heads/main")], None)
            .unwrap();
    }

    /// Commits the whole working tree; returns the sha.
    pub fn commit(&self, message: &str) -> String {
        let mut index = self.repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("Test Operator", "ops@example.com").unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = self
            .repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap();
        oid.to_string()
    }
}

/// A three-stage fleet (canary → blue → green) isolated to one test's nodes.
pub fn staged_fleet(ns: &str, on_failure: &str, canary_timeout: &str) -> String {
    format!(
        r#"apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {{name: {ns}}}
spec:
  namespace: {ns}
  groups: [canary, blue, green]
  stages:
    - {{name: canary, groups: [canary], bake: 3s, timeout: {canary_timeout}}}
    - {{name: blue, groups: [blue], bake: 2s, timeout: 90s}}
    - {{name: green, groups: [green], timeout: 90s}}
  defaults:
    rollout: {{maxUnavailable: "50%", maxSurge: 0, minReadySeconds: 1}}
  prune: {{enabled: true, maxDeleteFraction: 0.5}}
  onFailure: {on_failure}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {{name: canary}}
spec:
  selector:
    matchLabels: {{drover.test/ns: {ns}, role: canary}}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {{name: blue}}
spec:
  selector:
    matchLabels: {{drover.test/ns: {ns}, role: blue}}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {{name: green}}
spec:
  selector:
    matchLabels: {{drover.test/ns: {ns}}}
"#
    )
}

/// A daemon document.
pub fn daemon(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n{extra}"
    )
}

/// Images of a namespace's DaemonSets, by name.
pub fn images(env: &TestEnv) -> std::collections::BTreeMap<String, String> {
    let list = env.get_json(&["daemonsets"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}
