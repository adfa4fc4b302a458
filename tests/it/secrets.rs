//! A secret-looking env value planted in a fleet never shows up in drover's output:
//! not in any plan or diff format, not in validate/apply output, not in a log line
//! at any level (`-vvv`, `RUST_LOG=trace`, text and JSON logs).
//!
//! `drover render` is the exception by design: it prints the manifests that are
//! applied, values included (its output is what goes to the cluster).

use crate::harness::{FleetYaml, Repo, Run, TestEnv, daemon};

const SECRETS: [&str; 3] = [
    "PLANTED-s3cr3t-one",
    "PLANTED-s3cr3t-two",
    "PLANTED-s3cr3t-three",
];

/// drover against the testbed with `vars` (`RUST_LOG`, …) as its only extra
/// environment.
fn run(env: &TestEnv, vars: &[(&str, &str)], args: &[&str]) -> Run {
    env.drover(args).envs(vars).run()
}

fn assert_no_secret(r: &Run) {
    for s in SECRETS {
        for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains(s),
                "`{s}` leaked on {what} of {}:\n{text}",
                r.cmd
            );
        }
    }
}

fn fleet(ns: &str) -> String {
    FleetYaml::one_group(ns, "all-nodes", None)
        .rollout("{maxUnavailable: 1, maxSurge: 0, minReadySeconds: 0}")
        .yaml()
}

fn agent(token: &str, password: &str) -> String {
    daemon(
        "agent",
        "registry.example/agent:v1",
        &format!(
            "  env:\n    API_TOKEN: \"{token}\"\n    LOG_LEVEL: info\n    DB_PASSWORD: \"{password}\"\n"
        ),
    )
}

#[test]
fn a_planted_secret_appears_in_no_output_format_and_no_log_line() {
    let env = TestEnv::new("secrets");
    env.nodes("n", 1, &[]);
    let repo = Repo::new();
    repo.write("drover.yaml", fleet(&env.ns));
    repo.write("daemons/agent.yaml", agent(SECRETS[0], SECRETS[2]));
    repo.commit("agent with a token");
    let r = repo.path_str();
    let levels: [&[(&str, &str)]; 4] = [
        &[],
        &[("RUST_LOG", "trace")],
        &[("RUST_LOG", "trace,drover=trace")],
        &[("RUST_LOG", "debug")],
    ];
    // First apply: a create, whose plan shows the whole object.
    for fmt in ["text", "json", "markdown"] {
        for vars in levels {
            let p = run(&env, vars, &["-vvv", "plan", "--repo", &r, "--format", fmt]);
            assert_eq!(p.code, 2, "{}\n{}", p.cmd, p.stderr);
            assert_no_secret(&p);
        }
    }
    let a = run(
        &env,
        &[("RUST_LOG", "trace")],
        &[
            "-vvv",
            "--log-format",
            "json",
            "apply",
            "--repo",
            &r,
            "--yes",
        ],
    );
    a.expect_code(0);
    assert_no_secret(&a);

    // An update that changes the secret: the diff must say it changed, not show it.
    repo.write("daemons/agent.yaml", agent(SECRETS[1], SECRETS[2]));
    repo.commit("rotate the token");
    for vars in levels {
        for fmt in ["text", "json", "markdown"] {
            let p = run(&env, vars, &["-vvv", "plan", "--repo", &r, "--format", fmt]);
            assert_eq!(p.code, 2, "{}\n{}", p.cmd, p.stderr);
            assert_no_secret(&p);
            let d = run(
                &env,
                vars,
                &[
                    "-vvv", "diff", "--repo", &r, "--base", "HEAD~1", "--head", "HEAD", "--format",
                    fmt,
                ],
            );
            assert_eq!(d.code, 2, "{}\n{}", d.cmd, d.stderr);
            assert_no_secret(&d);
            if fmt == "text" {
                assert!(
                    d.stdout.contains("API_TOKEN") && d.stdout.contains("masked"),
                    "the diff does not say the token changed:\n{}",
                    d.stdout
                );
            }
        }
        let v = run(&env, vars, &["-vvv", "validate", "--repo", &r]);
        v.expect_code(0);
        assert_no_secret(&v);
    }
    for log_format in ["text", "json"] {
        let a = run(
            &env,
            &[("RUST_LOG", "trace")],
            &[
                "-vvv",
                "--log-format",
                log_format,
                "apply",
                "--repo",
                &r,
                "--yes",
            ],
        );
        assert!(a.code == 0, "{}\n{}\n{}", a.cmd, a.stdout, a.stderr);
        assert_no_secret(&a);
    }
    // The value did reach the cluster: the test planted what it thinks it planted.
    let ds = env.get_json(&["daemonset", "agent-all-nodes"]);
    assert!(ds.to_string().contains(SECRETS[1]));

    // The reconciler: `drover sync --once` acts on a new commit and writes an audit
    // record; neither the record, `drover history`, nor sync's logs hold the value.
    repo.write("daemons/agent.yaml", agent(SECRETS[0], SECRETS[2]));
    repo.commit("rotate the token back");
    let state = tempfile::tempdir().unwrap();
    let st = state.path().display().to_string();
    let branch = repo.branch();
    for log_format in ["text", "json"] {
        let s = run(
            &env,
            &[("RUST_LOG", "trace")],
            &[
                "-vvv",
                "--log-format",
                log_format,
                "sync",
                "--once",
                "--repo",
                &r,
                "--branch",
                &branch,
                "--state-dir",
                &st,
            ],
        );
        assert!(s.code == 0, "{}\n{}\n{}", s.cmd, s.stdout, s.stderr);
        assert_no_secret(&s);
    }
    let audit = std::fs::read_to_string(state.path().join("audit.jsonl")).expect("audit.jsonl");
    assert!(!audit.trim().is_empty(), "no audit record written");
    for s in SECRETS {
        assert!(!audit.contains(s), "`{s}` in the audit record:\n{audit}");
    }
    for fmt in ["text", "json"] {
        let h = run(&env, &[], &["history", "--state-dir", &st, "--format", fmt]);
        h.expect_code(0);
        assert_no_secret(&h);
    }
}
