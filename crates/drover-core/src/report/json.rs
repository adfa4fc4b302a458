//! The JSON format: the [`Plan`] as serialised, schema `drover.dev/plan/v1`
//! (documented in `docs/plan-schema.md`).

use crate::plan::Plan;

/// Pretty-printed JSON with a trailing newline.
pub fn render(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("a plan is plain data");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_the_first_field() {
        let plan = Plan {
            schema: crate::plan::PLAN_SCHEMA.into(),
            fleet: "f".into(),
            namespace: "n".into(),
            base: None,
            head: None,
            stages: vec![],
            prune: vec![],
            summary: Default::default(),
        };
        let s = render(&plan);
        assert!(
            s.starts_with("{\n  \"schema\": \"drover.dev/plan/v1\""),
            "{s}"
        );
        let back: Plan = serde_json::from_str(&s).unwrap();
        assert_eq!(back, plan);
    }
}
