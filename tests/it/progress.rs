//! Progress off a terminal: `drover apply` on a three-stage fleet prints one line per
//! change of state (stage started, a DaemonSet's shown counts, baking, succeeded), in
//! stage order, never the same line twice in a row, each stage line once.

use crate::harness::{FleetYaml, Repo, TestEnv, daemon};

/// The message and fields of a log line, without its timestamp, level and span.
fn body(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once(" INFO ")?;
    let rest = rest.trim();
    // `stage{stage=canary daemonsets=1}: stage started ...`
    Some(match rest.split_once("}: ") {
        Some((span, msg)) if !span.contains(' ') || span.starts_with("stage{") => msg,
        _ => rest,
    })
}

#[test]
fn a_three_stage_rollout_prints_one_line_per_change_of_state_and_no_repeats() {
    let env = TestEnv::new("progress");
    env.nodes("canary", 2, &[("role", "canary")]);
    env.nodes("blue", 2, &[("role", "blue")]);
    env.nodes("green", 2, &[]);
    let repo = Repo::new();
    repo.write(
        "drover.yaml",
        FleetYaml::staged(&env.ns, "halt", "90s").yaml(),
    );
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    repo.commit("agent v1");
    env.drover(&["apply", "--repo", &repo.path_str(), "--yes"])
        .run()
        .expect_code(0);
    repo.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    repo.commit("agent v2");
    let run = env
        .drover(&["-v", "apply", "--repo", &repo.path_str(), "--yes"])
        .run();
    run.expect_code(0);

    let lines: Vec<&str> = run.stderr.lines().filter_map(body).collect();
    let progress: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            [
                "stage started",
                "rollout status",
                "baking",
                "stage succeeded",
            ]
            .iter()
            .any(|m| l.starts_with(m))
        })
        .collect();
    // Never the same line twice in a row: a line says what changed since the last
    // one. (A rollout may come back to a state, e.g. one pod unavailable, then none,
    // then one again as the next pod restarts; that is a change each time.) The
    // stage lines are each printed once, below.
    let mut last: std::collections::BTreeMap<&str, &str> = Default::default();
    for l in progress.iter().filter(|l| l.starts_with("rollout status")) {
        let ds = l
            .split_whitespace()
            .find(|w| w.starts_with("daemonset="))
            .expect("a daemonset field");
        assert_ne!(
            last.insert(ds, l),
            Some(*l),
            "printed twice in a row: {l}\n{}",
            run.report()
        );
    }
    // Each stage: started, then its DaemonSet's status lines, baking when it bakes,
    // succeeded; the stages in fleet order.
    let mut at = 0;
    for (stage, bakes) in [("canary", true), ("blue", true), ("green", false)] {
        let here = |m: &str| {
            progress
                .iter()
                .position(|l| l.starts_with(m) && l.contains(&format!("stage=\"{stage}\"")))
                .unwrap_or_else(|| panic!("no `{m}` line for {stage}\n{}", run.report()))
        };
        let started = here("stage started");
        let succeeded = here("stage succeeded");
        assert!(
            at <= started && started < succeeded,
            "{stage} out of order\n{}",
            run.report()
        );
        let statuses: Vec<&&str> = progress[started..succeeded]
            .iter()
            .filter(|l| l.starts_with("rollout status"))
            .collect();
        assert!(
            !statuses.is_empty(),
            "{stage}: no status line\n{}",
            run.report()
        );
        assert!(
            statuses
                .iter()
                .all(|l| l.contains(&format!("agent-{stage}"))),
            "{stage}: another stage's DaemonSet in its lines\n{}",
            run.report()
        );
        // The last status line of a stage shows it complete, and only that one does.
        let complete: Vec<_> = statuses
            .iter()
            .filter(|l| l.contains("complete=true"))
            .collect();
        assert_eq!(complete.len(), 1, "{stage}\n{}", run.report());
        assert!(statuses.last().unwrap().contains("complete=true"));
        let bake_lines = progress[started..succeeded]
            .iter()
            .filter(|l| l.starts_with("baking"))
            .count();
        assert_eq!(bake_lines, usize::from(bakes), "{stage}\n{}", run.report());
        at = succeeded;
    }
    assert_eq!(
        progress
            .iter()
            .filter(|l| l.starts_with("stage started"))
            .count(),
        3,
        "{}",
        run.report()
    );
}
