//! Class 6: the PR comment can no longer hide what matters. Before: enough noisy
//! updates pushed a new privileged daemon out of the truncated Markdown, and it was
//! never named.

use drover_core::plan::{PlanMeta, compare_renders, plan};
use drover_core::privilege::Privilege;
use drover_core::report::markdown::{MAX_CHARS, render_with_limit};

use super::support::*;

fn noisy_daemon(i: usize, version: &str) -> (String, String) {
    (
        format!("daemons/noise-{i:03}.yaml"),
        format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {{name: noise-{i:03}}}\nspec:\n  image: registry.example/noise:{version}\n  args: [{}]\n",
            (0..40)
                .map(|j| format!("--flag-{j}={version}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

#[test]
fn a_new_privileged_daemon_and_every_privilege_change_survive_any_amount_of_noise() {
    let base_files: Vec<(String, String)> = (0..120).map(|i| noisy_daemon(i, "v1")).collect();
    let mut head_files: Vec<(String, String)> = (0..120).map(|i| noisy_daemon(i, "v2")).collect();
    // Sorted after every noisy daemon: `zz-…`.
    head_files.push((
        "daemons/zz-rootkit.yaml".into(),
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: zz-rootkit}\nspec:\n  image: registry.example/rootkit:v1\n  hostPID: true\n  securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN]}}\n  mounts: [{name: root, hostPath: /, mountPath: /host}]\n".into(),
    ));
    // And the agent gains a writable mount and a host port.
    let agent = AGENT.replace("readOnly: true", "readOnly: false").replace(
        "containerPort: 9100}",
        "containerPort: 9100, hostPort: 9100}",
    );
    head_files.push(("daemons/agent.yaml".into(), agent));
    let as_refs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    let files = |v: &[(String, String)]| {
        let refs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        fleet_with(&refs)
    };
    let base = load(&files(&as_refs(&base_files))).unwrap_or_else(|d| panic!("{d}"));
    let head = load(&files(&head_files)).unwrap_or_else(|d| panic!("{d}"));
    let (b, h) = (render_all(&base), render_all(&head));
    let p = plan(
        &head,
        &h,
        compare_renders(Some(&b), &h),
        None,
        PlanMeta::default(),
    );
    let rootkit = p
        .actions()
        .find(|a| a.name == "zz-rootkit-general")
        .unwrap();
    for want in [
        Privilege::Privileged {
            container: "zz-rootkit".into(),
        },
        Privilege::HostNamespace {
            namespace: "hostPID".into(),
        },
        Privilege::Capability {
            capability: "SYS_ADMIN".into(),
            container: "zz-rootkit".into(),
        },
        Privilege::WritableHostPath {
            path: "/".into(),
            container: "zz-rootkit".into(),
        },
    ] {
        assert!(rootkit.privileges_added.contains(&want), "{want:?}");
    }
    let agent = p.actions().find(|a| a.name == "agent-general").unwrap();
    assert_eq!(
        agent.privileges_added,
        [
            Privilege::WritableHostPath {
                path: "/var/log".into(),
                container: "agent".into()
            },
            Privilege::HostPort {
                port: 9100,
                protocol: "TCP".into()
            },
        ]
    );
    for limit in [MAX_CHARS, 20_000] {
        let md = render_with_limit(&p, limit);
        assert!(
            md.contains("diff(s) left out"),
            "the noise is cut at {limit}"
        );
        for group in ["canary", "gpu", "general"] {
            assert!(
                md.contains(&format!("<code>+ zz-rootkit-{group}</code>: create")),
                "zz-rootkit-{group} missing at {limit}"
            );
            assert!(
                md.contains(&format!("<code>~ agent-{group}</code>: update (stage")),
                "{limit}"
            );
        }
        assert!(
            md.contains("**adds privilege**: privileged container 'zz-rootkit'"),
            "{limit}"
        );
        assert!(
            md.contains("writable hostPath '/var/log' (container 'agent'); host port 9100/TCP"),
            "{limit}"
        );
        if limit == MAX_CHARS {
            assert!(md.chars().count() <= MAX_CHARS);
        }
    }
}

#[test]
fn a_deleted_daemon_is_always_named() {
    let base_files: Vec<(String, String)> = (0..120).map(|i| noisy_daemon(i, "v1")).collect();
    let mut head_files: Vec<(String, String)> = (0..120).map(|i| noisy_daemon(i, "v2")).collect();
    head_files.push(("daemons/agent.yaml".into(), String::new()));
    let files = |v: &[(String, String)]| {
        let refs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        fleet_with(&refs)
    };
    let base = load(&files(&base_files)).unwrap();
    let head = load(&files(&head_files)).unwrap();
    let (b, h) = (render_all(&base), render_all(&head));
    let p = plan(
        &head,
        &h,
        compare_renders(Some(&b), &h),
        None,
        PlanMeta::default(),
    );
    let md = render_with_limit(&p, MAX_CHARS);
    for group in ["canary", "gpu", "general"] {
        assert!(
            md.contains(&format!("<code>- agent-{group}</code>: delete")),
            "{group}"
        );
    }
}
