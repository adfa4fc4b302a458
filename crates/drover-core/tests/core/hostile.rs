//! Regression tests for hostile-input bugs in the pure core, found while building
//! the corpus under `fixtures/hostile/` (see its README). No cluster needed.

use drover_core::limits::LIMITS;
use drover_core::load::SourceFile;
use drover_core::validate::load_fleet;

/// The corpus base fleet with `overlay` files replacing or adding to it.
fn fleet_with(overlay: &[(&str, &str)]) -> Vec<SourceFile> {
    let base = crate::support::repo_root().join("fixtures/hostile/base");
    let mut files: Vec<SourceFile> = [
        "drover.yaml",
        "groups/canary.yaml",
        "groups/general.yaml",
        "daemons/agent.yaml",
    ]
    .iter()
    .map(|p| SourceFile {
        path: (*p).into(),
        bytes: std::fs::read(base.join(p)).unwrap(),
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

fn errors(files: &[SourceFile]) -> String {
    match load_fleet(files, &LIMITS) {
        Ok(_) => panic!("the fleet was accepted"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn the_corpus_base_fleet_is_valid() {
    load_fleet(&fleet_with(&[]), &LIMITS).expect("base is valid");
}

#[test]
fn pod_template_label_values_are_validated_like_metadata_labels() {
    let e = errors(&fleet_with(&[(
        "daemons/agent.yaml",
        "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: agent}\nspec:\n  image: registry.example/agent:v1\n  podTemplate:\n    metadata:\n      labels: {team: \"ops; rm -rf /\", \"bad key!\": x}\n",
    )]));
    assert!(
        e.contains("daemons/agent.yaml:8:")
            && e.contains(
                "spec.podTemplate.metadata.labels.team: label `team`: label value must be"
            ),
        "{e}"
    );
    assert!(e.contains("label key `bad key!`"), "{e}");
}

#[test]
fn rendered_size_limit_error_names_the_daemon_file() {
    use drover_core::render::{RenderContext, render};
    let fleet = load_fleet(&fleet_with(&[]), &LIMITS).unwrap();
    let e = render(&fleet, &RenderContext { commit: None }, 1000).unwrap_err();
    let e = e.to_string();
    assert!(
        e.starts_with("daemons/agent.yaml: daemon `agent` in group `")
            && e.ends_with("more than the limit of 1000"),
        "{e}"
    );
}
