//! Classes 2 and 3: one parse decides what a document is, and no input panics.
//!
//! Before: the limits/duplicates/positions scanner (yaml-rust2) and serde_yaml read
//! U+2028, U+2029 and U+0085 in a comment differently, so a field hidden after one
//! of them was rendered; and a multi-document file with CR-only line endings made
//! the loader slice past the end of its line table (exit 101).

use std::panic::{AssertUnwindSafe, catch_unwind};

use drover_core::limits::LIMITS;
use drover_core::load::{SourceFile, load as load_files};
use drover_core::validate::load_fleet;
use proptest::prelude::*;

use super::support::*;

fn files_of(path: &str, text: &str) -> Vec<SourceFile> {
    fleet_with(&[(path, text)])
}

/// Loads, validates and renders without panicking; returns the printed errors.
fn no_panic(files: &[SourceFile]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| match load_fleet(files, &LIMITS) {
        Ok(f) => {
            render_all(&f);
            Ok(())
        }
        Err(d) => {
            for e in &d.0 {
                assert!(!e.path.is_empty() || e.message.contains("Fleet"), "{e}");
            }
            Err(d.to_string())
        }
    }))
    .unwrap_or_else(|_| panic!("the core panicked on {files:?}"))
}

#[test]
fn a_field_hidden_after_a_unicode_line_break_in_a_comment_is_refused_not_rendered() {
    for sep in ['\u{2028}', '\u{2029}', '\u{85}'] {
        let text = agent_with(&format!(
            "  hostNetwork: false # reviewed{sep}  hostPID: true\n"
        ));
        let e = refused_with(
            &files_of("daemons/agent.yaml", &text),
            &[
                "daemons/agent.yaml:11:32:",
                &format!("U+{:04X}", sep as u32),
            ],
        );
        assert!(!e.contains("hostPID"), "{e}");
    }
}

#[test]
fn a_duplicate_key_hidden_after_a_unicode_line_break_is_refused() {
    let text = AGENT.replace(
        "  image: registry.example/agent:v1\n",
        "  image: registry.example/agent:v1 # pinned\u{2028}  image: evil.example/agent:v1\n",
    );
    refused_with(
        &files_of("daemons/agent.yaml", &text),
        &["daemons/agent.yaml:5:", "U+2028"],
    );
}

#[test]
fn unicode_line_breaks_are_refused_in_plain_and_quoted_scalars_too() {
    for value in ["a\u{2028}b", "'a\u{2028}b'", "\"a\u{2029}b\""] {
        let text = agent_with(&format!("  env: {{NOTE: {value}}}\n"));
        refused_with(
            &files_of("daemons/agent.yaml", &text),
            &["daemons/agent.yaml:11:", "U+"],
        );
    }
}

#[test]
fn an_escaped_line_separator_in_a_double_quoted_string_is_read_as_that_character() {
    let text = agent_with("  env: {NOTE: \"a\\u2028b\\Lc\"}\n");
    let fleet = load(&files_of("daemons/agent.yaml", &text)).expect("valid");
    assert_eq!(
        fleet.daemons[0].env[0]["value"],
        serde_json::json!("a\u{2028}b\u{2028}c")
    );
}

#[test]
fn bidirectional_controls_are_refused_wherever_they_stand() {
    for c in [
        '\u{202e}', '\u{202a}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ] {
        for text in [
            agent_with(&format!("  # admin{c} only\n")),
            agent_with(&format!("  env: {{NOTE: \"x{c}y\"}}\n")),
        ] {
            refused_with(
                &files_of("daemons/agent.yaml", &text),
                &["daemons/agent.yaml:11:", "bidirectional"],
            );
        }
    }
}

#[test]
fn raw_control_characters_are_refused_wherever_they_stand() {
    // libyaml refused these; yaml-rust2, now the only parser, reads them: the loader
    // refuses them itself, in keys, values and comments alike.
    for c in ['\u{1b}', '\u{7}', '\u{7f}', '\u{9b}', '\u{1}', '\u{fffe}'] {
        for text in [
            agent_with(&format!("  env: {{\"{c}LOG\": info}}\n")),
            agent_with(&format!("  env: {{LOG: \"x{c}info\"}}\n")),
            agent_with(&format!("  # a note {c}\n")),
        ] {
            // Where the character is, counted as an editor does.
            let line = text.lines().position(|l| l.contains(c)).unwrap() + 1;
            let column = text
                .lines()
                .nth(line - 1)
                .unwrap()
                .chars()
                .position(|x| x == c)
                .unwrap()
                + 1;
            let e = no_panic(&files_of("daemons/agent.yaml", &text)).expect_err("refused");
            assert!(
                e.contains(&format!(
                    "daemons/agent.yaml:{line}:{column}: the file contains U+{:04X}: control characters are not allowed",
                    c as u32
                )),
                "{e}"
            );
        }
    }
    // Tabs are YAML's own and stay allowed where YAML allows them.
    load(&files_of(
        "daemons/agent.yaml",
        &agent_with("  env: {NOTE: \"a\tb\"}\n"),
    ))
    .expect("a tab in a string");
}

#[test]
fn a_cr_only_multi_document_file_is_refused_with_its_position_not_a_panic() {
    // The example from the issue: every document of a file, CR line endings.
    let text = format!("{FLEET}---\n{CANARY}---\n{GPU}").replace('\n', "\r");
    for path in ["drover.yaml", "groups/all.yaml"] {
        let mut files = fleet_with(&[]);
        files.retain(|f| f.path == "daemons/agent.yaml" || f.path == "groups/general.yaml");
        files.push(SourceFile {
            path: path.into(),
            bytes: text.clone().into_bytes(),
        });
        let e = no_panic(&files).expect_err("refused");
        assert!(
            e.contains(&format!("{path}:1:32: the file contains U+000D")),
            "{e}"
        );
    }
}

#[test]
fn lone_carriage_returns_are_refused_wherever_they_stand() {
    for (text, at) in [
        // CR-only single document.
        (AGENT.replace('\n', "\r"), "1:32"),
        // One CR inside an otherwise LF file: a terminal would overwrite the line.
        (
            AGENT.replace(
                "  args: [--level=info]\n",
                "  args: [--level=info]\r  hostPID: true\n",
            ),
            "6:23",
        ),
        // CR before the end of the file.
        (format!("{AGENT}\r"), "11:1"),
        // Mixed: CRLF lines, then a lone CR.
        (
            AGENT.replace('\n', "\r\n").replacen("\r\n", "\r", 3),
            "1:32",
        ),
        // Inside a quoted scalar.
        (agent_with("  env: {NOTE: \"a\rb\"}\n"), "11:17"),
    ] {
        let e = no_panic(&files_of("daemons/agent.yaml", &text)).expect_err("refused");
        assert!(
            e.contains(&format!(
                "daemons/agent.yaml:{at}: the file contains U+000D"
            )),
            "{e}"
        );
    }
}

#[test]
fn crlf_files_load_and_render_exactly_as_their_lf_twins() {
    let lf = load(&fleet_with(&[])).expect("valid");
    let crlf_files: Vec<SourceFile> = fleet_with(&[])
        .into_iter()
        .map(|f| SourceFile {
            path: f.path,
            bytes: String::from_utf8(f.bytes)
                .unwrap()
                .replace('\n', "\r\n")
                .into_bytes(),
        })
        .collect();
    let crlf = load(&crlf_files).expect("CRLF is valid");
    assert_eq!(render_all(&crlf), render_all(&lf));
    // Positions count CRLF as one line break.
    let bad = agent_with("  imgae: x\n").replace('\n', "\r\n");
    refused_with(
        &files_of("daemons/agent.yaml", &bad),
        &["daemons/agent.yaml:11:3: spec.imgae"],
    );
}

#[test]
fn multi_document_files_with_crlf_keep_each_document_s_line_numbers() {
    let text =
        format!("{CANARY}---\n{}", GPU.replace("selector:", "selecter:")).replace('\n', "\r\n");
    refused_with(
        &files_of("groups/canary.yaml", &text),
        &["groups/canary.yaml:12:3: spec.selecter"],
    );
}

#[test]
fn every_line_ending_variant_of_every_file_loads_or_is_refused_without_a_panic() {
    let endings = [
        "\r", "\r\n", "\n\r", "\u{2028}", "\u{2029}", "\u{85}", "\r\r\n", "\n\n",
    ];
    let base = fleet_with(&[]);
    for i in 0..base.len() {
        for e in endings {
            let mut files = base.clone();
            let text = String::from_utf8(files[i].bytes.clone()).unwrap();
            files[i].bytes = text.replace('\n', e).into_bytes();
            let _ = no_panic(&files);
            // The same as extra documents of the daemon file.
            let mut files = base.clone();
            files[4]
                .bytes
                .extend(format!("---\n{text}").replace('\n', e).bytes());
            let _ = no_panic(&files);
        }
    }
}

#[test]
fn checks_and_values_come_from_the_same_parse() {
    // What the scanner indexed (every key and item) is exactly what the values hold:
    // a U+2028 in a comment hides nothing from either, since there is one reading.
    // (The loader refuses the character before scanning; the scan itself is checked
    // here, on input the loader would refuse.)
    let text = "spec:\n  image: a # c\u{2028}  hostPID: true\n  list: [x, {y: 1}]\n";
    let docs = drover_core::yaml::scan("t.yaml", text, &LIMITS).unwrap();
    let root = docs[0].root.as_deref().unwrap();
    let v: serde_json::Value = drover_core::yaml::de::from_node(root).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"spec": {"image": "a", "list": ["x", {"y": 1}]}})
    );
    for path in [
        "spec",
        "spec.image",
        "spec.list",
        "spec.list[0]",
        "spec.list[1]",
        "spec.list[1].y",
    ] {
        assert!(docs[0].index.contains(path), "{path}");
    }
    assert!(!docs[0].index.contains("spec.hostPID"));
    assert!(!docs[0].index.contains("hostPID"));
}

#[test]
fn loading_a_file_twice_gives_the_same_diagnostics() {
    let files = files_of(
        "daemons/agent.yaml",
        &agent_with("  imgae: x\n  ports: oops\n"),
    );
    let (_, a) = load_files(&files, &LIMITS);
    let (_, b) = load_files(&files, &LIMITS);
    assert_eq!(a, b);
}

/// Characters that sit at the edges of line handling and encoding.
const EDGES: [&str; 14] = [
    "\r", "\r\n", "\n", "\u{2028}", "\u{2029}", "\u{85}", "\t", "\u{feff}", "\u{202e}", "\u{200b}",
    "---", "...", "\"", "#",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Line-ending and encoding characters planted anywhere in any file of a valid
    /// fleet: the core loads, validates and renders or refuses, and never panics.
    #[test]
    fn edge_characters_anywhere_never_panic(
        file in 0usize..5,
        at in proptest::collection::vec((any::<prop::sample::Index>(), proptest::sample::select(EDGES.to_vec())), 1..4),
    ) {
        let mut files = fleet_with(&[]);
        let mut text = String::from_utf8(files[file].bytes.clone()).unwrap();
        for (idx, s) in at {
            let mut i = idx.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            text.insert_str(i, s);
        }
        files[file].bytes = text.into_bytes();
        let _ = no_panic(&files);
    }
}
