//! The human format: a header, per stage an aligned table of actions, prune, a
//! summary line, then the unified diffs. Colour only through [`Style`].

use super::{count, object_name, replacement_note, revisions, seconds, symbol};
use crate::diag::escape_control;
use crate::diff::Impact;
use crate::plan::{Action, ActionPlan, CompanionPlan, Plan};
use crate::style::{Style, table};

/// What an action does to pods, in words.
pub(crate) fn effect(a: &ActionPlan) -> &'static str {
    match (a.action, a.impact) {
        (Action::Create, _) if a.replaces.as_ref().is_some_and(|r| r.delete_first) => {
            "replace pods"
        }
        (Action::Create, _) if a.replaces.is_some() => "move pods",
        (Action::Create, _) => "start pods",
        (Action::Delete, _) => "stop pods",
        (Action::Unchanged, _) | (_, Impact::None) => "-",
        (_, Impact::Restart) => "restart",
        (_, Impact::RolloutSettings) => "rollout settings",
        (_, Impact::MetadataOnly) => "metadata only",
    }
}

/// `rows` as a table indented two spaces: the header dimmed, and each row's first
/// cell (its symbol) painted by the row's action in `marks`.
fn painted_table(style: &Style, header: &[&str], rows: &[Vec<String>], marks: &[Action]) -> String {
    let t = table(header, rows);
    let mut out = String::new();
    for (i, line) in t.lines().enumerate() {
        out.push_str("  ");
        match i.checked_sub(1).map(|r| (&rows[r][0], marks[r])) {
            None => out.push_str(&style.dim(line)),
            Some((sym, action)) => {
                let (sym, rest) = line.split_at(sym.len());
                out.push_str(&paint_symbol(style, action, sym));
                out.push_str(rest);
            }
        }
        out.push('\n');
    }
    out
}

fn paint_symbol(style: &Style, action: Action, s: &str) -> String {
    match action {
        Action::Create => style.green(s),
        Action::Update => style.yellow(s),
        Action::Delete => style.red(s),
        Action::Unchanged => style.dim(s),
    }
}

fn action_table(style: &Style, actions: &[ActionPlan], with_nodes: bool) -> String {
    let mut header = vec!["", "NAME", "GROUP", "PODS"];
    if with_nodes {
        header.extend(["NODES", "EST."]);
    }
    let rows: Vec<Vec<String>> = actions
        .iter()
        .map(|a| {
            let mut r = vec![
                symbol(a).to_string(),
                object_name(a),
                escape_control(&a.group),
                effect(a).to_string(),
            ];
            if with_nodes {
                r.push(count(a.nodes));
                r.push(match a.estimated_seconds {
                    Some(s) if s > 0 => seconds(s),
                    _ => "-".into(),
                });
            }
            r
        })
        .collect();
    let marks: Vec<Action> = actions.iter().map(|a| a.action).collect();
    let mut out = painted_table(style, &header, &rows, &marks);
    for a in actions {
        for f in &a.config_files {
            out.push_str(&format!(
                "  {} {}: config file {} changed\n",
                paint_symbol(style, a.action, symbol(a)),
                escape_control(&a.name),
                escape_control(f)
            ));
        }
        if let Some(note) = replacement_note(a) {
            out.push_str(&format!(
                "  {} {}: {note}\n",
                paint_symbol(style, a.action, symbol(a)),
                escape_control(&a.name)
            ));
        }
    }
    out
}

/// Colours a unified diff line by line and escapes control characters.
pub(crate) fn paint_diff(style: &Style, diff: &str) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let l = escape_control(line);
        let painted = if l.starts_with("+++") || l.starts_with("---") {
            style.bold(&l)
        } else if l.starts_with('+') {
            style.green(&l)
        } else if l.starts_with('-') {
            style.red(&l)
        } else if l.starts_with("@@") {
            style.cyan(&l)
        } else {
            l
        };
        out.push_str(&painted);
        out.push('\n');
    }
    out
}

/// `1 to create, 6 to update, 1 to delete, 5 unchanged`.
pub(crate) fn counts(plan: &Plan) -> String {
    let s = &plan.summary;
    let replacing = if s.replace > 0 {
        format!(" ({} replacing a live object)", s.replace)
    } else {
        String::new()
    };
    format!(
        "{} to create{replacing}, {} to update, {} to delete, {} unchanged",
        s.create, s.update, s.delete, s.unchanged
    )
}

/// The plan for a terminal or a log.
/// `  waves of NAME by KEY: zone-a 1+9+90, zone-b ...; N at once, budget B nodes`.
fn drive_line(name: &str, d: &crate::plan::DrivePlan) -> String {
    let mut scopes: Vec<(Option<&str>, Vec<String>)> = Vec::new();
    for w in &d.waves {
        match scopes.last_mut() {
            Some((scope, sizes)) if *scope == w.scope.as_deref() => sizes.push(w.nodes.to_string()),
            _ => scopes.push((w.scope.as_deref(), vec![w.nodes.to_string()])),
        }
    }
    let waves: Vec<String> = scopes
        .iter()
        .map(|(scope, sizes)| match scope {
            Some(s) => format!("{} {}", escape_control(s), sizes.join("+")),
            None if d.by.is_some() => format!("(no label) {}", sizes.join("+")),
            None => sizes.join("+"),
        })
        .collect();
    let by =
        d.by.as_deref()
            .map(|b| format!(" by {}", escape_control(b)))
            .unwrap_or_default();
    let mut facts = vec![format!("{} at once", d.max_unavailable)];
    if let Some(b) = d.budget_nodes {
        facts.push(format!("budget {b} node(s)"));
    }
    if let Some(c) = &d.disruption_class {
        facts.push(format!("class {}", escape_control(c)));
    }
    if d.wave_bake_seconds > 0 {
        facts.push(format!(
            "bake {} per wave",
            crate::syntax::format_duration(std::time::Duration::from_secs(d.wave_bake_seconds))
        ));
    }
    format!(
        "  waves of {}{by}: {}; {}\n",
        escape_control(name),
        waves.join(", "),
        facts.join(", ")
    )
}

pub fn render(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let with_nodes = plan.summary.nodes_restarted.is_some();
    out.push_str(&style.bold(&format!(
        "drover plan: fleet {} (namespace {})",
        escape_control(&plan.fleet),
        escape_control(&plan.namespace)
    )));
    if let Some(r) = revisions(plan) {
        out.push_str(&format!(", {r}"));
    }
    out.push('\n');
    if let Some(d) = plan.plan_digest.as_deref().filter(|_| plan.has_changes()) {
        out.push_str(&format!("plan digest: {}\n", escape_control(d)));
    }
    out.push('\n');
    if !plan.has_changes() {
        out.push_str(&format!(
            "no changes: {} DaemonSet(s) up to date\n",
            plan.summary.unchanged
        ));
        return out;
    }
    for s in &plan.stages {
        let mut head = format!("stage {}", escape_control(&s.name));
        let mut facts = vec![format!("groups {}", escape_control(&s.groups.join(", ")))];
        if s.bake_seconds > 0 {
            facts.push(format!("bake {}", seconds(s.bake_seconds)));
        }
        head.push_str(&format!(" ({})", facts.join("; ")));
        if let (Some(n), Some(t)) = (s.nodes_restarted, s.estimated_seconds) {
            head.push_str(&format!(": pods restart on {n} node(s), ~{}", seconds(t)));
        }
        out.push_str(&style.bold(&head));
        out.push('\n');
        if let Some(f) = &s.frozen {
            out.push_str(&format!(
                "  {} {}{} (window {}): new commits wait before this stage\n",
                style.yellow("frozen until"),
                if f.at_least { "at least " } else { "" },
                escape_control(&f.until),
                escape_control(&f.windows.join(", "))
            ));
        }
        if s.actions.is_empty() {
            out.push_str("  (no DaemonSets)\n");
        } else {
            out.push_str(&action_table(&style, &s.actions, with_nodes));
        }
        for a in s.actions.iter().filter(|a| a.restarts_pods) {
            if let Some(d) = &a.drive {
                out.push_str(&drive_line(&a.name, d));
            }
        }
        out.push('\n');
    }
    if !plan.prune.is_empty() {
        out.push_str(&style.bold("prune (after the last stage)"));
        out.push('\n');
        out.push_str(&action_table(&style, &plan.prune, with_nodes));
        out.push('\n');
    }
    if !plan.companions.is_empty() {
        out.push_str(&style.bold("companion objects"));
        out.push('\n');
        out.push_str(&companion_table(&style, &plan.companions));
        out.push('\n');
    }
    if !plan.config_files.is_empty() {
        out.push_str(&style.bold("config files"));
        out.push('\n');
        out.push_str(&config_file_table(&style, &plan.config_files));
        out.push('\n');
    }
    let s = &plan.summary;
    out.push_str(&format!(
        "{}; pods start, restart or stop in {} DaemonSet(s)",
        counts(plan),
        s.restarts
    ));
    if let (Some(n), Some(t)) = (s.nodes_restarted, s.estimated_seconds) {
        out.push_str(&format!(" on {n} node(s), est. ~{}", seconds(t)));
    }
    out.push_str(".\n");
    if let Some(c) = super::companion_counts(plan) {
        out.push_str(&format!("companion objects: {c}.\n"));
    }
    for v in &plan.verdicts {
        out.push_str(&format!(
            "{} {}\n",
            style.red("warning:"),
            escape_control(&v.to_string())
        ));
    }
    let privileged: Vec<&ActionPlan> = plan
        .actions()
        .filter(|a| !a.privileges_added.is_empty())
        .collect();
    if !privileged.is_empty() {
        out.push('\n');
        out.push_str(&style.bold("privileges added"));
        out.push('\n');
        for a in privileged {
            let p: Vec<String> = a.privileges_added.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "  {} {}: {}\n",
                paint_symbol(&style, a.action, a.action.symbol()),
                escape_control(&a.name),
                escape_control(&p.join(", "))
            ));
        }
    }
    for a in plan.actions().filter(|a| !a.diff.is_empty()) {
        out.push('\n');
        out.push_str(&style.bold(&format!("{} {} ({})", symbol(a), object_name(a), effect(a))));
        out.push('\n');
        out.push_str(&paint_diff(&style, &a.diff));
    }
    for f in &plan.config_files {
        out.push('\n');
        out.push_str(&style.bold(&format!(
            "{} config file {} of {} ({}; groups {})",
            f.action.symbol(),
            escape_control(&f.id()),
            escape_control(&f.daemon),
            escape_control(&f.source),
            escape_control(&f.groups.join(", "))
        )));
        out.push('\n');
        out.push_str(&paint_diff(&style, &f.diff));
    }
    for c in plan.companions.iter().filter(|c| !c.diff.is_empty()) {
        out.push('\n');
        out.push_str(&style.bold(&format!(
            "{} {} ({})",
            c.action.symbol(),
            escape_control(&c.object),
            escape_control(&c.source)
        )));
        out.push('\n');
        out.push_str(&paint_diff(&style, &c.diff));
    }
    out
}

/// The config files that change: the file, its daemon, the groups it reaches, and
/// where it is in the repository.
fn config_file_table(style: &Style, files: &[crate::config_diff::ConfigFilePlan]) -> String {
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            vec![
                f.action.symbol().to_string(),
                escape_control(&f.id()),
                escape_control(&f.daemon),
                escape_control(&f.groups.join(", ")),
                escape_control(&f.source),
            ]
        })
        .collect();
    let marks: Vec<Action> = files.iter().map(|f| f.action).collect();
    painted_table(
        style,
        &["", "FILE", "DAEMON", "GROUPS", "SOURCE"],
        &rows,
        &marks,
    )
}

/// The companion objects' actions: the object, whose it is, and its file.
fn companion_table(style: &Style, companions: &[CompanionPlan]) -> String {
    let rows: Vec<Vec<String>> = companions
        .iter()
        .map(|c| {
            vec![
                c.action.symbol().to_string(),
                escape_control(&c.object),
                super::companion_owner(c),
                c.stage
                    .as_deref()
                    .map_or_else(|| "-".to_string(), escape_control),
                escape_control(&c.source),
            ]
        })
        .collect();
    let marks: Vec<Action> = companions.iter().map(|c| c.action).collect();
    painted_table(
        style,
        &["", "OBJECT", "OF", "BEFORE STAGE", "FILE"],
        &rows,
        &marks,
    )
}

#[cfg(test)]
mod tests {
    use super::drive_line;
    use crate::plan::{DrivePlan, WavePlan};

    #[test]
    fn a_driven_daemonset_prints_its_waves_zone_by_zone_with_its_limits() {
        let wave = |scope: &str, number, nodes| WavePlan {
            scope: Some(scope.into()),
            number,
            nodes,
        };
        let d = DrivePlan {
            waves: vec![
                wave("zone-a", 1, 1),
                wave("zone-a", 2, 9),
                wave("zone-a", 3, 90),
                wave("zone-b", 1, 1),
                wave("zone-b", 2, 99),
            ],
            by: Some("topology.kubernetes.io/zone".into()),
            max_unavailable: 10,
            budget_nodes: Some(15),
            disruption_class: Some("node-critical".into()),
            min_ready_seconds: 0,
            wave_bake_seconds: 45,
        };
        assert_eq!(
            drive_line("cni-all", &d),
            "  waves of cni-all by topology.kubernetes.io/zone: zone-a 1+9+90, zone-b 1+99; 10 at once, budget 15 node(s), class node-critical, bake 45s per wave\n"
        );
    }
}
