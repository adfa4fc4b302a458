//! The one harness of drover's integration tests: each thing a test needs is one
//! function or type here.
//!
//! - [`Testbed`]: the testbed instance (attached through `DROVER_TESTBED_KUBECONFIG`
//!   or started), and [`TestEnv`]: a namespace and node labels per test, dumped when
//!   the test fails;
//! - [`drover`]: the drover binary with a clean environment, and [`Run`], what a
//!   command did (reported with its command line, output and fixture tree);
//! - [`ApiProxy`]: the recording, fault-injecting API proxy, or its offline twin for
//!   commands that must not reach a cluster at all;
//! - [`Repo`], [`Remote`], [`FleetYaml`] and [`daemon`]: fleet repositories;
//! - [`AuditLog`]: the API server's audit log, for what was written and in which
//!   order; [`Watch`]: a watch on objects, for state as events.

pub mod audit;
pub mod proxy;
pub mod repo;
pub mod run;
pub mod testbed;
pub mod watch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use audit::AuditEvent;
pub use proxy::{ApiProxy, Faults};
pub use repo::{FleetYaml, NEVER_READY, Remote, Repo, daemon};
pub use run::{Cmd, Process, Run, drover};
pub use testbed::{TestEnv, Testbed};
pub use watch::WatchEvent;

/// The variable a debug drover reads its clock from (`shell/clock.rs`).
pub const TEST_CLOCK: &str = "DROVER_TEST_CLOCK_FILE";

/// A clock file the drover processes of a test read.
pub struct TestClock {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl TestClock {
    pub fn at(instant: &str) -> TestClock {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        std::fs::write(&path, instant).unwrap();
        TestClock { _dir: dir, path }
    }

    pub fn set(&self, instant: &str) {
        // Written whole, then renamed: a reader never sees half a line.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, instant).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// The repository root.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A path under the repository root.
pub fn root(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

/// Polls `f` every half second until it holds; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// `drover -v sync --once` of `remote` with state in `state`: one iteration, with
/// the info lines a test waits for.
pub fn sync_once_args<'a>(remote: &'a repo::Remote, state: &'a Path) -> Vec<&'a str> {
    vec![
        "-v",
        "sync",
        "--repo",
        remote.path().to_str().expect("a UTF-8 path"),
        "--state-dir",
        state.to_str().expect("a UTF-8 path"),
        "--once",
    ]
}

/// Starts `sync --once -v` and kills it with SIGKILL at the first stderr line that
/// holds every one of `needles`.
pub fn kill_sync_once_at(env: &TestEnv, remote: &repo::Remote, state: &Path, needles: &[&str]) {
    let mut sync = env
        .drover(&[
            "sync",
            "--repo",
            &remote.path_str(),
            "--state-dir",
            state.to_str().expect("a UTF-8 path"),
            "--once",
            "-v",
        ])
        .spawn_lines();
    sync.wait_for_line(needles, Duration::from_secs(300));
    sync.kill();
}

/// The records of a state directory's audit trail (`audit.jsonl`), oldest first.
pub fn records(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit record"))
        .collect()
}
