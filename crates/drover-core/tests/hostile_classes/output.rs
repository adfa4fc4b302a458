//! Class 8: output hygiene. Before: bidi controls and zero-width characters were
//! printed raw in text and Markdown, C1 controls raw in JSON, and secrets unmasked
//! as a split argument, URL userinfo or an `Authorization` header value.

use drover_core::diag::is_deceptive;
use drover_core::plan::{PlanMeta, compare_renders, plan};
use drover_core::report;
use drover_core::style::Style;

use super::support::*;

/// Text, Markdown and JSON of the plan from the base fleet to the agent daemon `head`.
fn outputs(head: &str) -> [(&'static str, String); 3] {
    let base = load(&fleet_with(&[])).expect("base");
    let head = load(&fleet_with(&[("daemons/agent.yaml", head)])).unwrap_or_else(|d| panic!("{d}"));
    let (b, h) = (render_all(&base), render_all(&head));
    let p = plan(
        &head,
        &h,
        compare_renders(Some(&b), &h),
        None,
        PlanMeta::default(),
    );
    [
        ("text", report::text::render(&p, Style::plain())),
        ("markdown", report::markdown::render(&p)),
        ("json", report::json::render(&p)),
    ]
}

#[test]
fn invisible_and_reordering_characters_never_reach_any_output_raw() {
    // Written as YAML escapes (raw ones are refused by the loader).
    for c in [
        "\\u202e", "\\u2066", "\\u2069", "\\u200e", "\\u200f", "\\u061c", "\\u200b", "\\u200d",
        "\\ufeff", "\\x85", "\\x9b", "\\u2028",
    ] {
        let head = agent_with(&format!("  env: {{NOTE: \"admin{c}only\"}}\n"));
        for (format, out) in outputs(&head) {
            let raw: Vec<String> = out
                .chars()
                .filter(|ch| (ch.is_control() && *ch != '\n') || is_deceptive(*ch))
                .map(|ch| format!("U+{:04X}", ch as u32))
                .collect();
            assert!(
                raw.is_empty(),
                "{format} carries {raw:?} raw for {c}:\n{out}"
            );
            assert!(
                out.contains("admin"),
                "{format}: the value is shown (escaped)"
            );
        }
    }
}

#[test]
fn secrets_in_split_arguments_urls_and_headers_are_masked_in_every_format() {
    let head = agent_with(
        "  command: [/agent, --password, PLANTED-one, --dsn=postgres://app:PLANTED-two@db/x]\n  readinessProbe:\n    httpGet:\n      path: /health\n      port: 9100\n      httpHeaders: [{name: Authorization, value: \"Bearer PLANTED-three\"}]\n  env: {UPSTREAM: \"https://PLANTED-four@git.example/r\", HDR: \"Cookie: PLANTED-five\"}\n",
    );
    for (format, out) in outputs(&head) {
        assert!(!out.contains("PLANTED"), "{format} leaks a secret:\n{out}");
        assert!(out.contains("<masked>"), "{format}");
    }
}
