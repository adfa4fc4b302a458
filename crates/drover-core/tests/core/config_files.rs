//! Config files (`spec.configFiles`, docs/config-files.md): each entry renders one
//! immutable ConfigMap per content, named by its hash, and a changed file changes
//! the pod template of exactly the DaemonSets that mount it.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_core::fleet::ConfigFile;
use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::render::{DesiredSet, config_hash, config_map_name};
use drover_core::validate::load_fleet;
use proptest::prelude::*;
use serde_json::Value as JsonValue;

use crate::support::{read_dir, render_files};

const FIXTURE: &str = "fixtures/valid/config-files";

fn with_file(mut files: Vec<SourceFile>, path: &str, text: &str) -> Vec<SourceFile> {
    files.retain(|f| f.path != path);
    files.push(SourceFile {
        path: path.into(),
        bytes: text.as_bytes().to_vec(),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// DaemonSet name → its spec hash.
fn templates(set: &DesiredSet) -> BTreeMap<String, String> {
    set.items
        .iter()
        .map(|i| (i.name.clone(), i.spec_hash.clone()))
        .collect()
}

/// The ConfigMap a DaemonSet's volume `entry` refers to.
fn volume_config_map(set: &DesiredSet, daemonset: &str, entry: &str) -> String {
    let item = set
        .items
        .iter()
        .find(|i| i.name == daemonset)
        .expect("the DaemonSet");
    item.manifest.value()["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == entry)
        .and_then(|v| v["configMap"]["name"].as_str())
        .expect("a configMap volume of the entry")
        .to_string()
}

fn changed(a: &DesiredSet, b: &DesiredSet) -> Vec<String> {
    let (a, b) = (templates(a), templates(b));
    a.iter()
        .filter(|(n, h)| b.get(*n) != Some(h))
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn each_entry_renders_an_immutable_owned_config_map_named_by_its_content_hash() {
    let set = render_files(&read_dir(FIXTURE));
    let names: Vec<&str> = set.config_maps.iter().map(|c| c.name.as_str()).collect();
    // canary and general share one fluent-bit-config; gpu has its own.
    assert_eq!(names.len(), 4, "{names:?}");
    for c in &set.config_maps {
        assert_eq!(c.manifest["immutable"], true, "{}", c.name);
        assert_eq!(c.manifest["metadata"]["namespace"], "node-agents");
        let labels = &c.manifest["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "drover");
        assert_eq!(labels["drover.dev/fleet"], "config-files");
        assert_eq!(labels["drover.dev/daemon"], c.daemon.as_str());
        assert_eq!(labels["drover.dev/config"], c.entry.as_str());
        assert_eq!(c.name, config_map_name(&c.entry, &c.hash));
        assert_eq!(c.name.len(), c.entry.len() + 11);
    }
    let shared = volume_config_map(&set, "fluent-bit-canary", "fluent-bit-config");
    assert_eq!(
        shared,
        volume_config_map(&set, "fluent-bit-general", "fluent-bit-config")
    );
    let gpu = volume_config_map(&set, "fluent-bit-gpu", "fluent-bit-config");
    assert_ne!(shared, gpu);
    let gpu_map = set.config_maps.iter().find(|c| c.name == gpu).unwrap();
    assert_eq!(gpu_map.groups, ["gpu"]);
    let parsers = gpu_map.manifest["data"]["parsers.conf"].as_str().unwrap();
    assert!(parsers.contains("dcgm"), "gpu's own parsers: {parsers}");
    // The override replaces parsers.conf and keeps the entry's other file.
    assert!(gpu_map.manifest["data"]["fluent-bit.conf"].is_string());
    let shared_map = set.config_maps.iter().find(|c| c.name == shared).unwrap();
    assert_eq!(shared_map.groups, ["canary", "general"]);
    assert!(
        !shared_map.manifest["data"]["parsers.conf"]
            .as_str()
            .unwrap()
            .contains("dcgm")
    );
}

#[test]
fn the_entry_is_mounted_read_only_in_every_container_it_names() {
    let set = render_files(&read_dir(FIXTURE));
    let item = set
        .items
        .iter()
        .find(|i| i.name == "fluent-bit-canary")
        .unwrap();
    let manifest = item.manifest.value();
    let containers = manifest["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let mounts = |c: &JsonValue| -> Vec<(String, String, bool)> {
        c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_string(),
                    m["mountPath"].as_str().unwrap().to_string(),
                    m["readOnly"] == true,
                )
            })
            .collect()
    };
    let main = mounts(&containers[0]);
    assert!(main.contains(&("fluent-bit-config".into(), "/fluent-bit/etc/".into(), true)));
    assert!(main.contains(&("lua-scripts".into(), "/fluent-bit/scripts".into(), true)));
    let reloader = mounts(&containers[1]);
    assert_eq!(
        reloader,
        [(
            "fluent-bit-config".to_string(),
            "/fluent-bit/etc/".to_string(),
            true
        )]
    );
}

#[test]
fn a_changed_group_override_file_changes_only_that_groups_daemonset() {
    let files = read_dir(FIXTURE);
    let before = render_files(&files);
    let after = render_files(&with_file(
        files,
        "config/fluent-bit/gpu/parsers.conf",
        "[PARSER]\n    Name dcgm\n    Format json\n",
    ));
    assert_eq!(changed(&before, &after), ["fluent-bit-gpu"]);
}

#[test]
fn a_changed_shared_file_changes_the_groups_that_mount_it_and_not_the_overridden_one() {
    let files = read_dir(FIXTURE);
    let before = render_files(&files);
    // gpu replaces parsers.conf, so the base file's change does not reach it.
    let after = render_files(&with_file(
        files.clone(),
        "config/fluent-bit/fluent-bit-config/parsers.conf",
        "[PARSER]\n    Name cri\n    Format regex\n    Regex ^(?<message>.*)$\n",
    ));
    assert_eq!(
        changed(&before, &after),
        ["fluent-bit-canary", "fluent-bit-general"]
    );
    // A file every group mounts changes every group of that daemon, and no other
    // daemon.
    let after = render_files(&with_file(
        files,
        "config/fluent-bit/fluent-bit-config/fluent-bit.conf",
        "[SERVICE]\n    Flush 5\n",
    ));
    assert_eq!(
        changed(&before, &after),
        ["fluent-bit-canary", "fluent-bit-general", "fluent-bit-gpu"]
    );
    // The old ConfigMaps are not in the new render: only the new names are.
    let old: Vec<&str> = before.config_maps.iter().map(|c| c.name.as_str()).collect();
    let new_fb: Vec<&str> = after
        .config_maps
        .iter()
        .filter(|c| c.entry == "fluent-bit-config")
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        new_fb.iter().all(|n| !old.contains(n)),
        "{old:?} {new_fb:?}"
    );
}

#[test]
fn an_unchanged_fleet_renders_the_same_config_map_names_and_templates() {
    let a = render_files(&read_dir(FIXTURE));
    let b = render_files(&read_dir(FIXTURE));
    assert_eq!(a, b);
}

#[test]
fn a_file_that_is_not_utf8_goes_to_binary_data_in_base64() {
    let mut files = read_dir(FIXTURE);
    files.push(SourceFile {
        path: "config/node-exporter/web/blob.bin".into(),
        bytes: vec![0xff, 0x00, 0xfe],
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let set = render_files(&files);
    let web = set
        .config_maps
        .iter()
        .find(|c| c.entry == "web-config")
        .unwrap();
    assert_eq!(web.manifest["binaryData"]["blob.bin"], "/wD+");
    assert!(web.manifest["data"]["web-config.yml"].is_string());
}

#[test]
fn a_config_map_past_one_mebibyte_is_refused_at_its_entry() {
    let files = with_file(
        read_dir(FIXTURE),
        "config/node-exporter/web/huge.txt",
        &"x".repeat(1024 * 1024),
    );
    let d = load_fleet(&files, &LIMITS).expect_err("too large");
    assert_eq!(d.len(), 1, "{d}");
    let e = &d.0[0];
    assert_eq!(e.path, "daemons/node-exporter.yaml");
    assert_eq!(e.field, "spec.configFiles[0]");
    assert!(e.message.contains("more than the 1048576 (1 MiB)"), "{e}");
}

#[test]
fn an_override_that_makes_the_config_map_too_large_is_refused_at_the_override() {
    let files = with_file(
        read_dir(FIXTURE),
        "config/fluent-bit/gpu/parsers.conf",
        &"y".repeat(1024 * 1024),
    );
    let d = load_fleet(&files, &LIMITS).expect_err("too large");
    assert_eq!(d.len(), 1, "{d}");
    assert_eq!(d.0[0].field, "spec.overrides.gpu.configFiles[0]");
}

#[test]
fn a_config_entry_may_not_take_the_name_of_another_volume() {
    let files = with_file(
        read_dir(FIXTURE),
        "daemons/node-exporter.yaml",
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: node-exporter}\nspec:\n  image: quay.io/prometheus/node-exporter:v1.8.2\n  volumes:\n    - {name: web-config, emptyDir: {}}\n  configFiles:\n    - {name: web-config, mountPath: /etc/node-exporter, from: config/node-exporter/web/}\n",
    );
    let d = load_fleet(&files, &LIMITS).expect_err("a clash");
    assert_eq!(d.len(), 1, "{d}");
    assert_eq!(d.0[0].field, "spec.configFiles[0].name");
    assert_eq!(d.0[0].pos.line, 9);
    assert!(d.0[0].message.contains("spec.volumes[0]"), "{}", d.0[0]);
}

#[test]
fn a_config_entry_in_a_container_the_daemon_lacks_is_refused_with_a_hint() {
    let files = with_file(
        read_dir(FIXTURE),
        "daemons/node-exporter.yaml",
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: node-exporter}\nspec:\n  image: quay.io/prometheus/node-exporter:v1.8.2\n  configFiles:\n    - {name: web-config, mountPath: /etc/ne, from: config/node-exporter/web/, containers: [node-exportr]}\n",
    );
    let d = load_fleet(&files, &LIMITS).expect_err("no such container");
    assert_eq!(d.len(), 1, "{d}");
    assert_eq!(d.0[0].field, "spec.configFiles[0].containers[0]");
    assert_eq!(
        d.0[0].hint.as_deref(),
        Some("did you mean `node-exporter`?")
    );
}

fn file_map() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    proptest::collection::btree_map(
        "[a-c]{1,2}(\\.conf)?",
        proptest::collection::vec(any::<u8>(), 0..6),
        0..4,
    )
}

fn as_files(m: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, ConfigFile> {
    m.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                ConfigFile {
                    source: format!("config/d/e/{k}"),
                    bytes: Arc::from(v.as_slice()),
                },
            )
        })
        .collect()
}

proptest! {
    /// The hash (and so the ConfigMap's name) changes exactly when the content
    /// does: the keys, a file's bytes, the entry or the daemon; never with where a
    /// file was read from.
    #[test]
    fn the_config_hash_changes_if_and_only_if_the_content_changes(
        a in file_map(),
        b in file_map(),
        da in "[ab]",
        db in "[ab]",
    ) {
        let ha = config_hash(&da, "entry", &as_files(&a));
        let hb = config_hash(&db, "entry", &as_files(&b));
        prop_assert_eq!(ha == hb, a == b && da == db);
        let mut moved = as_files(&a);
        for f in moved.values_mut() {
            f.source = "config/elsewhere/x".into();
        }
        prop_assert_eq!(config_hash(&da, "entry", &moved), ha.clone());
        prop_assert_ne!(config_hash(&da, "other", &as_files(&a)), ha);
    }
}

/// The offline plan from `base` to `head` (the files of two revisions), as
/// `drover diff` makes it.
fn offline_plan(base: &[SourceFile], head: &[SourceFile]) -> drover_core::plan::Plan {
    use drover_core::plan::{PlanMeta, compare_renders, plan};
    let b = render_files(base);
    let fleet = load_fleet(head, &LIMITS).expect("valid head");
    let h = render_files(head);
    let mut p = plan(
        &fleet,
        &h,
        compare_renders(Some(&b), &h),
        None,
        PlanMeta::default(),
    );
    p.config_files = drover_core::config_diff::plan_config_files(&fleet, Some(&b), &h);
    drover_core::config_diff::annotate_actions(&mut p);
    p
}

#[test]
fn the_plan_shows_the_changed_file_diff_masked_and_no_hash_in_the_daemonset_diff() {
    let base = with_file(
        read_dir(FIXTURE),
        "config/fluent-bit/gpu/parsers.conf",
        "[PARSER]\n    Name   dcgm\n    Format json\n\n[OUTPUT]\n    Name http\n    HTTP_Passwd old-pass-1\n",
    );
    let head = with_file(
        base.clone(),
        "config/fluent-bit/gpu/parsers.conf",
        "[PARSER]\n    Name   dcgm\n    Format logfmt\n\n[OUTPUT]\n    Name http\n    HTTP_Passwd new-pass-2\n",
    );
    let p = offline_plan(&base, &head);
    assert_eq!(p.config_files.len(), 1, "{:?}", p.config_files);
    let f = &p.config_files[0];
    assert_eq!(
        (f.daemon.as_str(), f.id().as_str(), f.groups.as_slice()),
        (
            "fluent-bit",
            "fluent-bit-config/parsers.conf",
            &["gpu".to_string()][..]
        )
    );
    assert_eq!(f.source, "config/fluent-bit/gpu/parsers.conf");
    assert!(
        f.diff.contains("-    Format json\n+    Format logfmt\n"),
        "{}",
        f.diff
    );
    assert!(
        f.diff.contains("+    HTTP_Passwd <masked, changed>\n"),
        "{}",
        f.diff
    );
    assert!(!f.diff.contains("pass-"), "a secret leaked: {}", f.diff);
    // Only gpu's DaemonSet changes; it names the file, and its own diff shows
    // neither hashed ConfigMap name.
    let changed: Vec<_> = p
        .actions()
        .filter(|a| a.action != drover_core::plan::Action::Unchanged)
        .collect();
    assert_eq!(changed.len(), 1);
    let a = changed[0];
    assert_eq!(a.name, "fluent-bit-gpu");
    assert!(a.restarts_pods, "a config change restarts the pods");
    assert_eq!(a.config_files, ["fluent-bit-config/parsers.conf"]);
    let hashes: Vec<String> = render_files(&base)
        .config_maps
        .iter()
        .chain(render_files(&head).config_maps.iter())
        .map(|c| c.name.clone())
        .collect();
    for h in &hashes {
        assert!(!a.diff.contains(h.as_str()), "{h} in {}", a.diff);
        assert!(
            a.changes.iter().all(|c| !c.path.contains("volumes")),
            "{:?}",
            a.changes
        );
    }
    let text = drover_core::report::text::render(&p, drover_core::style::Style::plain());
    assert!(
        text.contains("fluent-bit-gpu: config file fluent-bit-config/parsers.conf changed"),
        "{text}"
    );
    let md = drover_core::report::markdown::render(&p);
    assert!(
        md.contains("config file fluent-bit-config/parsers.conf"),
        "{md}"
    );
    for out in [&text, &md] {
        assert!(!out.contains("pass-"), "a secret leaked");
        for h in &hashes {
            assert!(!out.contains(h.as_str()), "{h} shown");
        }
    }
    let json = serde_json::to_string(&p).unwrap();
    assert!(!json.contains("pass-"));
    insta::assert_snapshot!("config_file_change_text", text);
}

/// A live plan's companion entry for a ConfigMap of the fixture's namespace.
fn config_companion(
    name: &str,
    action: drover_core::plan::Action,
) -> drover_core::plan::CompanionPlan {
    drover_core::plan::CompanionPlan {
        object: format!("ConfigMap/node-agents/{name}"),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("node-agents".into()),
        name: name.into(),
        daemon: Some("fluent-bit".into()),
        source: "daemons/fluent-bit.yaml".into(),
        action,
        changes: Vec::new(),
        diff: "+data: the blob\n".into(),
        stage: None,
        groups: Vec::new(),
    }
}

#[test]
fn a_stages_config_maps_are_applied_before_it_and_an_old_one_is_pruned_only_when_nothing_mounts_it()
{
    use drover_core::plan::Action;
    let base = read_dir(FIXTURE);
    // Only gpu's file changes: its new ConfigMap goes before stage `rest`, not
    // before canary.
    let head = with_file(
        base.clone(),
        "config/fluent-bit/gpu/parsers.conf",
        "[PARSER]\n    Name dcgm\n    Format logfmt\n",
    );
    let mut p = offline_plan(&base, &head);
    let h = render_files(&head);
    let gpu_new = volume_config_map(&h, "fluent-bit-gpu", "fluent-bit-config").to_string();
    let gpu_old =
        volume_config_map(&render_files(&base), "fluent-bit-gpu", "fluent-bit-config").to_string();
    let kept = "fluent-bit-config-keepmekeep".to_string();
    p.companions = vec![
        config_companion(&gpu_new, Action::Create),
        config_companion(&gpu_old, Action::Delete),
        config_companion(&kept, Action::Delete),
        drover_core::plan::CompanionPlan {
            object: "ServiceAccount/node-agents/fluent-bit".into(),
            kind: "ServiceAccount".into(),
            name: "fluent-bit".into(),
            ..config_companion("x", Action::Create)
        },
    ];
    let config: std::collections::BTreeSet<String> = [&gpu_old, &kept]
        .iter()
        .map(|n| format!("ConfigMap/node-agents/{n}"))
        .collect();
    // `kept` is what a live DaemonSet (a rollback target) still mounts.
    let referenced: std::collections::BTreeSet<String> = [kept.clone()].into();
    drover_core::config_diff::split_config_companions(&mut p, &h, &config, &referenced);
    drover_core::plan::assign_companion_stages(&mut p);
    let got: Vec<(&str, Action, Option<&str>, &[String])> = p
        .config_maps
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.action,
                c.stage.as_deref(),
                c.groups.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                gpu_new.as_str(),
                Action::Create,
                Some("rest"),
                &["gpu".to_string()][..]
            ),
            (gpu_old.as_str(), Action::Delete, None, &[][..]),
        ]
    );
    assert!(
        p.config_maps.iter().all(|c| c.diff.is_empty()),
        "a blob is shown"
    );
    // The ServiceAccount stays a companion, applied before the daemon's first write.
    assert_eq!(p.companions.len(), 1);
    assert_eq!(p.companions[0].stage.as_deref(), Some("rest"));
}

fn entry_strategy() -> impl Strategy<Value = JsonValue> {
    let name = prop::sample::select(vec!["cfg", "cfg", "other", "", "Cfg", "a b", "varlog"]);
    let mount = prop::sample::select(vec![
        "/etc/cfg",
        "/etc/cfg/",
        "/var/log",
        "etc",
        "/a/../b",
        "/",
    ]);
    let from = prop::option::of(prop::sample::select(vec![
        "config/agent/cfg/",
        "config/agent/nested",
        "config/agent/none/",
        "../config/agent/cfg",
        "config",
        "daemons/",
    ]));
    let files = prop::collection::btree_map(
        prop::sample::select(vec!["a.conf", "b@.conf", "..", "c.conf"]),
        prop::sample::select(vec![
            "config/agent/cfg/a.conf",
            "config/agent/missing.conf",
            "/config/x",
            "config/agent/nested/deep/x",
        ]),
        0..3,
    );
    let containers = prop::option::of(prop::collection::vec(
        prop::sample::select(vec!["agent", "nope", "side"]),
        0..3,
    ));
    (name, mount, from, files, containers).prop_map(|(name, mount, from, files, containers)| {
        let mut e = serde_json::json!({"name": name, "mountPath": mount});
        if let Some(f) = from {
            e["from"] = serde_json::json!(f);
        }
        if !files.is_empty() {
            e["files"] = serde_json::json!(files);
        }
        if let Some(c) = containers {
            e["containers"] = serde_json::json!(c);
        }
        e
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any config entries and overrides over any config tree: validation never
    /// panics, every refusal is at the daemon's file and a real line, and what it
    /// accepts renders with one config volume per entry in every DaemonSet.
    #[test]
    fn any_config_entries_are_accepted_and_rendered_or_refused_at_the_daemons_file(
        entries in prop::collection::vec(entry_strategy(), 0..3),
        overrides in prop::collection::vec(entry_strategy(), 0..2),
        big in any::<bool>(),
    ) {
        let mut files = read_dir("fixtures/invalid/36-mount-names-no-volume");
        files.retain(|f| !f.path.starts_with("daemons/"));
        let spec = serde_json::json!({
            "image": "registry.example.com/agent:1",
            "mounts": [{"name": "varlog", "hostPath": "/var/log", "mountPath": "/var/log"}],
            "sidecars": [{"name": "side", "image": "registry.example.com/side:1"}],
            "configFiles": entries,
            "overrides": {"canary": {"configFiles": overrides.iter().map(|o| {
                let mut o = o.clone();
                o.as_object_mut().unwrap().remove("mountPath");
                o.as_object_mut().unwrap().remove("containers");
                o
            }).collect::<Vec<_>>()}},
        });
        let daemon = format!(
            "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata:\n  name: agent\nspec: {spec}\n"
        );
        files.push(SourceFile { path: "daemons/agent.yaml".into(), bytes: daemon.into_bytes() });
        for (p, t) in [
            ("config/agent/cfg/a.conf", "a\n"),
            ("config/agent/cfg/c.conf", "c\n"),
            ("config/agent/nested/deep/x", "x\n"),
            ("config/agent/other/o.conf", "o\n"),
        ] {
            files.push(SourceFile { path: p.into(), bytes: t.as_bytes().to_vec() });
        }
        if big {
            files.push(SourceFile {
                path: "config/agent/cfg/big.bin".into(),
                bytes: vec![0xff; 800 * 1024],
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        match load_fleet(&files, &LIMITS) {
            Err(d) => {
                prop_assert!(!d.is_empty());
                for e in &d.0 {
                    prop_assert_eq!(e.path.as_str(), "daemons/agent.yaml", "{}", e);
                    prop_assert!(e.pos.line >= 1, "{}", e);
                }
            }
            Ok(fleet) => {
                let set = drover_core::render::render(
                    &fleet,
                    &drover_core::render::RenderContext::default(),
                    LIMITS.max_rendered_bytes,
                )
                .expect("render");
                let n = fleet.daemons[0].config.len();
                for ds in &set.items {
                    let vols = ds.manifest.value()["spec"]["template"]["spec"]["volumes"]
                        .as_array()
                        .map_or(0, |v| v.iter().filter(|v| v.get("configMap").is_some()).count());
                    prop_assert_eq!(vols, n, "{}", ds.name);
                }
                for c in &set.config_maps {
                    prop_assert_eq!(&c.name, &config_map_name(&c.entry, &c.hash));
                }
            }
        }
    }
}
