//! Every broken fleet under fixtures/invalid: it must fail, its diagnostics are a
//! reviewed snapshot, and each diagnostic sits where the case's CASE.md says.

use crate::support::{load_dir, repo_root};
use drover_core::diag::Diagnostic;

/// A position as CASE.md writes it: `path:line:column`, or `(repository)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    path: String,
    line: usize,
    column: usize,
}

/// Every backticked `path:line:column` (or `(repository)`) in CASE.md, in order.
fn expected_positions(case_md: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    for (i, chunk) in case_md.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        if chunk == "(repository)" {
            out.push(Expected {
                path: String::new(),
                line: 0,
                column: 0,
            });
            continue;
        }
        let mut parts = chunk.rsplitn(3, ':');
        let (Some(col), Some(line), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(line), Ok(column)) = (line.parse(), col.parse()) else {
            continue;
        };
        if path.contains(' ') || path.is_empty() {
            continue;
        }
        out.push(Expected {
            path: path.to_string(),
            line,
            column,
        });
    }
    out
}

/// Cases whose column differs from CASE.md by design, and why.
const COLUMN_DIFFERS: &[(&str, &str)] = &[
    (
        "22-in-with-empty-values",
        "a collection value is located at its key (`values:`), not at the `[]`",
    ),
    (
        "33-env-value-and-value-from",
        "points at the `value` scalar (17:14), CASE.md at its key (17:7)",
    ),
];

/// Cases where CASE.md and drover disagree on which of two files holds the
/// "second" definition: drover orders files by path bytes, as git does, and
/// `agent-v2.yaml` sorts before `agent.yaml` (`-` < `.`). The diagnostic is at the
/// other file, same line and column, and names CASE.md's file as the first.
const SECOND_OCCURRENCE_ORDER: &[&str] = &["06-duplicate-daemon-name", "07-duplicate-group-name"];

fn cases() -> Vec<String> {
    let dir = repo_root().join("fixtures/invalid");
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    cases
}

fn diagnostics(case: &str) -> Vec<Diagnostic> {
    match load_dir(format!("fixtures/invalid/{case}")) {
        Ok(f) => panic!("{case}: the broken fleet validated: fleet `{}`", f.name),
        Err(d) => d.0,
    }
}

fn text(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

#[test]
fn there_are_at_least_twenty_invalid_fixtures() {
    let n = cases().len();
    assert!(n >= 20, "only {n} invalid fixtures");
}

#[test]
fn every_invalid_fixture_fails_with_its_reviewed_diagnostics() {
    for case in cases() {
        let diags = diagnostics(&case);
        assert!(!diags.is_empty(), "{case}: Err without diagnostics");
        insta::with_settings!({snapshot_suffix => case.clone(), description => std::fs::read_to_string(repo_root().join("fixtures/invalid").join(&case).join("CASE.md")).unwrap()}, {
            insta::assert_snapshot!("invalid_fixture", text(&diags));
        });
    }
}

#[test]
fn every_invalid_fixture_reports_each_mistake_where_its_case_file_says() {
    let mut failures = Vec::new();
    for case in cases() {
        let md = std::fs::read_to_string(
            repo_root()
                .join("fixtures/invalid")
                .join(&case)
                .join("CASE.md"),
        )
        .unwrap();
        let expected = expected_positions(&md);
        assert!(
            !expected.is_empty(),
            "{case}: no `file:line:col` in CASE.md: {md}"
        );
        let diags = diagnostics(&case);
        let report = |why: String| {
            format!(
                "{case}: {why}\n  CASE.md: {}\n  got:\n{}",
                md.trim(),
                text(&diags)
            )
        };
        // One deliberate mistake per fixture (five in 99-many-errors): no more,
        // no fewer diagnostics.
        if diags.len() != expected.len() {
            failures.push(report(format!(
                "{} diagnostic(s), CASE.md lists {}",
                diags.len(),
                expected.len()
            )));
            continue;
        }
        for (d, e) in diags.iter().zip(&expected) {
            if SECOND_OCCURRENCE_ORDER.contains(&case.as_str()) {
                let first = format!("the first is {}:{}", e.path, e.line);
                if d.path == e.path
                    || !d.message.contains(&first)
                    || (d.pos.line, d.pos.column) != (e.line, e.column)
                {
                    failures.push(report(format!(
                        "expected the duplicate at the other file, naming `{first}`"
                    )));
                }
                continue;
            }
            if d.path != e.path || d.pos.line != e.line {
                failures.push(report(format!(
                    "at `{}:{}`, CASE.md says `{}:{}`",
                    d.path, d.pos.line, e.path, e.line
                )));
                continue;
            }
            let column_differs = COLUMN_DIFFERS.iter().any(|(c, _)| *c == case);
            if !column_differs && d.pos.column != e.column {
                failures.push(report(format!(
                    "column {}, CASE.md says {}",
                    d.pos.column, e.column
                )));
            }
            if column_differs && d.pos.column == e.column {
                failures.push(report(
                    "column now matches CASE.md: drop it from COLUMN_DIFFERS".into(),
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn many_errors_fixture_reports_all_five_mistakes_sorted_by_file_and_line() {
    let diags = diagnostics("99-many-errors");
    let got: Vec<(&str, usize, &str)> = diags
        .iter()
        .map(|d| (d.path.as_str(), d.pos.line, d.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("daemons/agent.yaml", 15, "spec.groups[0]"),
            ("daemons/exporter.yaml", 9, "spec.ports[0].containerPort"),
            ("daemons/exporter.yaml", 13, "spec.resources.requests.cpu"),
            ("drover.yaml", 20, "spec.onFailure"),
            (
                "groups/canary.yaml",
                10,
                "spec.selector.matchExpressions[0].operator"
            ),
        ],
        "{}",
        text(&diags)
    );
}

#[test]
fn unknown_fields_come_with_a_did_you_mean_hint() {
    for (case, hint) in [
        ("01-unknown-field-in-daemon", "did you mean `image`?"),
        ("02-unknown-field-in-fleet", "did you mean `onFailure`?"),
        (
            "03-unknown-field-in-nodegroup",
            "did you mean `tolerations`?",
        ),
        ("27-unknown-kind", "did you mean `Daemon`?"),
    ] {
        let diags = diagnostics(case);
        assert_eq!(
            diags[0].hint.as_deref(),
            Some(hint),
            "{case}: {}",
            text(&diags)
        );
    }
}

#[test]
fn case_positions_are_parsed_from_backticks() {
    assert_eq!(
        expected_positions("`a/b.yaml:3:14`: bad; see c.yaml:1:1 and `x y:1:2`"),
        [Expected {
            path: "a/b.yaml".into(),
            line: 3,
            column: 14
        }]
    );
    assert_eq!(expected_positions("`(repository)`: none")[0].line, 0);
}
