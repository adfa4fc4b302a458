//! The testbed (a real control plane on loopback, `scripts/testbed`, testbed/README.md)
//! and each test's slice of it.
//!
//! One shared instance per test run: the one `DROVER_TESTBED_KUBECONFIG` points at
//! (CI starts it once), else the instance `cargo-test`, started or reused. A test that
//! stops its API server starts an instance of its own ([`Testbed::own`]). Every test
//! gets its own namespace (= fleet name) and node labels ([`TestEnv`]), so tests run
//! in parallel without seeing each other; when a test fails, its objects (and the
//! logs it registered) are dumped to stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::audit::AuditLog;
use super::proxy::ApiProxy;
use super::run::{Cmd, Run, drover};
use super::watch::Watch;
use super::{ROOT, wait_for};

/// A running testbed instance.
pub struct Testbed {
    pub name: String,
    pub dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// Started by [`Testbed::own`]: stopped (`down`) when dropped.
    owned: bool,
}

/// `KEY=VALUE` lines (as the instance's `env` file holds them, or `export KEY=VALUE`
/// as `scripts/testbed up` prints them), by key.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Testbed {
    /// The shared instance of this test run.
    pub fn shared() -> &'static Testbed {
        static TB: OnceLock<Testbed> = OnceLock::new();
        TB.get_or_init(|| match std::env::var_os("DROVER_TESTBED_KUBECONFIG") {
            Some(kc) => {
                let kubeconfig = PathBuf::from(kc);
                let dir = std::env::var_os("DROVER_TESTBED_DIR")
                    .map(PathBuf::from)
                    .or_else(|| kubeconfig.parent().map(Path::to_path_buf))
                    .expect("the testbed directory (DROVER_TESTBED_DIR)");
                Testbed::at(dir, Some(kubeconfig), false)
            }
            None => Testbed::up("cargo-test", false),
        })
    }

    /// An instance of its own, named `name`, for a test that stops its API server;
    /// `scripts/testbed down` when dropped.
    pub fn own(name: &str) -> Testbed {
        Testbed::up(name, true)
    }

    fn up(name: &str, owned: bool) -> Testbed {
        let r = Cmd::new(format!("{ROOT}/scripts/testbed"), "scripts/testbed")
            .args(&["up", "--name", name])
            .run();
        r.expect_code(0);
        let dir = parse_env(&r.stdout)
            .get("DROVER_TESTBED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("drover-testbed-{name}")));
        Testbed::at(dir, None, owned)
    }

    fn at(dir: PathBuf, kubeconfig: Option<PathBuf>, owned: bool) -> Testbed {
        let env = parse_env(&std::fs::read_to_string(dir.join("env")).unwrap_or_default());
        Testbed {
            name: env
                .get("DROVER_TESTBED_NAME")
                .cloned()
                .unwrap_or_else(|| "cargo-test".into()),
            kubeconfig: kubeconfig
                .or_else(|| env.get("KUBECONFIG").map(PathBuf::from))
                .unwrap_or_else(|| dir.join("kubeconfig")),
            kubectl: dir.join("bin/kubectl"),
            dir,
            owned,
        }
    }

    /// A value of the instance's `env` file (`DROVER_TESTBED_SERVER`, …).
    pub fn env_value(&self, key: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join("env")).expect("the testbed env file");
        parse_env(&text)
            .remove(key)
            .unwrap_or_else(|| panic!("{key} in {}/env", self.dir.display()))
    }

    /// `kubectl ARGS` as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_cmd(&self.kubeconfig, args).run()
    }

    /// `kubectl ARGS` with another kubeconfig (a ServiceAccount's).
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        self.kubectl_cmd(kubeconfig, args)
            .note("(as the kubeconfig's user)")
            .run()
    }

    /// `kubectl ARGS` as the admin, `input` on stdin (`apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Run {
        self.kubectl_cmd(&self.kubeconfig, args)
            .stdin(input)
            .note("<stdin>")
            .run()
    }

    fn kubectl_cmd(&self, kubeconfig: &Path, args: &[&str]) -> Cmd {
        Cmd::new(&self.kubectl, "kubectl")
            .kubeconfig(kubeconfig)
            .args(args)
    }

    /// `scripts/testbed ARGS --name <this instance>`; must succeed.
    pub fn script(&self, args: &[&str]) -> Run {
        let r = Cmd::new(format!("{ROOT}/scripts/testbed"), "scripts/testbed")
            .kubeconfig(&self.kubeconfig)
            .env("DROVER_TESTBED_DIR", &self.dir)
            .args(args)
            .args(&["--name", &self.name])
            .run();
        r.expect_code(0);
        r
    }

    /// drover as the admin.
    pub fn drover(&self, args: &[&str]) -> Cmd {
        drover(args).kubeconfig(&self.kubeconfig)
    }

    /// The API server's audit log.
    pub fn audit(&self) -> AuditLog {
        AuditLog {
            path: self.dir.join("logs/audit.log"),
        }
    }

    /// The recording, fault-injecting proxy in front of this instance's API server.
    pub fn api_proxy(&self) -> ApiProxy {
        ApiProxy::start(self)
    }

    /// Writes a kubeconfig at `dir/<namespace>-<name>.kubeconfig` authenticating as
    /// the ServiceAccount `namespace/name` with a fresh one-hour token (TokenRequest);
    /// its context's namespace is `context_ns`. A process using it shows up in the
    /// audit log as `system:serviceaccount:<namespace>:<name>`.
    pub fn sa_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        context_ns: &str,
        dir: &Path,
    ) -> PathBuf {
        let token = self.kubectl(&["create", "token", name, "-n", namespace, "--duration", "1h"]);
        token.expect_code(0);
        let server = self.env_value("DROVER_TESTBED_SERVER");
        let ca = self.env_value("DROVER_TESTBED_CA");
        let kc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: testbed\n    user: {name}\n    namespace: {context_ns}\ncurrent-context: {name}\n",
            token.stdout.trim()
        );
        let path = dir.join(format!("{namespace}-{name}.kubeconfig"));
        std::fs::write(&path, kc).expect("write the kubeconfig");
        path
    }

    /// The last `lines` lines of a component's log (`kube-apiserver`, `kwok`, …).
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join(format!("logs/{component}.log")))
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "{}",
                self.kubectl(&["get", "ds,pods", "-A", "-o", "wide"]).stdout
            );
            // The control plane's own view: what the DaemonSet controller and KWOK
            // (the kubelets) did last.
            for component in ["kube-controller-manager", "kwok"] {
                eprintln!(
                    "--- last 60 lines of {component}.log ---\n{}",
                    self.log_tail(component, 60)
                );
            }
            let keep = Path::new(ROOT).join(format!("target/{}-logs", self.name));
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(self.dir.join("logs"))
                .arg(&keep)
                .status();
            eprintln!("the instance's logs are kept in {}", keep.display());
        }
        let _ = Cmd::new(format!("{ROOT}/scripts/testbed"), "scripts/testbed")
            .args(&["down", "--name", &self.name])
            .run();
    }
}

/// Testbed tests share the machine; a test that measures time (a Lease takeover) or
/// runs a control plane of its own takes it alone, as it did when it was a test binary
/// of its own.
static MACHINE: RwLock<()> = RwLock::new(());

enum Turn {
    Shared(#[allow(dead_code, reason = "held, not read")] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code, reason = "held, not read")] RwLockWriteGuard<'static, ()>),
}

/// One test's slice of a testbed: a namespace (= fleet name) and the nodes labelled
/// `drover.test/ns=<namespace>`. Deleted when the test passes; dumped when it fails.
pub struct TestEnv<'tb> {
    pub ns: String,
    pub tb: &'tb Testbed,
    _turn: Turn,
}

impl TestEnv<'static> {
    /// A fresh namespace `t-<name>-<pid>` on the shared testbed; `name` is unique per
    /// test.
    pub fn new(name: &str) -> TestEnv<'static> {
        let turn = Turn::Shared(MACHINE.read().unwrap_or_else(PoisonError::into_inner));
        TestEnv::create(Testbed::shared(), name, turn)
    }

    /// [`TestEnv::new`] while no other testbed test runs.
    pub fn alone(name: &str) -> TestEnv<'static> {
        let turn = Turn::Alone(MACHINE.write().unwrap_or_else(PoisonError::into_inner));
        TestEnv::create(Testbed::shared(), name, turn)
    }
}

impl<'tb> TestEnv<'tb> {
    /// A namespace on `tb`, an instance of the test's own, while no other testbed test
    /// runs.
    pub fn alone_on(tb: &'tb Testbed, name: &str) -> TestEnv<'tb> {
        let turn = Turn::Alone(MACHINE.write().unwrap_or_else(PoisonError::into_inner));
        TestEnv::create(tb, name, turn)
    }

    fn create(tb: &'tb Testbed, name: &str, turn: Turn) -> TestEnv<'tb> {
        static NAMES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        assert!(
            NAMES.lock().unwrap().insert(name.to_string()),
            "two tests use the namespace name {name}"
        );
        let short: String = name
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
        let env = TestEnv {
            ns,
            tb,
            _turn: turn,
        };
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
        self.tb.kubectl(args)
    }

    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Run {
        self.tb.kubectl_stdin(args, input)
    }

    /// drover against the testbed as the admin (clean environment, `KUBECONFIG` set).
    /// Its cluster copy of the sync state is named after the test's namespace
    /// ([`TestEnv::state_name`]), so syncs of different tests whose anchors share a
    /// namespace never share one.
    pub fn drover(&self, args: &[&str]) -> Cmd {
        self.tb
            .drover(args)
            .env("DROVER_STATE_NAME", self.state_name())
    }

    /// `--state-name` of this test's syncs: the namespace's name.
    pub fn state_name(&self) -> &str {
        &self.ns
    }

    /// Creates `n` simulated nodes `<ns>-<prefix>-i` labelled `drover.test/ns=<ns>`
    /// and `labels`, and waits until they are Ready.
    pub fn nodes(&self, prefix: &str, n: usize, labels: &[(&str, &str)]) {
        let mut l = format!("drover.test/ns={}", self.ns);
        for (k, v) in labels {
            l.push_str(&format!(",{k}={v}"));
        }
        self.tb.script(&[
            "nodes",
            &n.to_string(),
            "--prefix",
            &format!("{}-{prefix}", self.ns),
            "--labels",
            &l,
        ]);
    }

    /// `kubectl -n <ns> get ARGS -o json`.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        get_json(self.tb, &self.ns, args)
    }

    /// Images of the namespace's DaemonSets, by name.
    pub fn images(&self) -> BTreeMap<String, String> {
        images_in(self.tb, &self.ns)
    }

    /// `(desired, updated, available)` of a DaemonSet's status.
    pub fn counts(&self, daemonset: &str) -> (i64, i64, i64) {
        let d = self.get_json(&["daemonset", daemonset]);
        let s = &d["status"];
        (
            s["desiredNumberScheduled"].as_i64().unwrap_or(-1),
            s["updatedNumberScheduled"].as_i64().unwrap_or(-1),
            s["numberAvailable"].as_i64().unwrap_or(-1),
        )
    }

    /// A watch on `resource` in the namespace.
    pub fn watch(&self, resource: &str) -> Watch {
        Watch::start(self.tb, &self.ns, resource)
    }

    /// Polls `f` until it holds; panics after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, f: impl FnMut() -> bool) {
        wait_for(what, limit, f);
    }
}

impl Drop for TestEnv<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let r = self.kubectl(&["-n", &self.ns, "get", "daemonsets,pods", "-o", "wide"]);
            eprintln!(
                "=== objects in {} at failure\n{}{}",
                self.ns, r.stdout, r.stderr
            );
            let r = self.kubectl(&["-n", &self.ns, "get", "daemonsets", "-o", "yaml"]);
            eprintln!("=== daemonsets\n{}", r.stdout);
            let r = self.kubectl(&["get", "nodes", "-l", &format!("drover.test/ns={}", self.ns)]);
            eprintln!("=== nodes\n{}", r.stdout);
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

/// `kubectl -n NS get ARGS -o json`, parsed; must succeed.
pub fn get_json(tb: &Testbed, ns: &str, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["-n", ns, "get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let r = tb.kubectl(&a);
    r.expect_code(0);
    serde_json::from_str(&r.stdout).expect("kubectl json")
}

/// Images of the DaemonSets in `ns` (their first container's), by name.
pub fn images_in(tb: &Testbed, ns: &str) -> BTreeMap<String, String> {
    get_json(tb, ns, &["daemonsets"])["items"]
        .as_array()
        .expect("a list")
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
