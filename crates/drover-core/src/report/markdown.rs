//! The Markdown format, for a pull-request comment: a summary table of stages, then
//! one collapsible `<details>` section per changed DaemonSet with its diff, cut to
//! stay under GitHub's comment size limit.

use super::text::{counts, effect};
use super::{count, revisions, seconds};
use crate::diag::escape_control;
use crate::plan::{Action, ActionPlan, Plan};

/// Largest comment this renders, in characters; GitHub refuses bodies over 65,536,
/// and the caller may add a marker line or two.
pub const MAX_CHARS: usize = 60_000;

/// Room kept for the note that says diffs were left out.
const NOTE_RESERVE: usize = 400;

/// Text for a table cell: control characters escaped, `|`, `<`, `>` made literal.
fn cell(s: &str) -> String {
    escape_control(s)
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text inside HTML (`<summary>`).
fn html(s: &str) -> String {
    escape_control(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A code fence longer than any run of backticks in `body`.
fn fence(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

fn details(a: &ActionPlan) -> String {
    let mut summary = format!(
        "<code>{} {}</code>: {}",
        a.action.symbol(),
        html(&a.name),
        a.action.as_str()
    );
    match (a.action, a.nodes) {
        (Action::Unchanged, _) => {}
        (_, Some(n)) if a.restarts_pods => {
            summary.push_str(&format!(", {} on {n} node(s)", effect(a)));
        }
        _ => summary.push_str(&format!(", {}", effect(a))),
    }
    summary.push_str(&format!(" (stage {})", html(&a.stage)));
    let body: String = a
        .diff
        .lines()
        .map(|l| format!("{}\n", escape_control(l)))
        .collect();
    let f = fence(&body);
    format!("<details><summary>{summary}</summary>\n\n{f}diff\n{body}{f}\n\n</details>\n\n")
}

/// The comment body, at most [`MAX_CHARS`] characters.
pub fn render(plan: &Plan) -> String {
    render_with_limit(plan, MAX_CHARS)
}

/// The comment body, with diffs left out (and a note saying so) past `limit`
/// characters.
pub fn render_with_limit(plan: &Plan, limit: usize) -> String {
    let mut out = format!(
        "### drover plan for `{}`\n\n",
        html(&plan.fleet).replace('`', "'")
    );
    let revs = revisions(plan)
        .map(|r| format!("`{r}`: "))
        .unwrap_or_default();
    if !plan.has_changes() {
        out.push_str(&format!(
            "{revs}**no changes**; {} DaemonSet(s) up to date.\n",
            plan.summary.unchanged
        ));
        return out;
    }
    let s = &plan.summary;
    out.push_str(&format!("{revs}{}", counts(plan)));
    out.push_str(&format!(
        "; pods start, restart or stop in {} DaemonSet(s)",
        s.restarts
    ));
    if let (Some(n), Some(t)) = (s.nodes_restarted, s.estimated_seconds) {
        out.push_str(&format!(" on **{n}** node(s), est. ~{}", seconds(t)));
    }
    out.push_str(".\n\n");
    let with_nodes = s.nodes_restarted.is_some();
    out.push_str("| stage | groups | create | update | delete | unchanged |");
    out.push_str(if with_nodes {
        " nodes restarted | est. |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n|---|---|---:|---:|---:|---:|\n"
    });
    let row = |name: &str,
               groups: &str,
               actions: &[ActionPlan],
               nodes: Option<usize>,
               est: Option<u64>| {
        let n = |k: Action| actions.iter().filter(|a| a.action == k).count();
        let mut r = format!(
            "| {} | {} | {} | {} | {} | {} |",
            cell(name),
            cell(groups),
            n(Action::Create),
            n(Action::Update),
            n(Action::Delete),
            n(Action::Unchanged)
        );
        if with_nodes {
            r.push_str(&format!(
                " {} | {} |",
                count(nodes),
                est.map_or_else(|| "-".to_string(), seconds)
            ));
        }
        r.push('\n');
        r
    };
    for st in &plan.stages {
        out.push_str(&row(
            &st.name,
            &st.groups.join(", "),
            &st.actions,
            st.nodes_restarted,
            st.estimated_seconds,
        ));
    }
    if !plan.prune.is_empty() {
        let nodes = with_nodes.then(|| {
            plan.prune
                .iter()
                .flat_map(|a| a.node_names.iter())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        });
        out.push_str(&row("prune", "", &plan.prune, nodes, None));
    }
    out.push('\n');

    let changed: Vec<&ActionPlan> = plan.actions().filter(|a| !a.diff.is_empty()).collect();
    let mut shown = 0;
    for a in &changed {
        let d = details(a);
        if out.chars().count() + d.chars().count() + NOTE_RESERVE > limit {
            break;
        }
        out.push_str(&d);
        shown += 1;
    }
    if shown < changed.len() {
        let left = changed.len() - shown;
        let args = match (&plan.base, &plan.head) {
            (Some(b), Some(h)) => format!(
                " --base {} --head {}",
                cell(&b[..b.len().min(12)]),
                cell(&h[..h.len().min(12)])
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "*{left} of {} diff(s) left out to keep this comment under GitHub's size limit: \
             run `drover diff{args}` locally to see them.*\n",
            changed.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("a|b<c>\u{1b}"), "a\\|b&lt;c&gt;\\u{1b}");
        assert_eq!(html("<x & y>"), "&lt;x &amp; y&gt;");
    }

    #[test]
    fn fences_outgrow_backticks_in_the_body() {
        assert_eq!(fence("plain"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }
}
