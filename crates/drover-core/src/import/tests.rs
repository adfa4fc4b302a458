use super::*;
use crate::limits::LIMITS;

fn manifests(text: &str) -> Vec<Manifest> {
    read_manifests("in.yaml", text).expect("test input reads")
}

fn run(text: &str) -> Imported {
    import(&manifests(text), &ImportOptions::default(), &LIMITS).expect("imports")
}

fn file<'a>(i: &'a Imported, path: &str) -> &'a str {
    let f = i
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path} in {:?}", paths(i)));
    std::str::from_utf8(&f.bytes).expect("utf-8")
}

fn paths(i: &Imported) -> Vec<&str> {
    i.files.iter().map(|f| f.path.as_str()).collect()
}

fn daemon_spec(i: &Imported, name: &str) -> JsonValue {
    let text = file(i, &format!("daemons/{name}.yaml"));
    let v: JsonValue = serde_yaml::from_str(text).expect("daemon yaml");
    v["spec"].clone()
}

const EXPORTER: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-exporter
  namespace: monitoring
  labels: {app.kubernetes.io/name: node-exporter, app.kubernetes.io/version: 1.8.2, team: obs}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: node-exporter}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 10%}
  template:
    metadata:
      labels: {app.kubernetes.io/name: node-exporter, team: obs, tier: node}
      annotations: {kubectl.kubernetes.io/default-container: node-exporter}
    spec:
      hostNetwork: true
      hostPID: true
      nodeSelector: {kubernetes.io/os: linux}
      serviceAccountName: node-exporter
      tolerations: [{operator: Exists}]
      containers:
      - name: node-exporter
        image: quay.io/prometheus/node-exporter:v1.8.2
        args: [--path.rootfs=/host/root, --web.listen-address=127.0.0.1:9101]
        env:
        - {name: B, value: "yes"}
        - {name: A, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        resources: {limits: {cpu: 1, memory: 180Mi}}
        volumeMounts:
        - {name: root, mountPath: /host/root, readOnly: true, mountPropagation: HostToContainer}
        - {name: tmp, mountPath: /tmp}
        lifecycle: {preStop: {exec: {command: [sleep, "5"]}}}
      - name: kube-rbac-proxy
        image: quay.io/brancz/kube-rbac-proxy:v0.18.0
        ports: [{containerPort: 9100, hostPort: 9100, name: https}]
      volumes:
      - {name: root, hostPath: {path: /}}
      - {name: tmp, emptyDir: {}}
"#;

#[test]
fn a_daemonset_becomes_a_short_form_daemon_with_podtemplate_for_the_rest() {
    let i = run(EXPORTER);
    let r = &i.report.daemons[0];
    assert_eq!(
        r.round_trip,
        RoundTrip::Exact {
            fields: r_fields(r)
        }
    );
    let s = daemon_spec(&i, "node-exporter");
    assert_eq!(s["image"], "quay.io/prometheus/node-exporter:v1.8.2");
    assert_eq!(s["hostNetwork"], true);
    assert_eq!(s["serviceAccountName"], "node-exporter");
    assert_eq!(s["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(s["rollout"], json!({"maxUnavailable": "10%"}));
    // Env keeps its order (it is not sorted), so it stays a list.
    assert_eq!(s["env"][0]["name"], "B");
    assert_eq!(
        s["resources"],
        json!({"limits": {"cpu": "1", "memory": "180Mi"}})
    );
    assert_eq!(
        s["mounts"],
        json!([{"name": "root", "hostPath": "/", "mountPath": "/host/root", "readOnly": true, "mountPropagation": "HostToContainer"}])
    );
    // The rest of the main container and the sidecar: podTemplate.
    let pt = &s["podTemplate"];
    assert_eq!(
        pt["spec"]["containers"][0],
        json!({"name": "node-exporter", "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}})
    );
    assert_eq!(pt["spec"]["containers"][1]["name"], "kube-rbac-proxy");
    // The emptyDir is a short-form volume since issue 13 item 3.
    assert!(pt["spec"].get("volumes").is_none(), "{pt}");
    assert_eq!(s["volumes"], json!([{"name": "tmp", "emptyDir": {}}]));
    assert_eq!(pt["metadata"]["labels"], json!({"tier": "node"}));
    let text = file(&i, "daemons/node-exporter.yaml");
    assert!(text.contains("value: 'yes'"), "{text}");
    // Placement drover owns, and a label only the DaemonSet had, are named.
    let fields: Vec<&str> = r.not_carried.iter().map(|n| n.field.as_str()).collect();
    assert_eq!(fields, ["metadata.labels[\"app.kubernetes.io/version\"]"]);
    // The nodeSelector is the Daemon's own node constraint now (issue 13 item 3).
    assert_eq!(s["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert!(text.contains("# Not carried"), "{text}");
    assert_eq!(i.report.namespace, "monitoring");
    assert_eq!(r.renders_as, "node-exporter-default");
}

fn r_fields(r: &DaemonReport) -> usize {
    match r.round_trip {
        RoundTrip::Exact { fields } => fields,
        _ => 0,
    }
}

#[test]
fn what_the_short_form_cannot_say_is_named_and_left_out_of_the_comparison() {
    let text = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  revisionHistoryLimit: 3
  selector:
    matchExpressions: [{key: app, operator: In, values: [agent]}]
  updateStrategy: {type: OnDelete}
  template:
    metadata:
      name: ignored
      labels: {app: agent, app.kubernetes.io/name: other, app.kubernetes.io/managed-by: Helm}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}]
        podAntiAffinity: {}
      tolerations: [{key: a, operator: Exists}, {operator: Equal, value: x}]
      containers: [{name: agent, image: "example.com/agent:1"}]
"#;
    let i = run(text);
    let r = &i.report.daemons[0];
    assert!(
        matches!(r.round_trip, RoundTrip::Exact { .. }),
        "{:?}",
        r.round_trip
    );
    let fields: Vec<&str> = r.not_carried.iter().map(|n| n.field.as_str()).collect();
    for want in [
        "spec.selector",
        "spec.template.metadata.name",
        "spec.template.metadata.labels[\"app.kubernetes.io/managed-by\"]",
        "spec.template.spec.tolerations[1]",
    ] {
        assert!(fields.contains(&want), "{want} not in {fields:?}");
    }
    // Since issue 13 item 3 the short form says these.
    for carried in [
        "spec.revisionHistoryLimit",
        "spec.template.metadata.labels[\"app.kubernetes.io/name\"]",
        "spec.template.spec.affinity.nodeAffinity",
        "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    ] {
        assert!(!fields.contains(&carried), "{carried} in {fields:?}");
    }
    let s = daemon_spec(&i, "agent");
    assert_eq!(s["revisionHistoryLimit"], 3);
    // Upstream OnDelete: drover replaces the pods (issue 18 item 2).
    assert_eq!(s["rollout"]["driver"], "drover", "{s}");
    assert_eq!(s["appName"], "other");
    assert_eq!(
        s["nodeAffinity"],
        json!({"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]})
    );
    assert_eq!(
        s["tolerations"],
        json!([{"key": "a", "operator": "Exists"}])
    );
    assert_eq!(
        s["podTemplate"]["spec"]["affinity"],
        json!({"podAntiAffinity": {}})
    );
    assert!(i.report.anything_left_behind());
}

#[test]
fn companions_and_config_files_are_written_and_reported_as_applied_by_drover() {
    let text = format!(
        "{EXPORTER}---\n{}",
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: node-exporter, namespace: monitoring}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: node-exporter}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-exporter}
subjects: [{kind: ServiceAccount, name: node-exporter, namespace: monitoring}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-exporter}
rules: [{apiGroups: [authentication.k8s.io], resources: [tokenreviews], verbs: [create]}]
---
apiVersion: v1
kind: Service
metadata: {name: node-exporter, namespace: monitoring, labels: {app: ne}}
spec: {selector: {app.kubernetes.io/name: node-exporter}, ports: [{port: 9100}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: node-exporter, namespace: monitoring}
spec: {selector: {matchLabels: {app: ne}}}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: monitoring}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: monitoring}
"#
    );
    let mut with_config = text.replace(
        "      - {name: tmp, emptyDir: {}}",
        "      - {name: tmp, emptyDir: {}}\n      - {name: cfg, configMap: {name: ne-config}}\n      - {name: tls, secret: {secretName: ne-tls}}",
    ).replace(
        "        - {name: tmp, mountPath: /tmp}\n",
        "        - {name: tmp, mountPath: /tmp}\n        - {name: cfg, mountPath: /etc/ne}\n",
    );
    with_config.push_str(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ne-config, namespace: monitoring}\ndata:\n  collectors.conf: |\n    enabled = yes\nbinaryData:\n  blob.bin: AAEC\n",
    );
    let i = run(&with_config);
    let r = &i.report.daemons[0];
    assert_eq!(
        r.companions,
        [
            "companions/node-exporter/clusterrole-node-exporter.yaml",
            "companions/node-exporter/clusterrolebinding-node-exporter.yaml",
            "companions/node-exporter/service-node-exporter.yaml",
            "companions/node-exporter/serviceaccount-node-exporter.yaml",
            "companions/node-exporter/servicemonitor-node-exporter.yaml",
        ]
        .map(String::from)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert!(
        file(
            &i,
            "companions/node-exporter/serviceaccount-node-exporter.yaml"
        )
        .contains("drover applies it before the first stage that writes its daemon's DaemonSets")
    );
    assert_eq!(
        file(&i, "config/node-exporter/ne-config/collectors.conf"),
        "enabled = yes\n"
    );
    let blob = i
        .files
        .iter()
        .find(|f| f.path == "config/node-exporter/ne-config/blob.bin")
        .expect("binaryData is written");
    assert_eq!(blob.bytes, [0, 1, 2]);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("ConfigMap `ne-config`") && n.contains(CONFIG_FILES_APPLIED)),
        "{:#?}",
        r.notes
    );
    assert_eq!(
        r.config_files,
        [
            "config/node-exporter/ne-config/blob.bin",
            "config/node-exporter/ne-config/collectors.conf"
        ]
    );
    // The volume is the entry now, and the round trip holds.
    assert_eq!(
        daemon_spec(&i, "node-exporter")["configFiles"],
        json!([{"name": "cfg", "mountPath": "/etc/ne", "from": "config/node-exporter/ne-config/"}])
    );
    assert!(
        matches!(r.round_trip, RoundTrip::Exact { .. }),
        "{:#?}",
        r.round_trip
    );
    assert_eq!(r.secrets, ["ne-tls"]);
    let left: Vec<&str> = i
        .report
        .left_out
        .iter()
        .map(|l| l.object.as_str())
        .collect();
    assert_eq!(
        left,
        ["Secret monitoring/token", "Deployment monitoring/other"]
    );
    assert!(i.report.left_out[0].reason.contains("SealedSecret"));
    // No Secret is ever written.
    assert!(
        !paths(&i).iter().any(|p| p.contains("secret")),
        "{:?}",
        paths(&i)
    );
}

#[test]
fn a_changed_daemon_fails_the_round_trip_naming_the_field() {
    let ms = manifests(EXPORTER);
    let opts = ImportOptions::default();
    let mut d = convert(&ms[0], &ms[0].value, &opts, "monitoring").unwrap();
    d.doc["spec"]["image"] = json!("quay.io/prometheus/node-exporter:v9");
    d.doc["spec"]["volumes"][0]["emptyDir"] = json!({"medium": "Memory"});
    let mut files = vec![
        fleet_file(&opts, "monitoring"),
        OutFile {
            path: "groups/default.yaml".into(),
            role: FileRole::NodeGroup,
            bytes: b"apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {name: default}\nspec: {selector: {}}\n".to_vec(),
        },
    ];
    files.push(OutFile {
        path: d.report.file.clone(),
        role: FileRole::Daemon,
        bytes: daemon_file(&d),
    });
    let mut drafts = vec![d];
    round_trip(&files, &mut drafts, &opts, &LIMITS);
    let RoundTrip::Differs { differences } = &drafts[0].report.round_trip else {
        panic!("{:?}", drafts[0].report.round_trip);
    };
    let fields: Vec<&str> = differences.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.template.spec.containers[0].image",
            "spec.template.spec.volumes[name=tmp].emptyDir.medium"
        ]
    );
    assert_eq!(
        differences[0].upstream,
        Some(json!("quay.io/prometheus/node-exporter:v1.8.2"))
    );
}

#[test]
fn an_invalid_import_is_a_failed_round_trip_not_a_silent_one() {
    // A first container name that drover accepts but an image it refuses.
    let text = EXPORTER.replace(
        "image: quay.io/prometheus/node-exporter:v1.8.2",
        "image: \"UPPER/case:x\"",
    );
    let i = run(&text);
    assert!(matches!(
        i.report.daemons[0].round_trip,
        RoundTrip::Invalid { .. }
    ));
    assert!(!i.report.round_trips_hold());
}

#[test]
fn a_second_daemonset_with_the_same_first_container_is_left_out() {
    let text = format!(
        "{EXPORTER}---\n{}",
        EXPORTER.replace(
            "name: node-exporter\n  namespace",
            "name: node-exporter-2\n  namespace"
        )
    );
    let i = run(&text);
    assert_eq!(i.report.daemons.len(), 1);
    assert!(
        i.report.left_out[0]
            .reason
            .contains("already has that name"),
        "{:?}",
        i.report.left_out
    );
}

#[test]
fn two_subpath_mounts_of_one_volume_round_trip_beside_a_short_form_mount() {
    // The podTemplate merge once took the second mount of a volume for the first and
    // dropped it; the round trip found it (render.rs has the regression test).
    let text = EXPORTER
        .replace(
            "        - {name: tmp, mountPath: /tmp}\n",
            "        - {name: cfg, mountPath: /etc/a.conf, subPath: a.conf}\n        - {name: cfg, mountPath: /etc/b.conf, subPath: b.conf}\n",
        )
        .replace(
            "      - {name: tmp, emptyDir: {}}",
            "      - {name: cfg, configMap: {name: cfg}}",
        );
    let i = run(&text);
    assert!(
        matches!(i.report.daemons[0].round_trip, RoundTrip::Exact { .. }),
        "{:#?}",
        i.report.daemons[0].round_trip
    );
    let s = daemon_spec(&i, "node-exporter");
    assert_eq!(s["mounts"][0]["name"], "root", "{s}");
    assert_eq!(
        s["podTemplate"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_repeated_toleration_is_left_out_with_a_note() {
    let text = EXPORTER.replace(
        "tolerations: [{operator: Exists}]",
        "tolerations: [{operator: Exists}, {key: a, operator: Exists}, {operator: Exists}]",
    );
    let i = run(&text);
    let r = &i.report.daemons[0];
    assert!(
        matches!(r.round_trip, RoundTrip::Exact { .. }),
        "{:#?}",
        r.round_trip
    );
    assert!(
        r.notes.iter().any(|n| n.contains("tolerations[2] repeats")),
        "{:?}",
        r.notes
    );
    assert_eq!(
        daemon_spec(&i, "node-exporter")["tolerations"],
        json!([{"operator": "Exists"}, {"key": "a", "operator": "Exists"}])
    );
}

#[test]
fn a_daemonset_saved_from_a_cluster_leaves_the_servers_defaults_out() {
    // What `kubectl get ds -o yaml` gives: server fields and every default filled in.
    let text = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: ops
  uid: 0b9f
  resourceVersion: "42"
  generation: 3
  creationTimestamp: "2026-01-01T00:00:00Z"
  annotations: {deprecated.daemonset.template.generation: "3"}
spec:
  revisionHistoryLimit: 10
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}
  template:
    metadata:
      creationTimestamp: null
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: example.com/agent:1
        imagePullPolicy: IfNotPresent
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
        resources: {}
        ports: [{containerPort: 80, protocol: TCP}]
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
status: {numberReady: 1}
"#;
    let i = run(text);
    let r = &i.report.daemons[0];
    assert!(
        matches!(r.round_trip, RoundTrip::Exact { .. }),
        "{:#?}",
        r.round_trip
    );
    assert!(r.not_carried.is_empty(), "{:#?}", r.not_carried);
    let s = daemon_spec(&i, "agent");
    // Nothing of the pod spec is left for podTemplate: only the pods' own label.
    assert_eq!(
        s["podTemplate"],
        json!({"metadata": {"labels": {"app": "agent"}}}),
        "{s}"
    );
    assert!(s.get("imagePullPolicy").is_none(), "{s}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("read back from an API server"))
    );
}

#[test]
fn a_daemonset_of_another_api_version_is_left_out_once() {
    let old = EXPORTER
        .replace("apiVersion: apps/v1", "apiVersion: extensions/v1beta1")
        .replace(
            "name: node-exporter\n  namespace",
            "name: legacy\n  namespace",
        );
    let i = run(&format!("{EXPORTER}---\n{old}"));
    assert_eq!(i.report.daemons.len(), 1);
    let left: Vec<&str> = i
        .report
        .left_out
        .iter()
        .map(|l| l.object.as_str())
        .collect();
    assert_eq!(left, ["DaemonSet monitoring/legacy"]);
    assert!(i.report.left_out[0].reason.contains("only apps/v1"));
}

#[test]
fn an_env_name_set_twice_keeps_its_last_value_as_kubernetes_does() {
    let text = EXPORTER.replace(
        "        - {name: B, value: \"yes\"}\n",
        "        - {name: B, value: \"first\"}\n        - {name: B, value: \"yes\"}\n",
    );
    let i = run(&text);
    let r = &i.report.daemons[0];
    assert!(
        matches!(r.round_trip, RoundTrip::Exact { .. }),
        "{:#?}",
        r.round_trip
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("env[0] is set again later")),
        "{:?}",
        r.notes
    );
    let env = &daemon_spec(&i, "node-exporter")["env"];
    assert_eq!(env[0], json!({"name": "B", "value": "yes"}));
}

#[test]
fn a_main_container_field_the_short_form_refuses_leaves_the_daemonset_out() {
    // podTemplate may not spell the main container's ports, and the short form has
    // no hostIP: nothing is imported rather than a port bound on every address.
    let text = EXPORTER.replace(
        "        args: [--path.rootfs=/host/root, --web.listen-address=127.0.0.1:9101]\n",
        "        args: [--path.rootfs=/host/root]\n        ports: [{containerPort: 9101, hostPort: 9101, hostIP: 127.0.0.1}]\n",
    );
    let ms = manifests(&text);
    let Err(ImportError::ConvertDaemonSets { reasons }) =
        import(&ms, &ImportOptions::default(), &LIMITS)
    else {
        panic!("imported a DaemonSet whose port it cannot carry");
    };
    assert!(reasons[0].contains("hostIP"), "{reasons:?}");
    let with_other = format!(
        "{text}---\n{}",
        EXPORTER
            .replace(
                "name: node-exporter\n  namespace",
                "name: other\n  namespace"
            )
            .replace(
                "- name: node-exporter\n        image",
                "- name: other\n        image"
            )
    );
    let i = run(&with_other);
    assert_eq!(i.report.daemons.len(), 1);
    let l = &i.report.left_out[0];
    assert_eq!(l.object, "DaemonSet monitoring/node-exporter");
    assert!(
        l.reason.contains(
            "spec.template.spec.containers[0].ports: [0].hostIP: the short form has no `hostIP`"
        ),
        "{}",
        l.reason
    );
}

#[test]
fn sorted_plain_env_takes_the_map_form() {
    let text = EXPORTER.replace(
        "        - {name: B, value: \"yes\"}\n        - {name: A, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n",
        "        - {name: A, value: \"1\"}\n        - {name: B, value: \"on\"}\n",
    );
    let i = run(&text);
    assert_eq!(
        daemon_spec(&i, "node-exporter")["env"],
        json!({"A": "1", "B": "on"})
    );
    assert!(matches!(
        i.report.daemons[0].round_trip,
        RoundTrip::Exact { .. }
    ));
}

#[test]
fn options_must_be_names_and_the_group_cannot_be_all() {
    let ms = manifests(EXPORTER);
    for opts in [
        ImportOptions {
            group: "all".into(),
            ..Default::default()
        },
        ImportOptions {
            fleet: "Bad_Name".into(),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            import(&ms, &opts, &LIMITS),
            Err(ImportError::CheckOption { .. })
        ));
    }
    assert_eq!(
        import(
            &manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
            &ImportOptions::default(),
            &LIMITS
        ),
        Err(ImportError::FindDaemonSets)
    );
}

/// The upstream agents under fixtures/import, each imported from its own files.
fn fixture_dirs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/import");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures/import")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read_fixture(dir: &std::path::Path) -> Vec<Manifest> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("fixture");
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(read_manifests(&name, &text).unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

#[test]
fn every_upstream_agent_fixture_round_trips_field_for_field() {
    let dirs = fixture_dirs();
    assert!(dirs.len() >= 8, "{dirs:?}");
    let mut failures = Vec::new();
    for dir in &dirs {
        let i = import(&read_fixture(dir), &ImportOptions::default(), &LIMITS)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(!i.report.daemons.is_empty(), "{}", dir.display());
        for d in &i.report.daemons {
            match &d.round_trip {
                RoundTrip::Exact { fields } => assert!(*fields > 10, "{}", d.daemon),
                other => failures.push(format!("{} {}: {other:#?}", dir.display(), d.daemonset)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "yes",
            "No",
            "on",
            "0755",
            "1_000",
            "12:30",
            "1e3",
            "~",
            "null",
            "",
            " x",
            "a: b",
            "#c",
            "--flag=v",
            "x\ny",
            "\u{2028}",
            "tab\tx",
            "'q'",
            "\"d\"",
            "é",
            "2001-12-14",
        ])
        .prop_map(String::from)
    }

    /// A DaemonSet within what import claims to carry exactly: a main container with
    /// env, args, ports and mounts of hostPath, emptyDir and configMap volumes
    /// (some mounted twice with subPaths), sidecars, tolerations, labels.
    fn daemonset() -> impl Strategy<Value = JsonValue> {
        let volumes = prop::collection::vec(0u8..3, 0..5);
        let env = prop::collection::vec(text(), 0..4);
        let args = prop::option::of(prop::collection::vec(text(), 0..3));
        let ports = prop::collection::btree_set(1i64..65535, 0..3);
        let mounts = prop::collection::vec((0usize..5, any::<bool>(), any::<bool>()), 0..5);
        let sidecars = 0usize..3;
        let tols = prop::collection::vec(0usize..4, 0..4);
        let labels = prop::collection::btree_map(
            prop::sample::select(vec!["a", "b", "tier", "k8s-app"]),
            prop::sample::select(vec!["x", "yes", "1", "on"]),
            0..3,
        );
        let flags = (any::<bool>(), any::<bool>(), prop::option::of(0i64..30));
        (volumes, env, args, ports, mounts, sidecars, tols, labels, flags).prop_map(
            |(volumes, env, args, ports, mounts, sidecars, tols, labels, (hn, pid, mrs))| {
                let vols: Vec<JsonValue> = volumes
                    .iter()
                    .enumerate()
                    .map(|(i, k)| match k {
                        0 => json!({"name": format!("v{i}"), "hostPath": {"path": format!("/h{i}")}}),
                        1 => json!({"name": format!("v{i}"), "emptyDir": {}}),
                        _ => json!({"name": format!("v{i}"), "configMap": {"name": format!("cm{i}")}}),
                    })
                    .collect();
                let mut main = serde_json::Map::new();
                main.insert("name".into(), json!("main"));
                main.insert("image".into(), json!("example.com/agent:1"));
                if let Some(a) = args {
                    main.insert("args".into(), json!(a));
                }
                if !env.is_empty() {
                    let e: Vec<JsonValue> = env
                        .iter()
                        .enumerate()
                        .map(|(i, v)| json!({"name": format!("E{}", 9 - i), "value": v}))
                        .collect();
                    main.insert("env".into(), json!(e));
                }
                if !ports.is_empty() {
                    let p: Vec<JsonValue> = ports
                        .iter()
                        .map(|p| {
                            if hn {
                                json!({"containerPort": p, "hostPort": p})
                            } else {
                                json!({"containerPort": p})
                            }
                        })
                        .collect();
                    main.insert("ports".into(), json!(p));
                }
                let mut ms = Vec::new();
                for (n, (v, ro, sub)) in mounts.iter().enumerate() {
                    if *v < vols.len() {
                        let mut m = json!({"name": format!("v{v}"), "mountPath": format!("/m{n}")});
                        if *ro {
                            m["readOnly"] = json!(true);
                        }
                        if *sub {
                            m["subPath"] = json!(format!("s{n}"));
                        }
                        ms.push(m);
                    }
                }
                if !ms.is_empty() {
                    main.insert("volumeMounts".into(), json!(ms));
                }
                let mut containers = vec![JsonValue::Object(main)];
                for s in 0..sidecars {
                    let mut c = json!({"name": format!("side{s}"), "image": "example.com/side:2"});
                    if !vols.is_empty() {
                        c["volumeMounts"] = json!([{"name": "v0", "mountPath": "/side"}]);
                    }
                    containers.push(c);
                }
                let all_tols = [
                    json!({"operator": "Exists"}),
                    json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}),
                    json!({"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30}),
                    json!({"operator": "Equal", "value": "x"}),
                ];
                let mut pod = json!({"containers": containers});
                if !vols.is_empty() {
                    pod["volumes"] = json!(vols);
                }
                if hn {
                    pod["hostNetwork"] = json!(true);
                }
                if pid {
                    pod["hostPID"] = json!(false);
                }
                if !tols.is_empty() {
                    pod["tolerations"] =
                        JsonValue::Array(tols.iter().map(|t| all_tols[*t].clone()).collect());
                }
                let mut ds = json!({
                    "apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": "agent", "namespace": "ops", "labels": labels},
                    "spec": {"selector": {"matchLabels": {"k8s-app": "agent"}},
                        "template": {"metadata": {"labels": labels}, "spec": pod}},
                });
                ds["spec"]["template"]["metadata"]["labels"]["k8s-app"] = json!("agent");
                ds["metadata"]["labels"]["k8s-app"] = json!("agent");
                if let Some(m) = mrs {
                    ds["spec"]["minReadySeconds"] = json!(m);
                }
                ds
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn every_daemonset_in_the_carried_grammar_round_trips_exactly(ds in daemonset()) {
            let m = vec![Manifest { source: "gen.yaml:1".into(), value: ds.clone() }];
            let i = import(&m, &ImportOptions::default(), &LIMITS).unwrap();
            let d = &i.report.daemons[0];
            prop_assert!(matches!(d.round_trip, RoundTrip::Exact { .. }), "{:#?}\n{}", d.round_trip, ds);
            // Only the toleration drover refuses is ever left behind.
            for n in &d.not_carried {
                prop_assert!(n.field.starts_with("spec.template.spec.tolerations["), "{:?}", n);
            }
        }

        #[test]
        fn reading_any_text_never_panics(text in "[-:{}\\[\\],&*!|>'\"%@` #?\n\ta-z0-9<~.]{0,120}") {
            let _ = read_manifests("in.yaml", &text);
        }

        #[test]
        fn importing_any_json_under_the_pod_spec_never_panics(
            pod in prop::collection::btree_map(
                prop::sample::select(vec!["containers", "volumes", "tolerations", "affinity",
                    "nodeSelector", "hostNetwork", "serviceAccount", "serviceAccountName"]),
                any_json(),
                0..5,
            )
        ) {
            let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "x"}, "spec": {"template": {"spec": pod}}});
            let _ = import(&[Manifest { source: "gen".into(), value: ds }], &ImportOptions::default(), &LIMITS);
        }
    }

    fn any_json() -> impl Strategy<Value = JsonValue> {
        let leaf = prop_oneof![
            Just(JsonValue::Null),
            any::<bool>().prop_map(JsonValue::Bool),
            (-3i64..70000).prop_map(|i| json!(i)),
            "[a-z/.0-9]{0,6}".prop_map(JsonValue::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(JsonValue::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "name",
                        "image",
                        "hostPath",
                        "path",
                        "volumeMounts",
                        "mountPath",
                        "ports",
                        "containerPort",
                        "env",
                        "value",
                        "key",
                        "operator",
                        "nodeAffinity",
                        "configMap"
                    ])
                    .prop_map(String::from),
                    inner,
                    0..4,
                )
                .prop_map(|m| JsonValue::Object(m.into_iter().collect())),
            ]
        })
    }
}

#[test]
fn node_affinity_the_daemons_constraints_cannot_say_is_named_not_carried() {
    let text = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {"kubernetes.io/os": "linux os"}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions: [{key: a, operator: Exists}]
              - matchExpressions: [{key: b, operator: Exists}]
          preferredDuringSchedulingIgnoredDuringExecution:
            - {weight: 1, preference: {matchExpressions: [{key: c, operator: Exists}]}}
      containers: [{name: agent, image: "example.com/agent:1"}]
"#;
    let i = run(text);
    let r = &i.report.daemons[0];
    assert!(
        matches!(r.round_trip, RoundTrip::Exact { .. }),
        "{:?}",
        r.round_trip
    );
    let why = |f: &str| -> String {
        r.not_carried
            .iter()
            .find(|n| n.field == f)
            .map(|n| n.reason.clone())
            .unwrap_or_else(|| panic!("{f} not in {:?}", r.not_carried))
    };
    assert!(why("spec.template.spec.nodeSelector").contains("kubernetes.io/os"));
    assert!(
        why("spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution")
            .contains("2 nodeSelectorTerms are ORed")
    );
    assert!(
        why("spec.template.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution")
            .contains("only required node affinity")
    );
    let s = daemon_spec(&i, "agent");
    assert!(
        s.get("nodeSelector").is_none() && s.get("nodeAffinity").is_none(),
        "{s}"
    );
}

#[test]
fn imported_node_constraints_render_into_the_daemonsets_node_affinity() {
    // The comparison leaves the affinity out, so this checks the carried constraints
    // where they land: the rendered term, read as Kubernetes reads it.
    let text = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: eks.amazonaws.com/compute-type, operator: NotIn, values: [fargate]}
      containers: [{name: agent, image: "example.com/agent:1"}]
"#;
    let i = run(text);
    let sources: Vec<SourceFile> = i
        .files
        .iter()
        .filter(|f| f.path.ends_with(".yaml") && !f.path.starts_with("companions/"))
        .map(|f| SourceFile {
            path: f.path.clone(),
            bytes: f.bytes.clone(),
        })
        .collect();
    let fleet = load_fleet(&sources, &LIMITS).expect("the imported fleet loads");
    let set = render(&fleet, &RenderContext::default(), LIMITS.max_rendered_bytes).unwrap();
    let terms = set.items[0]
        .manifest
        .value()
        .pointer("/spec/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .cloned()
        .expect("terms");
    assert_eq!(
        terms,
        json!([{"matchExpressions": [
            {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
        ]}])
    );
}

// ---- ConfigMap volumes → spec.configFiles ----

/// An agent with a main container, a sidecar and an init container, whose pod
/// mounts ConfigMap `agent-config` as `volume` (a `volumes` item, indented as one)
/// with the given `mounts` (`container: mount` pairs); the ConfigMap's data is
/// `data` (a flow mapping).
fn config_agent(volume: &str, mounts: &[(&str, &str)], data: &str) -> String {
    let mounts_of = |c: &str| {
        let ms: Vec<&str> = mounts
            .iter()
            .filter(|(x, _)| *x == c)
            .map(|(_, m)| *m)
            .collect();
        if ms.is_empty() {
            String::new()
        } else {
            format!("\n    volumeMounts: [{}]", ms.join(", "))
        }
    };
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: ops}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      initContainers:
      - name: init
        image: example.com/init:1{init}
      containers:
      - name: agent
        image: example.com/agent:1{main}
      - name: side
        image: example.com/side:1{side}
      volumes:
      - {volume}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: agent-config, namespace: ops}}
data: {data}
"#,
        init = mounts_of("init").replace("\n    ", "\n        "),
        main = mounts_of("agent").replace("\n    ", "\n        "),
        side = mounts_of("side").replace("\n    ", "\n        "),
    )
}

const WHOLE: &str = "{name: cfg, mountPath: /etc/agent}";
const PLAIN: &str = "{name: cfg, configMap: {name: agent-config}}";
const CONF: &str = "{agent.conf: \"level = info\\n\"}";

fn exact(r: &DaemonReport) {
    assert!(
        matches!(r.round_trip, RoundTrip::Exact { .. }),
        "{:#?}",
        r.round_trip
    );
}

fn has_note(r: &DaemonReport, parts: &[&str]) {
    assert!(
        r.notes.iter().any(|n| parts.iter().all(|p| n.contains(p))),
        "no note with {parts:?} in {:#?}",
        r.notes
    );
}

/// Asserts the ConfigMap fell back: kept by name in the pod, written as a companion,
/// no config file written, the note naming why.
fn fell_back(i: &Imported, why: &str) {
    let r = &i.report.daemons[0];
    exact(r);
    let spec = daemon_spec(i, "agent");
    assert!(spec.get("configFiles").is_none(), "{spec}");
    let text = file(i, &r.file);
    assert!(text.contains("name: agent-config"), "{text}");
    assert_eq!(
        r.companions,
        ["companions/agent/configmap-agent-config.yaml"]
    );
    assert!(file(i, "companions/agent/configmap-agent-config.yaml").contains("kind: ConfigMap"));
    assert!(r.config_files.is_empty(), "{:?}", r.config_files);
    assert!(
        !paths(i).iter().any(|p| p.starts_with("config/")),
        "{:?}",
        paths(i)
    );
    has_note(
        r,
        &["ConfigMap `agent-config`", "written as a companion", why],
    );
}

#[test]
fn a_mounted_configmap_becomes_a_config_files_entry_that_validates_and_round_trips() {
    let i = run(&config_agent(PLAIN, &[("agent", WHOLE)], CONF));
    let r = &i.report.daemons[0];
    exact(r);
    let spec = daemon_spec(&i, "agent");
    // Named after the volume, reading the ConfigMap's directory: `from` since the
    // volume is not named like the ConfigMap; only the main container: no list.
    assert_eq!(
        spec["configFiles"],
        json!([{"name": "cfg", "mountPath": "/etc/agent", "from": "config/agent/agent-config/"}])
    );
    assert_eq!(
        file(&i, "config/agent/agent-config/agent.conf"),
        "level = info\n"
    );
    assert_eq!(r.config_files, ["config/agent/agent-config/agent.conf"]);
    // The volume and its mount are gone from the Daemon; no ConfigMap by name.
    assert!(
        !file(&i, &r.file).contains("configMap"),
        "{}",
        file(&i, &r.file)
    );
    assert!(r.companions.is_empty(), "{:?}", r.companions);
    assert!(
        r.short_form.contains(&"configFiles".to_string()),
        "{:?}",
        r.short_form
    );
    has_note(r, &["ConfigMap `agent-config`", CONFIG_FILES_APPLIED]);
}

#[test]
fn a_volume_named_like_its_configmap_reads_the_default_directory_without_from() {
    let text = config_agent(
        "{name: agent-config, configMap: {name: agent-config}}",
        &[(
            "agent",
            "{name: agent-config, mountPath: /etc/agent, readOnly: true}",
        )],
        CONF,
    );
    let i = run(&text);
    exact(&i.report.daemons[0]);
    assert_eq!(
        daemon_spec(&i, "agent")["configFiles"],
        json!([{"name": "agent-config", "mountPath": "/etc/agent"}])
    );
}

#[test]
fn an_entry_mounted_at_one_path_in_init_main_and_sidecar_names_its_containers() {
    let text = config_agent(
        PLAIN,
        &[("init", WHOLE), ("agent", WHOLE), ("side", WHOLE)],
        CONF,
    );
    let i = run(&text);
    exact(&i.report.daemons[0]);
    assert_eq!(
        daemon_spec(&i, "agent")["configFiles"][0]["containers"],
        json!(["agent", "side", "init"])
    );
    // A sidecar mounting it alone names it too.
    let i = run(&config_agent(PLAIN, &[("side", WHOLE)], CONF));
    exact(&i.report.daemons[0]);
    assert_eq!(
        daemon_spec(&i, "agent")["configFiles"][0]["containers"],
        json!(["side"])
    );
}

#[test]
fn a_subpath_mount_stays_and_mounts_the_entry_by_its_name() {
    let sub = "{name: cfg, mountPath: /opt/agent.conf, subPath: agent.conf}";
    let i = run(&config_agent(
        PLAIN,
        &[("agent", WHOLE), ("side", sub)],
        CONF,
    ));
    exact(&i.report.daemons[0]);
    let spec = daemon_spec(&i, "agent");
    assert_eq!(spec["configFiles"][0]["name"], "cfg");
    assert_eq!(
        spec["podTemplate"]["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "cfg", "mountPath": "/opt/agent.conf", "subPath": "agent.conf"}]),
        "{spec}"
    );
    assert!(
        spec["podTemplate"]["spec"].get("volumes").is_none(),
        "{spec}"
    );
}

#[test]
fn a_configmap_mounted_only_with_subpath_stays_a_volume_by_name() {
    let sub = "{name: cfg, mountPath: /opt/agent.conf, subPath: agent.conf}";
    fell_back(
        &run(&config_agent(PLAIN, &[("agent", sub)], CONF)),
        "only with subPath",
    );
}

#[test]
fn items_default_mode_and_optional_keep_the_volume_by_name() {
    for (volume, why) in [
        (
            "{name: cfg, configMap: {name: agent-config, items: [{key: agent.conf, path: a.conf}]}}",
            "`items`",
        ),
        (
            "{name: cfg, configMap: {name: agent-config, defaultMode: 256}}",
            "defaultMode 256",
        ),
        (
            "{name: cfg, configMap: {name: agent-config, optional: true}}",
            "`optional: true`",
        ),
    ] {
        fell_back(&run(&config_agent(volume, &[("agent", WHOLE)], CONF)), why);
    }
}

#[test]
fn one_volume_at_two_paths_keeps_the_volume_by_name() {
    let other = "{name: cfg, mountPath: /config}";
    fell_back(
        &run(&config_agent(
            PLAIN,
            &[("agent", WHOLE), ("side", other)],
            CONF,
        )),
        "different paths (/etc/agent in `agent`, /config in `side`)",
    );
    // And a mount field the entry has not.
    let prop = "{name: cfg, mountPath: /etc/agent, mountPropagation: HostToContainer}";
    fell_back(
        &run(&config_agent(PLAIN, &[("agent", prop)], CONF)),
        "with `mountPropagation`",
    );
}

#[test]
fn a_projected_configmap_is_a_companion_mounted_by_name() {
    let volume = "{name: cfg, projected: {sources: [{configMap: {name: agent-config}}]}}";
    fell_back(
        &run(&config_agent(volume, &[("agent", WHOLE)], CONF)),
        "volume `cfg` is a projected volume",
    );
}

#[test]
fn a_key_that_is_not_a_file_name_or_a_value_that_is_not_a_string_keeps_it_by_name() {
    for (data, why) in [
        (
            "{agent.conf: x, \"a/b\": y}",
            "its key `a/b` is not a file name",
        ),
        (
            "{agent.conf: x, list: [1]}",
            "its `data.list` is not a string",
        ),
        ("{}", "holds no data"),
    ] {
        fell_back(&run(&config_agent(PLAIN, &[("agent", WHOLE)], data)), why);
    }
}

#[test]
fn a_configmap_also_read_into_env_is_both_an_entry_and_a_companion() {
    let text = config_agent(PLAIN, &[("agent", WHOLE)], CONF).replace(
        "        image: example.com/side:1",
        "        image: example.com/side:1\n        envFrom: [{configMapRef: {name: agent-config}}]",
    );
    let i = run(&text);
    let r = &i.report.daemons[0];
    exact(r);
    assert_eq!(daemon_spec(&i, "agent")["configFiles"][0]["name"], "cfg");
    assert_eq!(r.config_files, ["config/agent/agent-config/agent.conf"]);
    assert_eq!(
        r.companions,
        ["companions/agent/configmap-agent-config.yaml"]
    );
    has_note(r, &["container `side` reads it into its environment"]);
}

#[test]
fn a_configmap_shared_by_two_daemons_gives_each_an_entry_reading_one_directory() {
    let one = config_agent(PLAIN, &[("agent", WHOLE)], CONF);
    let second = one
        .split("---")
        .next()
        .unwrap()
        .replace("name: agent, namespace", "name: other, namespace")
        .replace("- name: agent\n", "- name: other\n")
        .replace("{app: agent}", "{app: other}")
        .replace("{name: cfg, configMap", "{name: agent-config, configMap")
        .replace("{name: cfg, mountPath", "{name: agent-config, mountPath");
    let i = run(&format!("{one}---\n{second}"));
    assert_eq!(i.report.daemons.len(), 2);
    for r in &i.report.daemons {
        exact(r);
        assert_eq!(r.config_files, ["config/agent/agent-config/agent.conf"]);
        assert!(r.companions.is_empty());
    }
    assert_eq!(
        daemon_spec(&i, "agent")["configFiles"][0]["from"],
        "config/agent/agent-config/"
    );
    // The second daemon's entry is named like the ConfigMap but reads the first's
    // directory, so `from` is spelt out.
    assert_eq!(
        daemon_spec(&i, "other")["configFiles"],
        json!([{"name": "agent-config", "mountPath": "/etc/agent", "from": "config/agent/agent-config/"}])
    );
    let written: Vec<&str> = paths(&i)
        .into_iter()
        .filter(|p| p.starts_with("config/"))
        .collect();
    assert_eq!(written, ["config/agent/agent-config/agent.conf"]);
}

#[test]
fn the_fluent_bit_fixture_imports_its_config_as_config_files_that_validate_and_round_trip() {
    let dir = fixture_dirs()
        .into_iter()
        .find(|d| d.ends_with("fluent-bit"))
        .expect("fixtures/import/fluent-bit");
    let i = import(&read_fixture(&dir), &ImportOptions::default(), &LIMITS).unwrap();
    let r = &i.report.daemons[0];
    exact(r);
    let spec = daemon_spec(&i, "fluent-bit");
    assert_eq!(
        spec["configFiles"],
        json!([{"name": "fluent-bit-config", "mountPath": "/fluent-bit/etc/"}])
    );
    assert!(spec.get("volumes").is_none(), "{spec}");
    assert!(
        !r.companions.iter().any(|c| c.contains("configmap")),
        "{:?}",
        r.companions
    );
    assert!(
        r.config_files
            .contains(&"config/fluent-bit/fluent-bit-config/fluent-bit.conf".to_string()),
        "{:?}",
        r.config_files
    );
    // The written fleet, config files included, loads and validates as drover reads it.
    let sources: Vec<SourceFile> = i
        .files
        .iter()
        .filter(|f| f.role != FileRole::Companion)
        .map(|f| SourceFile {
            path: f.path.clone(),
            bytes: f.bytes.clone(),
        })
        .collect();
    let fleet = load_fleet(&sources, &LIMITS).expect("the imported fleet validates");
    let set = render(&fleet, &RenderContext::default(), LIMITS.max_rendered_bytes).unwrap();
    let ds = set.items[0].manifest.value();
    let vol = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "fluent-bit-config")
        .unwrap()
        .clone();
    let cm = vol["configMap"]["name"].as_str().unwrap();
    assert!(
        cm.starts_with("fluent-bit-config-") && cm.len() == 28,
        "{cm}"
    );
}

#[test]
fn a_binding_of_a_service_account_that_moves_to_the_fleets_namespace_names_that_namespace() {
    let accounts = [("agent", "monitoring")];
    let mut binding = json!({
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "agent"},
        "subjects": [
            // A kustomize base: no namespace, kustomize would fill it in.
            {"kind": "ServiceAccount", "name": "agent"},
            // The upstream namespace the agent moves out of.
            {"kind": "ServiceAccount", "name": "agent", "namespace": "monitoring"},
            // Someone else's account, and one of the same name elsewhere: kept.
            {"kind": "ServiceAccount", "name": "other", "namespace": "monitoring"},
            {"kind": "ServiceAccount", "name": "agent", "namespace": "kube-system"},
            {"kind": "Group", "name": "agent"},
        ]
    });
    let changed = bind_moved_accounts(&mut binding, &accounts, "node-agents");
    assert_eq!(changed, ["agent", "agent"]);
    let ns: Vec<JsonValue> = binding["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["namespace"].clone())
        .collect();
    assert_eq!(
        ns,
        [
            json!("node-agents"),
            json!("node-agents"),
            json!("monitoring"),
            json!("kube-system"),
            JsonValue::Null
        ]
    );
    // Already there: nothing to change.
    assert!(bind_moved_accounts(&mut binding, &accounts, "node-agents").is_empty());
    // A RoleBinding's subject without a namespace is the binding's: moved only when
    // the binding itself is in the upstream namespace.
    let mut role_binding = json!({
        "kind": "RoleBinding",
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent"}]
    });
    assert!(bind_moved_accounts(&mut role_binding, &accounts, "node-agents").is_empty());
}

#[test]
fn every_imported_fixture_fleet_validates_with_its_companions() {
    // Validation covers companions too (a ClusterRoleBinding's ServiceAccount subject
    // needs a namespace): what import writes must pass it, for each upstream agent.
    let dirs = fixture_dirs();
    assert!(dirs.len() >= 11, "{dirs:?}");
    for dir in dirs {
        let all = read_fixture(&dir);
        let opts = ImportOptions {
            namespace: Some("node-agents".into()),
            ..ImportOptions::default()
        };
        let imported = import(&all, &opts, &LIMITS).expect("imports");
        let sources: Vec<crate::load::SourceFile> = imported
            .files
            .iter()
            .map(|f| crate::load::SourceFile {
                path: f.path.clone(),
                bytes: f.bytes.clone(),
            })
            .collect();
        if let Err(d) = crate::validate::load_fleet(&sources, &LIMITS) {
            panic!("{}: the imported fleet is invalid:\n{d}", dir.display());
        }
    }
}
