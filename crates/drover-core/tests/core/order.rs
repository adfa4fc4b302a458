//! Property: rendering does not depend on how the fleet's documents are laid out in
//! files. The example fleet's documents are split and merged across files in random
//! order and under random names; daemon documents keep their file path (the
//! `drover.dev/source` annotation legitimately names it) but share it with random
//! other documents in random order; companion objects stay under `companions/`. The rendered YAML stream must be byte-identical.

use crate::support::{read_dir, render_files};
use drover_core::load::SourceFile;
use drover_core::render::to_yaml_stream;
use proptest::prelude::*;

/// One YAML document of the example fleet and the file it came from.
#[derive(Debug, Clone)]
struct Doc {
    path: String,
    kind: String,
    text: String,
}

fn example_docs() -> Vec<Doc> {
    let mut docs = Vec::new();
    for f in read_dir("examples/fleet") {
        if f.path.starts_with("config/") {
            continue; // config files are not documents: see `config_files`
        }
        let text = String::from_utf8(f.bytes).unwrap();
        for part in text.split("\n---\n") {
            let kind = part
                .lines()
                .find_map(|l| l.strip_prefix("kind: "))
                .unwrap_or_else(|| panic!("{}: a document without kind", f.path))
                .trim()
                .to_string();
            docs.push(Doc {
                path: f.path.clone(),
                kind,
                text: part.trim_end().to_string() + "\n",
            });
        }
    }
    docs
}

/// The example fleet's config files (`config/`): read as they are, never split or
/// moved, so every layout carries them unchanged.
fn config_files() -> Vec<SourceFile> {
    read_dir("examples/fleet")
        .into_iter()
        .filter(|f| f.path.starts_with("config/"))
        .collect()
}

/// A layout: for each document, the file it goes to; then the documents of each
/// file in a shuffled order. Daemons stay in their own file's path; Fleet and
/// NodeGroup documents go to random files (new ones, or daemon files).
#[derive(Debug, Clone)]
struct Layout {
    files: Vec<SourceFile>,
}

fn layout(docs: Vec<Doc>) -> impl Strategy<Value = Layout> {
    let daemon_paths: Vec<String> = docs
        .iter()
        .filter(|d| d.kind == "Daemon")
        .map(|d| d.path.clone())
        .collect();
    let other_paths: Vec<String> = vec![
        "a.yaml".into(),
        "z.yml".into(),
        "fleet/x.yaml".into(),
        "deep/er/y.yaml".into(),
        "groups/all.yaml".into(),
    ];
    let targets: Vec<String> = daemon_paths.iter().chain(&other_paths).cloned().collect();
    let n = docs.len();
    (
        proptest::collection::vec(proptest::sample::select(targets), n),
        Just(docs.clone()).prop_shuffle(),
        proptest::collection::vec(any::<bool>(), n),
    )
        .prop_map(move |(targets, shuffled, leading_sep)| {
            let mut files: Vec<(String, String)> = Vec::new();
            for (i, d) in shuffled.iter().enumerate() {
                let original = docs.iter().position(|x| x.text == d.text).unwrap();
                // A companion's file is where it belongs (companions/<daemon>/).
                let path = if d.kind == "Daemon" || d.path.starts_with("companions/") {
                    d.path.clone()
                } else {
                    targets[original].clone()
                };
                let sep = if leading_sep[i] { "---\n" } else { "" };
                match files.iter_mut().find(|(p, _)| *p == path) {
                    Some((_, text)) => {
                        text.push_str("---\n");
                        text.push_str(&d.text);
                    }
                    None => files.push((path, format!("{sep}{}", d.text))),
                }
            }
            let mut files: Vec<SourceFile> = files
                .into_iter()
                .map(|(path, text)| SourceFile {
                    path,
                    bytes: text.into_bytes(),
                })
                .collect();
            files.extend(config_files());
            Layout { files }
        })
}

fn describe(files: &[SourceFile]) -> String {
    files
        .iter()
        .map(|f| format!("### {}\n{}", f.path, String::from_utf8_lossy(&f.bytes)))
        .collect()
}

#[test]
fn example_fleet_is_split_into_documents_of_each_kind() {
    let docs = example_docs();
    let count = |k: &str| docs.iter().filter(|d| d.kind == k).count();
    assert_eq!(
        (count("Fleet"), count("NodeGroup"), count("Daemon")),
        (1, 4, 4)
    );
    assert_eq!(config_files().len(), 1, "fluent-bit's config file");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rendering_does_not_depend_on_file_or_document_order(layout in layout(example_docs())) {
        let expected = to_yaml_stream(&render_files(&read_dir("examples/fleet")));
        let mut files = layout.files.clone();
        let got = to_yaml_stream(&render_files(&files));
        prop_assert!(got == expected, "layout:\n{}", describe(&files));
        // The order in which the shell hands files over does not matter either.
        files.reverse();
        let reversed = to_yaml_stream(&render_files(&files));
        prop_assert!(reversed == expected, "reversed layout:\n{}", describe(&files));
    }
}
