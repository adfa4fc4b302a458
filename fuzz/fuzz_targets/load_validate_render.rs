//! Fuzzes the pure core on hostile bytes: `load` + `validate` + `render` of a valid
//! fleet in which one file is replaced by (or joined with) the fuzzer's input.
//!
//! The first input byte picks which file the rest of the input becomes, so the
//! fuzzer reaches the Fleet, NodeGroup and Daemon paths; everything else around it
//! stays valid so that validation and rendering run past the loader.
//! Whatever the bytes, the core must return diagnostics or a rendered set: never
//! panic, never hang, never allocate without bound.
#![no_main]

use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::render::{RenderContext, render};
use drover_core::validate::load_fleet;
use libfuzzer_sys::fuzz_target;

const FLEET: &str = "apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {name: fuzz}
spec:
  namespace: agents
  groups: [canary, gpu, general]
  stages:
    - {name: canary, groups: [canary], bake: 1s, timeout: 1m}
    - {name: fleet, groups: [gpu, general]}
  defaults:
    rollout: {maxUnavailable: \"10%\", maxSurge: 0, minReadySeconds: 1}
  prune: {enabled: true, maxDeleteFraction: 0.5}
";

const CANARY: &str = "apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: canary}
spec:
  selector:
    matchLabels: {role: canary}
    matchExpressions:
      - {key: zone, operator: In, values: [a, b]}
  rollout: {maxUnavailable: 1}
";

const GPU: &str = "apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: gpu}
spec:
  selector:
    matchExpressions:
      - {key: nvidia.com/gpu.present, operator: Exists}
  tolerations:
    - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
";

const GENERAL: &str = "apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: general}
spec:
  selector: {}
";

const AGENT: &str = "apiVersion: drover.dev/v1alpha1
kind: Daemon
metadata: {name: agent, labels: {team: obs}}
spec:
  image: registry.example/agent:v1
  args: [--level=info]
  env: {LOG_LEVEL: info, API_TOKEN: s3cr3t}
  ports: [{name: metrics, containerPort: 9100, hostPort: 9100}]
  mounts:
    - {name: root, hostPath: /, mountPath: /host, readOnly: true}
  resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 64Mi}}
  overrides:
    canary: {image: registry.example/agent:v2}
  podTemplate:
    spec: {dnsPolicy: ClusterFirstWithHostNet}
";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("drover.yaml", FLEET.into()),
        ("groups/canary.yaml", CANARY.into()),
        ("groups/gpu.yaml", GPU.into()),
        ("groups/general.yaml", GENERAL.into()),
        ("daemons/agent.yaml", AGENT.into()),
    ];
    match selector % 8 {
        // Replace one of the five files with the input.
        i @ 0..=4 => files[usize::from(i)].1 = input.to_vec(),
        // Append the input as more documents of the daemon file.
        5 => {
            let f = &mut files[4].1;
            f.extend_from_slice(b"\n---\n");
            f.extend_from_slice(input);
        }
        // An extra file next to a valid fleet.
        _ => files.push(("daemons/fuzz.yaml", input.to_vec())),
    }
    let files: Vec<SourceFile> = files
        .into_iter()
        .map(|(path, bytes)| SourceFile {
            path: path.into(),
            bytes,
        })
        .collect();
    match load_fleet(&files, &LIMITS) {
        Ok(fleet) => {
            let ctx = RenderContext {
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            };
            let _ = render(&fleet, &ctx, LIMITS.max_rendered_bytes);
        }
        Err(diags) => {
            // Diagnostics are printed to terminals: formatting must not panic, and
            // must never carry a raw control character.
            let text = diags.to_string();
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "unescaped control character in diagnostics: {text:?}"
            );
        }
    }
});
