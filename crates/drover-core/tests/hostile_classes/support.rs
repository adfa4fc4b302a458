//! A small valid fleet to plant hostile input into, and readers of the result.

#![allow(dead_code, reason = "each test module uses a part of the support")]

use drover_core::diag::Diagnostics;
use drover_core::fleet::Fleet;
use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::render::{DesiredSet, RenderContext, render};
use drover_core::validate::load_fleet;

pub const FLEET: &str = "apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {name: hostile}
spec:
  namespace: hostile
  groups: [canary, gpu, general]
  stages:
    - {name: canary, groups: [canary], bake: 1m, timeout: 10m}
    - {name: fleet, groups: [gpu, general]}
  defaults:
    rollout: {maxUnavailable: \"50%\", maxSurge: 0, minReadySeconds: 1}
";

pub const CANARY: &str = "apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: canary}
spec:
  selector:
    matchLabels: {role: canary}
";

pub const GPU: &str = "apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: gpu}
spec:
  selector:
    matchExpressions:
      - {key: nvidia.com/gpu.present, operator: Exists}
  tolerations:
    - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
";

pub const GENERAL: &str = "apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: general}
spec:
  selector: {}
";

pub const AGENT: &str = "apiVersion: drover.dev/v1alpha1
kind: Daemon
metadata: {name: agent}
spec:
  image: registry.example/agent:v1
  args: [--level=info]
  ports: [{name: metrics, containerPort: 9100}]
  mounts:
    - {name: logs, hostPath: /var/log, mountPath: /host/logs, readOnly: true}
  resources: {requests: {cpu: 10m, memory: 16Mi}}
";

/// The base fleet's files, with `overlay` replacing or adding files.
pub fn fleet_with(overlay: &[(&str, &str)]) -> Vec<SourceFile> {
    let mut files: Vec<SourceFile> = [
        ("drover.yaml", FLEET),
        ("groups/canary.yaml", CANARY),
        ("groups/gpu.yaml", GPU),
        ("groups/general.yaml", GENERAL),
        ("daemons/agent.yaml", AGENT),
    ]
    .iter()
    .map(|(p, t)| SourceFile {
        path: (*p).into(),
        bytes: t.as_bytes().to_vec(),
    })
    .collect();
    for (path, text) in overlay {
        files.retain(|f| f.path != *path);
        files.push(SourceFile {
            path: (*path).into(),
            bytes: text.as_bytes().to_vec(),
        });
    }
    files
}

/// The agent daemon with `extra` appended to its spec (indented by the caller).
pub fn agent_with(extra: &str) -> String {
    format!("{AGENT}{extra}")
}

pub fn load(files: &[SourceFile]) -> Result<Fleet, Diagnostics> {
    load_fleet(files, &LIMITS)
}

/// The diagnostics of a fleet that must be refused, as printed.
pub fn errors(files: &[SourceFile]) -> String {
    match load_fleet(files, &LIMITS) {
        Ok(_) => panic!(
            "the fleet was accepted:\n{}",
            files
                .iter()
                .map(|f| format!("# {}\n{}", f.path, String::from_utf8_lossy(&f.bytes)))
                .collect::<String>()
        ),
        Err(d) => d.to_string(),
    }
}

/// Asserts the fleet is refused with a diagnostic containing every one of `parts`
/// on one line.
#[track_caller]
pub fn refused_with(files: &[SourceFile], parts: &[&str]) -> String {
    let e = errors(files);
    assert!(
        e.lines().any(|l| parts.iter().all(|p| l.contains(p))),
        "no diagnostic line holds all of {parts:?}:\n{e}"
    );
    e
}

pub fn render_all(fleet: &Fleet) -> DesiredSet {
    render(fleet, &RenderContext::default(), LIMITS.max_rendered_bytes).expect("render")
}
