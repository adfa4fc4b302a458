//! The Markdown format, for a pull-request comment: a summary table of stages, then
//! the part that is never cut (verdicts, every created and deleted object, every
//! change that adds privilege), then one collapsible `<details>` section per changed
//! DaemonSet with its diff, those that matter first, cut (routine ones first) to stay
//! under GitHub's comment size limit.

use super::text::{counts, effect};
use super::{count, object_name, replacement_note, revisions, seconds, symbol};
use crate::diag::escape_control;
use crate::plan::{Action, ActionPlan, CompanionPlan, Plan};
use crate::trust::{SignatureStatus, Verification};

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

/// An action in a word: `replace` and `move` for creates that replace a live
/// object, else the action's own name.
fn verb(a: &ActionPlan) -> &'static str {
    match &a.replaces {
        Some(r) if r.delete_first => "replace",
        Some(_) => "move",
        None => a.action.as_str(),
    }
}

fn details(a: &ActionPlan) -> String {
    let mut summary = format!(
        "<code>{} {}</code>: {}",
        symbol(a),
        html(&object_name(a)),
        verb(a)
    );
    match (a.action, a.nodes) {
        (Action::Unchanged, _) => {}
        (_, Some(n)) if a.restarts_pods => {
            summary.push_str(&format!(", {} on {n} node(s)", effect(a)));
        }
        _ => summary.push_str(&format!(", {}", effect(a))),
    }
    summary.push_str(&format!(" (stage {})", html(&a.stage)));
    if !a.config_files.is_empty() {
        summary.push_str(&format!(
            "; config file {} changed",
            html(&a.config_files.join(", "))
        ));
    }
    let body: String = a
        .diff
        .lines()
        .map(|l| format!("{}\n", escape_control(l)))
        .collect();
    let f = fence(&body);
    format!("<details><summary>{summary}</summary>\n\n{f}diff\n{body}{f}\n\n</details>\n\n")
}

/// A companion object's unified diff, folded.
fn companion_details(c: &CompanionPlan) -> String {
    let summary = format!(
        "<code>{} {}</code>: {} ({})",
        c.action.symbol(),
        html(&c.object),
        c.action.as_str(),
        html(&c.source)
    );
    let body: String = c
        .diff
        .lines()
        .map(|l| format!("{}\n", escape_control(l)))
        .collect();
    let f = fence(&body);
    format!("<details><summary>{summary}</summary>\n\n{f}diff\n{body}{f}\n\n</details>\n\n")
}

/// A config file's unified diff, folded.
fn config_file_details(f: &crate::config_diff::ConfigFilePlan) -> String {
    let summary = format!(
        "<code>{} config file {}</code> of {}: {} ({}; groups {})",
        f.action.symbol(),
        html(&f.id()),
        html(&f.daemon),
        f.action.as_str(),
        html(&f.source),
        html(&f.groups.join(", "))
    );
    let body: String = f
        .diff
        .lines()
        .map(|l| format!("{}\n", escape_control(l)))
        .collect();
    let fence_ = fence(&body);
    format!(
        "<details><summary>{summary}</summary>\n\n{fence_}diff\n{body}{fence_}\n\n</details>\n\n"
    )
}

/// The config files that change, one row each (never cut); empty without any.
fn config_file_table(plan: &Plan) -> String {
    if plan.config_files.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "Config files: {} changed.\n\n| | file | of | groups | source |\n|---|---|---|---|---|\n",
        plan.config_files.len()
    );
    for f in &plan.config_files {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            f.action.symbol(),
            cell(&f.id()),
            cell(&f.daemon),
            cell(&f.groups.join(", ")),
            cell(&f.source)
        ));
    }
    out.push('\n');
    out
}

/// The companion objects' actions, one row each (never cut); empty without any.
fn companion_table(plan: &Plan) -> String {
    let Some(counts) = super::companion_counts(plan) else {
        return String::new();
    };
    let mut out = format!(
        "Companion objects: {counts}.\n\n| | object | of | before stage | file |\n|---|---|---|---|---|\n"
    );
    for c in &plan.companions {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            c.action.symbol(),
            cell(&c.object),
            cell(&super::companion_owner(c)),
            cell(c.stage.as_deref().unwrap_or("-")),
            cell(&c.source)
        ));
    }
    out.push('\n');
    out
}

/// Whether a reviewer must see this action whatever else is left out.
fn matters(a: &ActionPlan) -> bool {
    matches!(a.action, Action::Create | Action::Delete) || !a.privileges_added.is_empty()
}

/// The part of the comment that is never cut: what the plan's verdicts say, every
/// created and deleted object, every change that adds privilege. One line each; it
/// is written in full whatever the size limit (only diffs are left out to fit).
fn review_first(plan: &Plan) -> String {
    let items: Vec<&ActionPlan> = plan.actions().filter(|a| matters(a)).collect();
    if items.is_empty() && plan.verdicts.is_empty() {
        return String::new();
    }
    let mut out = String::from("**Review first** (never left out of this comment):\n\n");
    for v in &plan.verdicts {
        out.push_str(&format!("- :warning: **{}**\n", cell(&v.to_string())));
    }
    for a in items {
        let mut line = format!(
            "- <code>{} {}</code>: {}",
            symbol(a),
            html(&object_name(a)),
            verb(a)
        );
        match a.action {
            Action::Create | Action::Delete => {
                line.push_str(&format!(" (stage {}", cell(&a.stage)));
                if let Some(n) = a.nodes {
                    line.push_str(&format!(", {} on {n} node(s)", effect(a)));
                }
                line.push(')');
            }
            _ => line.push_str(&format!(" (stage {})", cell(&a.stage))),
        }
        if !a.privileges_added.is_empty() {
            let p: Vec<String> = a
                .privileges_added
                .iter()
                .map(|p| cell(&p.to_string()).replace('`', "'"))
                .collect();
            line.push_str(&format!(", **adds privilege**: {}", p.join("; ")));
        }
        // A replacement deletes a live object: what and why, here where it is never cut.
        if let Some(note) = replacement_note(a) {
            line.push_str(&format!("; {}", cell(&note)));
        }
        line.push('\n');
        out.push_str(&line);
    }
    out.push('\n');
    out
}

/// `Head commit signature: **good** (ssh `SHA256:…`, alice@example.com)`.
fn signature_line(v: &Verification) -> String {
    let mut out = format!("Head commit signature: **{}**", v.status);
    let mut facts = Vec::new();
    if let Some(f) = v.format {
        facts.push(f.as_str().to_string());
    }
    if let Some(k) = &v.key {
        facts.push(format!("`{}`", cell(k).replace('`', "'")));
    }
    if !facts.is_empty() {
        out.push_str(&format!(" ({}", facts.join(" ")));
        if let Some(s) = &v.signer {
            out.push_str(&format!(", {}", cell(s)));
        }
        out.push(')');
    }
    if v.status != SignatureStatus::Good
        && let Some(r) = &v.reason
    {
        out.push_str(&format!(": {}", cell(r)));
    }
    out.push_str("\n\n");
    out
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
    if let Some(v) = &plan.head_signature {
        out.push_str(&signature_line(v));
    }
    if let Some(d) = plan.plan_digest.as_deref().filter(|_| plan.has_changes()) {
        // The digest is checked to be one (hex after a fixed prefix) before it is
        // printed; anything else is left out rather than escaped into the comment.
        if crate::approval::is_digest(d) {
            out.push_str(&format!(
                "Plan digest: `{d}` — to apply exactly this change with `sync --require-approved-plan`, merge with the trailer `{}: {d}`.\n\n",
                crate::approval::TRAILER
            ));
        }
    }
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
    out.push_str(&companion_table(plan));
    out.push_str(&config_file_table(plan));
    out.push_str(&review_first(plan));

    // Diffs that matter first, so that the routine ones are the ones cut; the
    // companion objects' after the DaemonSets' (their table above is never cut).
    let mut changed: Vec<&ActionPlan> = plan.actions().filter(|a| !a.diff.is_empty()).collect();
    changed.sort_by_key(|a| !matters(a));
    let changed: Vec<String> = changed
        .into_iter()
        .map(details)
        .chain(plan.config_files.iter().map(config_file_details))
        .chain(
            plan.companions
                .iter()
                .filter(|c| !c.diff.is_empty())
                .map(companion_details),
        )
        .collect();
    let mut shown = 0;
    for d in &changed {
        if out.chars().count() + d.chars().count() + NOTE_RESERVE > limit {
            break;
        }
        out.push_str(d);
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

    fn action(
        name: &str,
        action: Action,
        privileges: Vec<crate::privilege::Privilege>,
    ) -> ActionPlan {
        ActionPlan {
            name: name.into(),
            daemon: name.into(),
            group: "g".into(),
            stage: "s".into(),
            action,
            restarts_pods: true,
            impact: crate::diff::Impact::Restart,
            changes: vec![],
            diff: format!(
                "--- a/{name}\n+++ b/{name}\n{}",
                "+ noise line of a routine diff\n".repeat(40)
            ),
            nodes: Some(3),
            estimated_seconds: Some(10),
            node_names: vec![],
            privileges_added: privileges,
            drive: None,
            namespace: None,
            replaces: None,
            config_files: Vec::new(),
        }
    }

    fn plan_of(actions: Vec<ActionPlan>, prune: Vec<ActionPlan>) -> Plan {
        let mut summary = crate::plan::Summary::default();
        for a in actions.iter().chain(&prune) {
            match a.action {
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Delete => summary.delete += 1,
                Action::Unchanged => summary.unchanged += 1,
            }
        }
        Plan {
            schema: crate::plan::PLAN_SCHEMA.into(),
            fleet: "f".into(),
            namespace: "n".into(),
            base: None,
            head: None,
            stages: vec![crate::plan::StagePlan {
                name: "s".into(),
                groups: vec!["g".into()],
                bake_seconds: 0,
                timeout_seconds: 60,
                actions,
                nodes_restarted: None,
                estimated_seconds: None,
                frozen: None,
                progress_deadline_seconds: None,
                max_unobserved_seconds: None,
                node_conditions: vec![],
            }],
            prune,
            summary,
            verdicts: vec![],
            head_signature: None,
            plan_digest: None,
            companions: vec![],
            config_files: vec![],
            config_maps: vec![],
        }
    }

    #[test]
    fn noisy_updates_never_push_a_privileged_create_or_a_delete_out_of_the_comment() {
        use crate::privilege::Privilege;
        let mut actions: Vec<ActionPlan> = (0..500)
            .map(|i| action(&format!("noise-{i:03}"), Action::Update, vec![]))
            .collect();
        // Sorted last by name, as the plan sorts them.
        actions.push(action(
            "zz-new-privileged",
            Action::Create,
            vec![
                Privilege::Privileged {
                    container: "zz".into(),
                },
                Privilege::HostNamespace {
                    namespace: "hostPID".into(),
                },
            ],
        ));
        actions.push(action(
            "zz-widened",
            Action::Update,
            vec![Privilege::Capability {
                capability: "SYS_ADMIN".into(),
                container: "w".into(),
            }],
        ));
        let prune = vec![action("zz-gone", Action::Delete, vec![])];
        let plan = plan_of(actions, prune);
        for limit in [MAX_CHARS, 5_000, 100] {
            let md = render_with_limit(&plan, limit);
            for must in [
                "<code>+ zz-new-privileged</code>: create",
                "**adds privilege**: privileged container 'zz'; hostPID",
                "<code>~ zz-widened</code>: update (stage s), **adds privilege**: capability 'SYS_ADMIN'",
                "<code>- zz-gone</code>: delete",
            ] {
                assert!(md.contains(must), "limit {limit}: `{must}` missing");
            }
            assert!(
                !md.contains("<code>~ noise-000</code>: update (stage"),
                "routine updates are not listed"
            );
            if limit == MAX_CHARS {
                assert!(md.chars().count() <= MAX_CHARS);
                // The diffs that matter come first; the routine ones are cut.
                assert!(md.contains("<summary><code>+ zz-new-privileged</code>"));
                assert!(md.contains("<summary><code>- zz-gone</code>"));
                assert!(md.contains("diff(s) left out"));
            }
        }
    }

    #[test]
    fn the_head_signature_is_one_line_under_the_header() {
        let v = Verification {
            status: SignatureStatus::Good,
            format: Some(crate::trust::SignatureFormat::Ssh),
            key: Some("SHA256:abc".into()),
            signer: Some("alice@example.com".into()),
            reason: None,
        };
        assert_eq!(
            signature_line(&v),
            "Head commit signature: **good** (ssh `SHA256:abc`, alice@example.com)\n\n"
        );
        let u = Verification::unsigned();
        assert_eq!(
            signature_line(&u),
            "Head commit signature: **unsigned**: the commit has no signature\n\n"
        );
        let hostile = Verification {
            signer: Some("<img src=x>|".into()),
            ..v
        };
        assert!(signature_line(&hostile).contains("&lt;img src=x&gt;\\|"));
    }

    #[test]
    fn fences_outgrow_backticks_in_the_body() {
        assert_eq!(fence("plain"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }
}
