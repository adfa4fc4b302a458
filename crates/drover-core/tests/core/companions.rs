//! Companion objects (`companions/`): what validation accepts, the labels and
//! namespace drover stamps on them, the Fleet's `spec.companions` opt-ins, and the
//! refusal of a fleet with companions by the commands that would apply it.

use drover_core::diag::Diagnostics;
use drover_core::fleet::Fleet;
use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::snapshot::{FleetSnapshot, build};
use drover_core::validate::load_fleet;
use serde_json::json;

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        bytes: text.as_bytes().to_vec(),
    }
}

/// A fleet `f` in namespace `agents` with daemon `agent`, its Fleet spec extended by
/// `fleet_extra` (indented under `spec:`), and the given companion files.
fn fleet_with(fleet_extra: &str, companions: &[(&str, &str)]) -> Vec<SourceFile> {
    let mut files = vec![
        file(
            "drover.yaml",
            &format!(
                "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {{name: f}}\nspec:\n  namespace: agents\n  groups: [every]\n  stages:\n    - {{name: one, groups: [every]}}\n{fleet_extra}"
            ),
        ),
        file(
            "groups/every.yaml",
            "apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {name: every}\nspec:\n  selector: {}\n",
        ),
        file(
            "daemons/agent.yaml",
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: agent}\nspec:\n  image: registry.example/agent:v1\n",
        ),
    ];
    files.extend(companions.iter().map(|(p, t)| file(p, t)));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn valid(files: &[SourceFile]) -> Fleet {
    load_fleet(files, &LIMITS).unwrap_or_else(|d| panic!("invalid: {}", text(&d)))
}

fn invalid(files: &[SourceFile]) -> String {
    match load_fleet(files, &LIMITS) {
        Ok(_) => panic!("the fleet validated"),
        Err(d) => text(&d),
    }
}

fn text(d: &Diagnostics) -> String {
    d.0.iter().map(|d| format!("{d}\n")).collect()
}

const SA: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent\n";
const CLUSTER_ROLE: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: agent-read\nrules:\n  - {apiGroups: [''], resources: [nodes], verbs: [get]}\n";

#[test]
fn a_daemons_service_account_gets_the_fleet_namespace_and_all_three_ownership_labels() {
    let fleet = valid(&fleet_with(
        "",
        &[("companions/agent/serviceaccount-agent.yaml", SA)],
    ));
    let [c] = fleet.companions.as_slice() else {
        panic!("{:?}", fleet.companions)
    };
    assert_eq!(c.owner.as_deref(), Some("agent"));
    assert_eq!(c.namespace.as_deref(), Some("agents"));
    assert_eq!(c.id(), "ServiceAccount/agents/agent");
    assert_eq!(
        c.manifest["metadata"],
        json!({
            "name": "agent",
            "namespace": "agents",
            "labels": {
                "app.kubernetes.io/managed-by": "drover",
                "drover.dev/fleet": "f",
                "drover.dev/daemon": "agent",
            },
            "annotations": {"drover.dev/source": "companions/agent/serviceaccount-agent.yaml"},
        })
    );
}

#[test]
fn a_fleets_cluster_role_stays_cluster_scoped_and_has_no_daemon_label() {
    let fleet = valid(&fleet_with(
        "",
        &[("companions/clusterrole-agent-read.yaml", CLUSTER_ROLE)],
    ));
    let c = &fleet.companions[0];
    assert_eq!(c.owner, None);
    assert_eq!(c.namespace, None);
    assert!(c.manifest["metadata"].get("namespace").is_none());
    assert_eq!(c.manifest["metadata"]["labels"]["drover.dev/fleet"], "f");
    assert!(
        c.manifest["metadata"]["labels"]
            .get("drover.dev/daemon")
            .is_none()
    );
    assert_eq!(c.manifest["rules"][0]["resources"][0], "nodes");
}

#[test]
fn several_documents_in_one_companion_file_are_each_a_companion_in_order() {
    let text = format!("{SA}---\n{CLUSTER_ROLE}");
    let fleet = valid(&fleet_with("", &[("companions/agent/rbac.yaml", &text)]));
    let ids: Vec<String> = fleet.companions.iter().map(|c| c.id()).collect();
    assert_eq!(
        ids,
        ["ServiceAccount/agents/agent", "ClusterRole/agent-read"]
    );
    assert_eq!(fleet.companions[1].line, 5);
}

#[test]
fn a_kind_listed_in_allow_kinds_is_accepted_and_namespaced_by_default() {
    let pm = "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: agent}\nspec: {}\n";
    let files = fleet_with(
        "  companions:\n    allowKinds:\n      - {apiVersion: monitoring.coreos.com/v1, kind: PodMonitor}\n",
        &[("companions/agent/podmonitor-agent.yaml", pm)],
    );
    assert_eq!(
        valid(&files).companions[0].namespace.as_deref(),
        Some("agents")
    );
    let refused = invalid(&fleet_with(
        "",
        &[("companions/agent/podmonitor-agent.yaml", pm)],
    ));
    assert!(
        refused.contains("companions/agent/podmonitor-agent.yaml:2:7: kind: kind `PodMonitor` of `monitoring.coreos.com/v1` is not allowed"),
        "{refused}"
    );
}

#[test]
fn a_cluster_scoped_extra_kind_refuses_a_namespace() {
    let obj = "apiVersion: example.dev/v1\nkind: Thing\nmetadata: {name: t, namespace: agents}\n";
    let refused = invalid(&fleet_with(
        "  companions:\n    allowKinds:\n      - {apiVersion: example.dev/v1, kind: Thing, scope: Cluster}\n",
        &[("companions/thing.yaml", obj)],
    ));
    assert!(
        refused.contains("Thing is cluster-scoped and takes no namespace"),
        "{refused}"
    );
}

#[test]
fn a_default_kind_at_another_api_version_is_not_allowed() {
    let old =
        "apiVersion: rbac.authorization.k8s.io/v1beta1\nkind: ClusterRole\nmetadata: {name: r}\n";
    let refused = invalid(&fleet_with("", &[("companions/r.yaml", old)]));
    assert!(
        refused
            .contains("kind `ClusterRole` of `rbac.authorization.k8s.io/v1beta1` is not allowed"),
        "{refused}"
    );
}

#[test]
fn a_secret_is_refused_even_when_listed_in_allow_kinds() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    let refused = invalid(&fleet_with(
        "  companions:\n    allowKinds:\n      - {apiVersion: v1, kind: Secret}\n",
        &[("companions/s.yaml", secret)],
    ));
    assert!(
        refused.contains("a `Secret` cannot be a companion"),
        "{refused}"
    );
    assert!(refused.contains("SealedSecret"), "{refused}");
}

#[test]
fn a_cluster_admin_role_binding_is_accepted_only_with_the_opt_in() {
    let rb = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: []\n";
    let refused = invalid(&fleet_with("", &[("companions/b.yaml", rb)]));
    assert!(refused.contains("companions/b.yaml:4:"), "{refused}");
    assert!(refused.contains("grants `cluster-admin`"), "{refused}");
    let fleet = valid(&fleet_with(
        "  companions: {allowClusterAdmin: true}\n",
        &[("companions/b.yaml", rb)],
    ));
    assert_eq!(fleet.companions.len(), 1);
}

#[test]
fn another_namespace_is_accepted_only_when_allowed() {
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: monitoring}\nrules: []\n";
    assert!(
        invalid(&fleet_with("", &[("companions/r.yaml", role)]))
            .contains("namespace `monitoring` is not the fleet's")
    );
    let fleet = valid(&fleet_with(
        "  companions: {allowNamespaces: [monitoring]}\n",
        &[("companions/r.yaml", role)],
    ));
    assert_eq!(fleet.companions[0].namespace.as_deref(), Some("monitoring"));
}

#[test]
fn a_manifest_setting_drovers_own_label_to_another_value_is_refused() {
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  labels: {drover.dev/fleet: other}\n";
    let refused = invalid(&fleet_with("", &[("companions/agent/sa.yaml", sa)]));
    assert!(refused.contains("companions/agent/sa.yaml:5:"), "{refused}");
    assert!(
        refused.contains("label `drover.dev/fleet` is drover's own"),
        "{refused}"
    );
}

#[test]
fn server_owned_metadata_and_status_are_refused() {
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  uid: 1234\n  resourceVersion: \"9\"\nstatus: {}\n";
    let refused = invalid(&fleet_with("", &[("companions/sa.yaml", sa)]));
    for f in ["metadata.uid", "metadata.resourceVersion", "status"] {
        assert!(
            refused.contains(&format!("`{f}` is set by the API server")),
            "{f}: {refused}"
        );
    }
}

#[test]
fn a_companion_without_a_name_or_kind_is_refused_at_its_line() {
    let refused = invalid(&fleet_with(
        "",
        &[(
            "companions/x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: x-\n---\napiVersion: v1\nmetadata: {name: y}\n",
        )],
    ));
    assert!(refused.contains("companions/x.yaml:3:"), "{refused}");
    assert!(
        refused.contains("missing field `metadata.name`"),
        "{refused}"
    );
    assert!(
        refused.contains("companions/x.yaml:5:") || refused.contains("companions/x.yaml:6:"),
        "{refused}"
    );
    assert!(refused.contains("missing field `kind`"), "{refused}");
}

#[test]
fn a_companion_file_nested_deeper_than_a_daemon_directory_is_refused() {
    let refused = invalid(&fleet_with("", &[("companions/agent/rbac/sa.yaml", SA)]));
    assert!(
        refused.contains("companions/agent/rbac/sa.yaml"),
        "{refused}"
    );
    assert!(refused.contains("nested deeper"), "{refused}");
}

#[test]
fn config_files_are_still_not_read_as_documents() {
    let fleet = valid(&fleet_with(
        "",
        &[("config/agent/cm/fluent.yaml", "not: [a, fleet, document]\n")],
    ));
    assert!(fleet.companions.is_empty());
}

#[test]
fn a_companion_name_or_namespace_kubernetes_would_refuse_is_refused_at_its_field() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Agent_Config\n";
    let refused = invalid(&fleet_with("", &[("companions/cm.yaml", cm)]));
    assert!(
        refused.contains(
            "companions/cm.yaml:4:9: metadata.name: `Agent_Config` is not a valid ConfigMap name"
        ),
        "{refused}"
    );
    // RBAC names are path segments: `system:agent` is one.
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: \"system:agent\"}\n";
    assert_eq!(
        valid(&fleet_with("", &[("companions/r.yaml", role)]))
            .companions
            .len(),
        1
    );
    let bad_ns =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: Not_A_Namespace}\n";
    let refused = invalid(&fleet_with("", &[("companions/c.yaml", bad_ns)]));
    assert!(
        refused.contains("`Not_A_Namespace` is not a namespace name"),
        "{refused}"
    );
}

#[test]
fn the_fleets_companion_policy_is_checked_itself() {
    let refused = invalid(&fleet_with(
        "  companions:\n    allowKinds:\n      - {apiVersion: v1, kind: Secret}\n      - {apiVersion: drover.dev/v1alpha1, kind: Daemon}\n      - {apiVersion: \"\", kind: Thing}\n    allowNamespaces: [Bad_Ns]\n",
        &[],
    ));
    for want in [
        "drover.yaml:11:",
        "spec.companions.allowKinds[0].kind: a `Secret` is never allowed",
        "spec.companions.allowKinds[1].apiVersion: drover's own kinds are fleet documents",
        "spec.companions.allowKinds[2]: an allowed kind needs both",
        "spec.companions.allowNamespaces[0]: `Bad_Ns` is not a namespace name",
    ] {
        assert!(refused.contains(want), "{want}: {refused}");
    }
}

fn rendered(files: Vec<SourceFile>) -> drover_core::render::DesiredSet {
    build(
        FleetSnapshot {
            commit: None,
            files,
        },
        &LIMITS,
    )
    .expect("valid and rendered")
    .desired
}

#[test]
fn the_change_set_keys_companions_by_group_kind_namespace_and_name_and_a_fleet_without_any_keeps_its_digest()
 {
    use drover_core::approval::{Change, change_set};
    let plain = rendered(fleet_with("", &[]));
    let with = rendered(fleet_with(
        "",
        &[
            ("companions/agent/serviceaccount-agent.yaml", SA),
            ("companions/clusterrole-agent-read.yaml", CLUSTER_ROLE),
        ],
    ));
    let created = change_set(Some(&plain), &with);
    let keys: Vec<&String> = created.changes.keys().collect();
    assert_eq!(
        keys,
        [
            "ClusterRole.rbac.authorization.k8s.io/agent-read",
            "ServiceAccount/agents/agent"
        ]
    );
    assert!(
        created
            .changes
            .values()
            .all(|c| matches!(c, Change::Create { .. }))
    );
    let deleted = change_set(Some(&with), &plain);
    assert!(
        deleted
            .changes
            .values()
            .all(|c| matches!(c, Change::Delete { .. }))
    );
    assert_eq!(deleted.changes.len(), 2);
    // The DaemonSets alone: the same change set with or without companions beside.
    let from_nothing_plain = change_set(None, &plain);
    let from_nothing_with = change_set(None, &with);
    for (k, c) in &from_nothing_plain.changes {
        assert_eq!(from_nothing_with.changes.get(k), Some(c));
    }
    assert_eq!(
        from_nothing_with.changes.len(),
        from_nothing_plain.changes.len() + 2
    );
    let mut widened = change_set(Some(&with), &with);
    assert!(widened.is_empty());
    let edited = rendered(fleet_with(
        "",
        &[
            ("companions/agent/serviceaccount-agent.yaml", SA),
            (
                "companions/clusterrole-agent-read.yaml",
                &CLUSTER_ROLE.replace("verbs: [get]", "verbs: [get, list]"),
            ),
        ],
    ));
    widened = change_set(Some(&with), &edited);
    assert!(matches!(
        widened
            .changes
            .get("ClusterRole.rbac.authorization.k8s.io/agent-read"),
        Some(Change::Update { .. })
    ));
    assert_eq!(widened.changes.len(), 1);
}

#[test]
fn the_manifests_digest_covers_companions_and_without_them_is_the_digest_of_the_rendered_stream() {
    use drover_core::render::{manifests_digest, to_yaml_stream};
    use sha2::{Digest as _, Sha256};
    let plain = rendered(fleet_with("", &[]));
    let with = rendered(fleet_with(
        "",
        &[("companions/agent/serviceaccount-agent.yaml", SA)],
    ));
    let edited = rendered(fleet_with(
        "",
        &[(
            "companions/agent/serviceaccount-agent.yaml",
            &format!("{SA}automountServiceAccountToken: false\n"),
        )],
    ));
    assert_eq!(
        manifests_digest(&plain),
        hex::encode(Sha256::digest(to_yaml_stream(&plain).as_bytes()))
    );
    assert_ne!(manifests_digest(&with), manifests_digest(&plain));
    assert_ne!(manifests_digest(&with), manifests_digest(&edited));
}

#[test]
fn the_mass_delete_guard_counts_companion_deletes_with_the_daemonsets() {
    use drover_core::guard::{Refusal, check_mass_delete};
    use drover_core::plan::{PlanMeta, compare_companions, compare_renders, plan, plan_companions};
    let sa2 = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent-two\n";
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: agent\ndata: {a: b}\n";
    let all = fleet_with(
        "",
        &[
            ("companions/agent/serviceaccount-agent.yaml", SA),
            ("companions/agent/serviceaccount-agent-two.yaml", sa2),
            ("companions/agent/configmap-agent.yaml", cm),
        ],
    );
    let base = rendered(all);
    let fewer = fleet_with("", &[("companions/agent/serviceaccount-agent.yaml", SA)]);
    let fleet = valid(&fewer);
    let head = rendered(fewer);
    let mut p = plan(
        &fleet,
        &head,
        compare_renders(Some(&base), &head),
        None,
        PlanMeta::default(),
    );
    // One DaemonSet and three companions live; two companions deleted: more than
    // the default half.
    let live = base.items.len() + base.companions.len();
    assert_eq!(live, 4);
    assert_eq!(check_mass_delete(&fleet, &p, live, true, false), Ok(()));
    p.companions = plan_companions(compare_companions(&base.companions, &head.companions));
    assert!(matches!(
        check_mass_delete(&fleet, &p, live - 1, true, false),
        Err(Refusal::MassDelete { deletes: 2, .. })
    ));
    assert_eq!(check_mass_delete(&fleet, &p, live, true, false), Ok(()));
    assert_eq!(check_mass_delete(&fleet, &p, live - 1, true, true), Ok(()));
}
