//! Rules across documents that need the validated groups and daemons together:
//! tolerations that clash with a group's, host ports two daemons bind on the same
//! nodes, and rollout settings a host port makes impossible.
//!
//! Owns: those three checks. Must not: re-check what a single document's rules
//! already did.

use super::pod_template::{
    HostPort, describe_toleration, host_ports, toleration_json, tolerations, tolerations_clash,
};
use super::{DaemonDoc, Validator, resolve_rollout};
use crate::fleet::{Daemon, Group};
use crate::load::LoadedFleet;
use crate::model::{IntOrPercent, RolloutSpec};

/// Whether `maxSurge` lets the controller start a second pod on a node.
fn surges(v: Option<&IntOrPercent>) -> bool {
    match v {
        None => false,
        Some(IntOrPercent::Int(i)) => *i > 0,
        Some(IntOrPercent::Str(s)) => s.trim_end_matches('%').parse::<u32>().is_ok_and(|p| p > 0),
    }
}

impl Validator<'_> {
    pub(super) fn across_daemons(
        &mut self,
        loaded: &LoadedFleet,
        groups: &[Group],
        daemons: &[(Daemon, DaemonDoc)],
        fleet_defaults: &RolloutSpec,
    ) {
        let group_line = |g: &Group, i: usize| -> String {
            let line = loaded
                .groups
                .iter()
                .find(|d| d.value.metadata.name == g.name)
                .map_or(0, |d| d.index.pos(&format!("spec.tolerations[{i}]")).line);
            format!("{}:{line}", g.source)
        };
        for (d, doc) in daemons {
            let ports = host_ports(&d.spec);
            // Tolerations: one identity, one toleration, whoever gives it.
            let mine: Vec<(serde_json::Value, String)> = d
                .spec
                .tolerations
                .iter()
                .enumerate()
                .map(|(i, t)| (toleration_json(t), format!("spec.tolerations[{i}]")))
                .chain(tolerations(&d.spec))
                .collect();
            for g in d
                .placement
                .iter()
                .filter_map(|n| groups.iter().find(|g| &g.name == n))
            {
                for (i, gt) in g.tolerations.iter().enumerate() {
                    let gt = toleration_json(gt);
                    for (t, field) in &mine {
                        if tolerations_clash(&gt, t) {
                            self.push(doc.diag(
                                field,
                                format!(
                                    "toleration {} clashes with group `{}`'s ({}) in tolerationSeconds; give it once",
                                    describe_toleration(t),
                                    g.name,
                                    group_line(g, i)
                                ),
                            ));
                        }
                    }
                }
                // A surge pod needs the node's ports while the old pod holds them.
                let o = d
                    .spec
                    .overrides
                    .get(&g.name)
                    .and_then(|o| o.rollout.as_ref());
                let r = resolve_rollout(o, d.spec.rollout.as_ref(), &g.rollout, fleet_defaults);
                if let Some(p) = ports.first()
                    && surges(r.max_surge.as_ref())
                {
                    self.push(doc.diag(
                        &p.field,
                        format!(
                            "in group `{}` maxSurge resolves to more than 0 while the daemon binds host port {}/{}: a surge pod could never start next to the old one on a node; use maxSurge: 0 with maxUnavailable",
                            g.name, p.port, p.protocol
                        ),
                    ));
                }
            }
        }
        // Host ports: two daemons on one group's nodes cannot both bind one.
        type Binding<'a> = (&'a Daemon, &'a DaemonDoc, HostPort);
        let bindings: Vec<Binding> = daemons
            .iter()
            .flat_map(|(d, doc)| host_ports(&d.spec).into_iter().map(move |p| (d, doc, p)))
            .collect();
        for (i, (d, doc, p)) in bindings.iter().enumerate() {
            for (od, odoc, op) in &bindings[..i] {
                if od.name == d.name || !p.clashes(op) {
                    continue;
                }
                let shared: Vec<&str> = d
                    .placement
                    .iter()
                    .filter(|g| od.placement.contains(g))
                    .map(String::as_str)
                    .collect();
                if shared.is_empty() {
                    continue;
                }
                let at = odoc.index.pos(&op.field);
                self.push(doc.diag(
                    &p.field,
                    format!(
                        "host port {}/{} is also bound by daemon `{}` ({}:{}:{}) in group(s) {}: both would run on the same nodes",
                        p.port,
                        p.protocol,
                        od.name,
                        odoc.path,
                        at.line,
                        at.column,
                        shared.join(", ")
                    ),
                ));
            }
        }
    }
}
