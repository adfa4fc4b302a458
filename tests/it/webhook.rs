//! Push webhooks on the testbed: `drover sync --interval 1h` applies a push as soon
//! as a signed hook arrives, and refuses forged, unsigned and replayed deliveries
//! without fetching.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use drover::core::webhook::sign_github;

use crate::harness::{FleetYaml, Remote, Repo, daemon, records};

const SECRET: &str = "testbed-hook-secret";

/// Sends one hook; returns the status code and the body.
fn post(addr: &str, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: drover\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

fn metrics(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: drover\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn github(body: &str, secret: &str, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "X-Hub-Signature-256",
            sign_github(secret.as_bytes(), body.as_bytes()),
        ),
        ("X-GitHub-Event", "push".into()),
        ("X-GitHub-Delivery", delivery.into()),
    ]
}

#[test]
fn a_signed_hook_applies_a_push_at_once_and_forged_unsigned_or_replayed_hooks_do_not() {
    let env = crate::harness::TestEnv::new("webhook");
    env.nodes("n", 2, &[]);
    let work = Repo::new();
    let remote = Remote::new();
    work.write(
        "drover.yaml",
        FleetYaml::one_group(&env.ns, "every", Some("60s")).yaml(),
    );
    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v1", ""),
    );
    work.commit("agent v1");
    work.push(&remote);
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("hook-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let state_dir = state.path().join("state");

    let mut sync = env
        .drover(&[
            "sync",
            "--repo",
            &remote.path_str(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--interval",
            "1h",
            "--listen",
            "127.0.0.1:0",
            "--webhook-secret-file",
            secret.to_str().unwrap(),
            "-v",
        ])
        .spawn_lines();
    let serving = sync.wait_for_line(&["serving", "/hooks/"], Duration::from_secs(60));
    let addr = serving
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("the address in the log line")
        .to_string();
    env.wait_for("the first commit applied", Duration::from_secs(120), || {
        records(&state_dir).len() == 1
    });

    work.write(
        "daemons/agent.yaml",
        daemon("agent", "registry.example/agent:v2", ""),
    );
    work.commit("agent v2");
    work.push(&remote);
    let body = r#"{"ref":"refs/heads/main"}"#;

    // Forged, unsigned, for GitLab without a token: 401, and nothing fetched.
    let (code, text) = post(
        &addr,
        "/hooks/github",
        &github(body, "not the secret", "f-1"),
        body,
    );
    assert_eq!(code, 401, "{text}");
    let unsigned = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("X-GitHub-Delivery", "u-1".into()),
    ];
    assert_eq!(post(&addr, "/hooks/github", &unsigned, body).0, 401);
    assert_eq!(post(&addr, "/hooks/gitlab", &[], body).0, 401);

    // The genuine hook: fetched and applied at once, an hour before the next poll.
    let genuine = github(body, SECRET, "d-1");
    let (code, text) = post(&addr, "/hooks/github", &genuine, body);
    assert_eq!((code, text.as_str()), (202, "fetching\n"));
    env.wait_for(
        "v2 applied after the hook",
        Duration::from_secs(120),
        || records(&state_dir).len() == 2,
    );
    assert!(
        env.images().values().all(|i| i.ends_with("agent:v2")),
        "{:?}",
        env.images()
    );
    let recs = records(&state_dir);
    assert_eq!(recs[1]["outcome"], "applied", "{recs:#?}");
    assert_eq!(recs[1]["commit"]["subject"], "agent v2", "{recs:#?}");
    // That a refused hook does not wake the loop is shown without a cluster, by the
    // wake channel itself (src/shell/webhook.rs tests): absence is not a timing here.

    // The same delivery again is a replay.
    let (code, text) = post(&addr, "/hooks/github", &genuine, body);
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("replay"), "{text}");

    let m = metrics(&addr);
    for line in [
        r#"drover_webhook_deliveries_total{provider="github",result="bad_signature"} 1"#,
        r#"drover_webhook_deliveries_total{provider="github",result="unsigned"} 1"#,
        r#"drover_webhook_deliveries_total{provider="gitlab",result="unsigned"} 1"#,
        r#"drover_webhook_deliveries_total{provider="github",result="accepted"} 1"#,
        r#"drover_webhook_deliveries_total{provider="github",result="replay"} 1"#,
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    sync.terminate();
}
