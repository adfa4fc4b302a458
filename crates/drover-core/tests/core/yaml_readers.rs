//! Property: the YAML drover emits reads back as the same strings under every reading
//! its users' tools apply. YAML 1.1 (the spec's implicit types, as PyYAML implements
//! them, with the boolean words in any case as the issue asks), YAML 1.2 core, and the
//! two Rust readers (serde_yaml, yaml-rust2).
//!
//! The YAML 1.1 and 1.2 resolvers here are written from the specs' regular
//! expressions, independently of `drover_core::yaml_scalar`, so they can disagree with
//! it.

use std::sync::LazyLock;

use drover_core::emit::to_yaml;
use proptest::prelude::*;
use regex::Regex;
use serde_json::{Value as JsonValue, json};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// What a resolver makes of a plain scalar, coarsely: only "is it a string" matters.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Other(&'static str),
}

/// YAML 1.1's implicit types (yaml.org/type: bool, float, int, merge, null, timestamp,
/// value), with bool widened to any letter case.
fn yaml11(s: &str) -> Kind {
    static TYPES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
        [
            ("bool", r"^(?i:y|n|yes|no|true|false|on|off)$"),
            (
                "float",
                r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            ),
            (
                "int",
                r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
            ),
            ("merge", r"^<<$"),
            ("null", r"^(?:~|null|Null|NULL|)$"),
            (
                "timestamp",
                r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$",
            ),
            ("value", r"^=$"),
        ]
        .into_iter()
        .map(|(n, r)| (n, Regex::new(r).expect("regex")))
        .collect()
    });
    TYPES
        .iter()
        .find(|(_, r)| r.is_match(s))
        .map_or(Kind::Str, |(n, _)| Kind::Other(n))
}

/// YAML 1.2's core schema.
fn yaml12(s: &str) -> Kind {
    static TYPES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
        [
            ("null", r"^(?:null|Null|NULL|~|)$"),
            ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$"),
            ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
            (
                "float",
                r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            ),
        ]
        .into_iter()
        .map(|(n, r)| (n, Regex::new(r).expect("regex")))
        .collect()
    });
    TYPES
        .iter()
        .find(|(_, r)| r.is_match(s))
        .map_or(Kind::Str, |(n, _)| Kind::Other(n))
}

/// Every plain scalar of a YAML text, as yaml-rust2's parser reports it.
fn plain_scalars(text: &str) -> Vec<String> {
    struct Collect(Vec<String>);
    impl MarkedEventReceiver for Collect {
        fn on_event(&mut self, ev: Event, _: Marker) {
            if let Event::Scalar(v, TScalarStyle::Plain, ..) = ev {
                self.0.push(v);
            }
        }
    }
    let mut c = Collect(Vec::new());
    Parser::new_from_str(text)
        .load(&mut c, true)
        .unwrap_or_else(|e| panic!("emitted YAML does not parse: {e}\n{text}"));
    c.0
}

/// Checks one emitted value against every reader; returns the YAML for messages.
fn check(value: &JsonValue, strings: &[&str]) -> String {
    let text = to_yaml(value);
    let back: JsonValue = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("serde_yaml cannot read it back: {e}\n{text}"));
    assert_eq!(&back, value, "serde_yaml reads it differently:\n{text}");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("yaml-rust2 cannot read it back: {e}\n{text}"));
    assert_eq!(
        yaml_rust_to_json(&docs[0]),
        *value,
        "yaml-rust2 reads it differently:\n{text}"
    );
    assert!(
        !text.contains(['\u{85}', '\u{2028}', '\u{2029}']),
        "a raw YAML 1.1 line break:\n{text:?}"
    );
    for p in plain_scalars(&text) {
        if strings.contains(&p.as_str()) {
            assert_eq!(yaml11(&p), Kind::Str, "plain `{p}` under YAML 1.1:\n{text}");
            assert_eq!(yaml12(&p), Kind::Str, "plain `{p}` under YAML 1.2:\n{text}");
        }
    }
    text
}

fn yaml_rust_to_json(y: &yaml_rust2::Yaml) -> JsonValue {
    use yaml_rust2::Yaml;
    match y {
        Yaml::String(s) => json!(s),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().expect("real")),
        Yaml::Boolean(b) => json!(b),
        Yaml::Null => JsonValue::Null,
        Yaml::Array(a) => JsonValue::Array(a.iter().map(yaml_rust_to_json).collect()),
        Yaml::Hash(h) => JsonValue::Object(
            h.iter()
                .map(|(k, v)| {
                    let Yaml::String(k) = k else {
                        panic!("a key that is not a string: {k:?}")
                    };
                    (k.clone(), yaml_rust_to_json(v))
                })
                .collect(),
        ),
        other => panic!("unexpected node {other:?}"),
    }
}

/// Strings near the edges of every resolver: the words, number shapes and the YAML
/// indicators, spliced with each other and with spaces, breaks and quotes.
fn tricky_string() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "yes",
        "No",
        "oN",
        "OFF",
        "y",
        "N",
        "true",
        "False",
        "null",
        "NULL",
        "~",
        "",
        "=",
        "<<",
        "0",
        "07",
        "0755",
        "08",
        "1_000",
        "0x1F",
        "0o17",
        "0b101",
        "1e3",
        "1E+3",
        "1.",
        ".5",
        "1.5e-3",
        ".inf",
        "-.Inf",
        ".NaN",
        "inf",
        "12:30",
        "1:20:30.5",
        "190:20:30",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "+",
        "-",
        ".",
        ":",
        "#",
        "?",
        "- ",
        ": ",
        " #",
        "'",
        "\"",
        "\\",
        "|",
        ">",
        "&a",
        "*a",
        "!x",
        "%",
        "@",
        "`",
        "[",
        "]",
        "{",
        "}",
        ",",
        " ",
        "\n",
        "\t",
        "\r",
        "\u{85}",
        "\u{2028}",
        "\u{202E}",
        "\u{FEFF}",
        "\u{7F}",
        "é",
        "---",
        "...",
        "v1.8.2",
        "--path.rootfs=/host",
        "a",
    ]);
    prop::collection::vec(atoms, 1..5).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn emitted_strings_read_back_as_the_same_strings_under_yaml_1_1_and_1_2(
        s in tricky_string(),
        any in "\\PC{0,12}",
    ) {
        let value = json!({
            "value": s,
            "list": [s, any, {"nested": s}],
            s.clone(): any,
        });
        check(&value, &[s.as_str(), any.as_str()]);
    }
}

#[test]
fn the_datadog_env_value_yes_is_quoted() {
    let v = json!({"env": [{"name": "DD_LOGS_CONFIG_K8S_CONTAINER_USE_FILE", "value": "yes"}]});
    let text = check(&v, &["yes"]);
    assert!(text.contains("value: 'yes'"), "{text}");
}

#[test]
fn every_word_and_number_the_issue_names_is_quoted() {
    for s in [
        "yes", "no", "on", "off", "y", "n", "YES", "oFf", "~", "null", "0755", "1_000", ".inf",
        "0x1F", "1e3", "12:30",
    ] {
        let text = check(&json!({ "k": s }), &[s]);
        assert!(
            !plain_scalars(&text).contains(&s.to_string()),
            "{s}: {text}"
        );
    }
}
