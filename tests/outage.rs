//! The API server stopped for 20 s in the middle of a staged rollout: `drover sync`
//! keeps its cursor, backs off, and finishes the same commit afterwards without
//! skipping a stage. Runs on a testbed instance of its own, since it stops the API
//! server.

mod cluster_support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{FleetRepo, ROOT, Run, daemon, staged_fleet};

struct Instance {
    name: String,
    dir: std::path::PathBuf,
}

impl Instance {
    /// An instance of its own for one test (`test` tells two tests of this binary
    /// apart: they run at once).
    fn up(test: &str) -> Instance {
        let name = format!("{test}-{}", std::process::id());
        let out = Command::new(format!("{ROOT}/scripts/testbed"))
            .args(["up", "--name", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "testbed up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = std::env::temp_dir().join(format!("drover-testbed-{name}"));
        Instance { name, dir }
    }

    fn testbed(&self, args: &[&str]) -> Run {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--name", &self.name]);
        let o = Command::new(format!("{ROOT}/scripts/testbed"))
            .args(&a)
            .output()
            .unwrap();
        let r = Run {
            cmd: format!("scripts/testbed {}", a.join(" ")),
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        r.expect_code(0);
        r
    }

    fn kubectl(&self, args: &[&str]) -> Run {
        let o = Command::new(self.dir.join("bin/kubectl"))
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .args(args)
            .output()
            .unwrap();
        Run {
            cmd: format!("kubectl {}", args.join(" ")),
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{}",
                self.kubectl(&["get", "ds,pods", "-A", "-o", "wide"]).stdout
            );
            // The control plane's own view of the stall: what the DaemonSet
            // controller and KWOK (the kubelets) did after the restart.
            for (component, lines) in [("kube-controller-manager", 60), ("kwok", 60)] {
                let log = std::fs::read_to_string(self.dir.join(format!("logs/{component}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(lines).collect();
                eprintln!("--- last {lines} lines of {component}.log ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
            let keep = Path::new(ROOT).join("target/outage-logs");
            let _ = std::fs::create_dir_all(&keep);
            let _ = Command::new("cp")
                .arg("-a")
                .arg(self.dir.join("logs"))
                .arg(&keep)
                .status();
        }
        let _ = Command::new(format!("{ROOT}/scripts/testbed"))
            .args(["down", "--name", &self.name])
            .output();
    }
}

fn records(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn api_server_stopped_for_20s_mid_rollout_then_the_rollout_completes_without_skipping_a_stage() {
    let tb = Instance::up("outage");
    let ns = "outage";
    tb.testbed(&[
        "nodes",
        "3",
        "--prefix",
        "canary",
        "--labels",
        &format!("drover.test/ns={ns},role=canary"),
    ]);
    tb.testbed(&[
        "nodes",
        "3",
        "--prefix",
        "blue",
        "--labels",
        &format!("drover.test/ns={ns},role=blue"),
    ]);
    tb.testbed(&[
        "nodes",
        "3",
        "--prefix",
        "green",
        "--labels",
        &format!("drover.test/ns={ns}"),
    ]);
    tb.kubectl(&["create", "namespace", ns]).expect_code(0);

    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    // After an outage the control plane itself is slow to come back: client-go's
    // reflectors back off while the API server is gone (to about 30 s, jittered up
    // to 60 s), so the DaemonSet controller, the scheduler and KWOK each resume
    // their watches up to a minute late, one after another. Measured on the
    // testbed: the blue stage's pods were created 40 s after the restart and not
    // bound 30 s later. The blue stage gets a timeout that covers that recovery;
    // 90 s halted the rollout in CI, as drover should when a stage overruns.
    let fleet = staged_fleet(ns, "halt", "120s")
        .replace("bake: 2s, timeout: 90s", "bake: 2s, timeout: 420s");
    assert!(fleet.contains("timeout: 420s"));
    work.write("drover.yaml", &fleet);
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("v1");
    work.push(remote.path());
    let state = tempfile::tempdir().unwrap();
    let drover = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
        c.env("KUBECONFIG", tb.dir.join("kubeconfig"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .args([
                "sync",
                "--repo",
                remote.path().to_str().unwrap(),
                "--state-dir",
                state.path().to_str().unwrap(),
            ])
            .args(extra);
        c
    };
    let o = drover(&["--once"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v2", ""),
    );
    let sha = work.commit("v2");
    work.push(remote.path());
    let mut child = drover(&["--interval", "2s", "-v"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("drover sync printed no blue stage start");
        log.push(line.clone());
        if line.contains("stage started stage=\"blue\"") {
            break;
        }
    }
    tb.testbed(&["stop-apiserver"]);
    std::thread::sleep(Duration::from_secs(20));
    tb.testbed(&["start-apiserver"]);

    let deadline = Instant::now() + Duration::from_secs(480);
    while records(state.path()).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no record for the commit after the outage:\n{}",
            log.join("\n")
        );
        while let Ok(l) = rx.try_recv() {
            log.push(l);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    let recs = records(state.path());
    let last = &recs[1];
    assert_eq!(last["commit"]["sha"], sha.as_str());
    assert_eq!(last["outcome"], "applied", "{last:#}");
    let stages: Vec<&str> = last["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["canary", "blue", "green"], "{last:#}");
    assert!(
        last["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["result"] == "succeeded")
    );
    let r = tb.kubectl(&["-n", ns, "get", "ds", "-o", "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image} {.status.updatedNumberScheduled}/{.status.desiredNumberScheduled}{\"\\n\"}{end}"]);
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("registry.example/agent:v2 3/3"))
            .count(),
        3,
        "{}",
        r.stdout
    );
}

/// API audit events that wrote (PATCH/POST) one DaemonSet, with their times.
fn writes_of(tb: &Instance, name: &str) -> Vec<String> {
    std::fs::read_to_string(tb.dir.join("logs/audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && matches!(e["verb"].as_str(), Some("patch" | "create" | "update"))
                && e["objectRef"]["resource"] == "daemonsets"
                && e["objectRef"]["name"] == name
                && !e["requestURI"].as_str().unwrap_or("").contains("dryRun")
        })
        .filter_map(|e| e["requestReceivedTimestamp"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn api_server_gone_longer_than_the_bake_is_never_counted_as_baked() {
    // Issue 15's hand-verified failure: a 30 s canary bake, the API server stopped a
    // few seconds into it for 40 s. The old gate recorded `succeeded` while nobody
    // watched. Now the bake clock stops while unobserved, so blue may start only once
    // the canary has been seen healthy for 30 s after the API server came back.
    let tb = Instance::up("bakeout");
    let ns = "bake-outage";
    for (prefix, labels) in [
        ("canary", format!("drover.test/ns={ns},role=canary")),
        ("blue", format!("drover.test/ns={ns},role=blue")),
        ("green", format!("drover.test/ns={ns}")),
    ] {
        tb.testbed(&["nodes", "2", "--prefix", prefix, "--labels", &labels]);
    }
    tb.kubectl(&["create", "namespace", ns]).expect_code(0);
    let work = FleetRepo::new();
    let remote = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(remote.path()).unwrap();
    let fleet = staged_fleet(ns, "halt", "120s")
        .replace("bake: 3s, timeout: 120s", "bake: 30s, timeout: 120s")
        .replace("bake: 2s, timeout: 90s", "bake: 2s, timeout: 420s");
    assert!(fleet.contains("bake: 30s"));
    work.write("drover.yaml", &fleet);
    work.write(
        "daemons/agent.yaml",
        &daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("v1");
    work.push(remote.path());
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .env("KUBECONFIG", tb.dir.join("kubeconfig"))
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .args([
            "sync",
            "--once",
            "-v",
            "--repo",
            remote.path().to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no canary bake:\n{}", log.join("\n")));
        log.push(line.clone());
        if line.contains("baking") && line.contains("stage=\"canary\"") {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    tb.testbed(&["stop-apiserver"]);
    std::thread::sleep(Duration::from_secs(40));
    tb.testbed(&["start-apiserver"]);
    let back = jiff::Timestamp::now();
    let status = child.wait().unwrap();
    log.extend(rx.try_iter());
    assert!(status.success(), "{}", log.join("\n"));

    let recs = records(state.path());
    let rec = recs
        .last()
        .unwrap_or_else(|| panic!("no record:\n{}", log.join("\n")));
    let canary = &rec["stages"][0];
    assert_eq!(canary["name"], "canary", "{rec:#}");
    let bake = canary["bake_seconds"].as_f64().unwrap();
    let unobserved = canary["unobserved_seconds"].as_f64().unwrap_or(0.0);
    if canary["result"] == "succeeded" {
        // Observed healthy for the whole bake, and the outage is on the record.
        assert!(bake >= 30.0, "{rec:#}");
        assert!(
            unobserved >= 35.0,
            "the 40 s outage is unobserved time: {rec:#}"
        );
        // Blue was first written at least a full bake after the API server returned.
        let blue = writes_of(&tb, "agent-blue");
        let first: jiff::Timestamp = blue.first().expect("blue written").parse().unwrap();
        let waited = first.duration_since(back).as_secs_f64();
        assert!(
            waited >= 29.0,
            "blue written {waited:.1} s after the API server came back:\n{rec:#}"
        );
    } else {
        // Or the stage failed as unobserved; then nothing after it started.
        assert_eq!(rec["outcome"], "halted", "{rec:#}");
        assert!(writes_of(&tb, "agent-blue").is_empty(), "{rec:#}");
    }
}
