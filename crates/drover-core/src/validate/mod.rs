//! Validation of the whole fleet, before anything else happens.
//!
//! Owns: every rule across and within documents, each reported with file, line,
//! column and field, all at once. Must not: stop at the first error, or let anything
//! invalid through into [`Fleet`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as JsonValue;

use super::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use super::fleet::{DEFAULT_MAX_UNOBSERVED, DEFAULT_STAGE_TIMEOUT, Daemon, Fleet, Group, Stage};
use super::freeze;
use super::limits::Limits;
use super::load::{LoadedFleet, Located, SourceFile, load};
use super::model::{
    DaemonSpec, Document, FleetSpec, IntOrPercent, NodeGroupSpec, Resources, RolloutSpec,
    Toleration,
};
use super::selector::{AffinityError, Op, affinity, requirements, satisfiable};
use super::syntax;

mod config_files;
mod cross;

pub use config_files::{MAX_CONFIG_MAP_BYTES, config_map_key};
mod pod_spec;
mod pod_template;

/// What `groups: [all]` means; no NodeGroup may take the name.
pub const ALL_GROUPS: &str = "all";

/// Labels drover sets itself; a fleet may not set them.
pub const RESERVED_LABEL_PREFIXES: [&str; 3] = [
    "drover.dev/",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/name",
];

/// Loads and validates a fleet from its files.
///
/// # Errors
/// Every problem found, sorted by file and position.
pub fn load_fleet(files: &[SourceFile], limits: &Limits) -> Result<Fleet, Diagnostics> {
    let (loaded, diags) = load(files, limits);
    validate(&loaded, diags, limits)
}

/// Validates loaded documents; `diags` carries the load errors so all are reported.
///
/// # Errors
/// Every problem found, sorted by file and position.
pub fn validate(
    loaded: &LoadedFleet,
    diags: Diagnostics,
    limits: &Limits,
) -> Result<Fleet, Diagnostics> {
    let mut v = Validator {
        diags,
        limits,
        config: &loaded.config_files,
    };
    let fleet = v.fleet(loaded);
    if v.diags.is_empty()
        && let Some(f) = fleet
    {
        return Ok(f);
    }
    Err(v.diags.sorted())
}

struct Validator<'a> {
    diags: Diagnostics,
    limits: &'a Limits,
    /// The files under `config/`, by path.
    config: &'a BTreeMap<String, std::sync::Arc<[u8]>>,
}

type FleetDoc = Located<Document<FleetSpec>>;
type GroupDoc = Located<Document<NodeGroupSpec>>;
type DaemonDoc = Located<Document<DaemonSpec>>;

impl Validator<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn check<T>(&mut self, doc: &Located<T>, field: &str, r: Result<(), String>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.push(doc.diag(field, e));
                false
            }
        }
    }

    fn fleet(&mut self, loaded: &LoadedFleet) -> Option<Fleet> {
        let fleet_doc = match loaded.fleets.as_slice() {
            [] => {
                if self.diags.is_empty() {
                    self.push(Diagnostic::new(
                        "",
                        Pos::default(),
                        "",
                        "no Fleet document found (conventionally drover.yaml at the root)",
                    ));
                }
                None
            }
            [one] => Some(one),
            [first, rest @ ..] => {
                for f in rest {
                    self.push(f.diag(
                        "kind",
                        format!(
                            "a second Fleet document; the first is {}:{}",
                            first.path,
                            first.index.pos("kind").line
                        ),
                    ));
                }
                Some(first)
            }
        };
        for d in &loaded.fleets {
            self.metadata(d, &d.value.metadata.name, &d.value.metadata.labels);
        }
        let groups = self.groups(&loaded.groups, &loaded.failed, fleet_doc);
        let stages = fleet_doc.map(|f| self.stages(f, groups.as_deref().unwrap_or(&[])));
        let daemons = self.daemons(loaded, fleet_doc);
        let fleet_doc = fleet_doc?;
        let spec = &fleet_doc.value.spec;
        let companions = self.companions(loaded, fleet_doc);
        self.check(
            fleet_doc,
            "spec.namespace",
            syntax::dns_label(&spec.namespace),
        );
        let fr = spec.prune.max_delete_fraction;
        if !(0.0..=1.0).contains(&fr) || fr.is_nan() {
            self.push(fleet_doc.diag(
                "spec.prune.maxDeleteFraction",
                format!("must be between 0 and 1 (is {fr})"),
            ));
        }
        self.rollout(fleet_doc, "spec.defaults.rollout", &spec.defaults.rollout);
        let node_conditions = self.node_conditions(fleet_doc, &spec.node_conditions);
        let freeze_windows = freeze::validate_windows(
            &spec.freeze_windows,
            &spec.groups,
            |field, message, hint| fleet_doc.diag(field, message).with_hint(hint),
        )
        .map_err(|ds| ds.into_iter().for_each(|d| self.push(d)))
        .ok();
        let groups = groups?;
        let daemons = daemons?;
        let stages = stages??;
        // Resolved rollout settings must be able to make progress.
        let fleet_defaults = &spec.defaults.rollout;
        for (d, doc) in &daemons {
            let mut said = BTreeSet::new();
            for g in &d.placement {
                let group = groups.iter().find(|x| &x.name == g)?;
                let o = d.spec.overrides.get(g).and_then(|o| o.rollout.as_ref());
                let r = resolve_rollout(o, d.spec.rollout.as_ref(), &group.rollout, fleet_defaults);
                let driver = self.resolved_driver(doc, g, d, &r, &mut said);
                if driver == crate::model::Driver::Drover {
                    self.wave_bake_fits(doc, g, &r, &stages);
                }
                if is_zero(r.max_unavailable.as_ref()) && is_zero(r.max_surge.as_ref()) {
                    self.push(doc.diag(
                        "spec.rollout",
                        format!(
                            "in group `{g}` maxUnavailable and maxSurge both resolve to 0, so the rollout could never progress"
                        ),
                    ));
                }
            }
        }
        self.across_daemons(loaded, &groups, &daemons, fleet_defaults);
        if !self.diags.is_empty() {
            return None;
        }
        Some(Fleet {
            name: fleet_doc.value.metadata.name.clone(),
            namespace: spec.namespace.clone(),
            groups,
            stages,
            defaults: spec.defaults.rollout.clone(),
            prune: spec.prune.clone(),
            on_failure: spec.on_failure,
            force_conflicts: spec.force_conflicts,
            daemons: daemons.into_iter().map(|(d, _)| d).collect(),
            freeze_windows: freeze_windows?,
            node_conditions,
            companions,
            companion_namespaces: spec.companions.allow_namespaces.clone(),
        })
    }

    /// The companion objects under `companions/`, checked against the Fleet's
    /// `spec.companions` policy. A daemon directory may name a daemon whose document
    /// failed to parse (that failure is reported already).
    fn companions(
        &mut self,
        loaded: &LoadedFleet,
        fleet_doc: &FleetDoc,
    ) -> Vec<crate::companion::Companion> {
        let daemons: Vec<String> = loaded
            .daemons
            .iter()
            .map(|d| d.value.metadata.name.clone())
            .chain(
                loaded
                    .failed
                    .iter()
                    .filter(|(k, _)| k == "Daemon")
                    .map(|(_, n)| n.clone()),
            )
            .collect();
        let spec = &fleet_doc.value.spec;
        for (field, message) in crate::companion::check_policy(&spec.companions) {
            self.push(fleet_doc.diag(&field, message));
        }
        let ctx = crate::companion::FleetContext {
            name: &fleet_doc.value.metadata.name,
            namespace: &spec.namespace,
            daemons: &daemons,
            policy: &spec.companions,
        };
        crate::companion::validate(&loaded.companions, &ctx, &mut self.diags)
    }

    /// `spec.nodeConditions`: each a condition type with exactly one of `status` and
    /// `notStatus`, a Kubernetes condition status; each type once.
    fn node_conditions(
        &mut self,
        d: &FleetDoc,
        specs: &[crate::model::NodeConditionSpec],
    ) -> Vec<crate::machine::ConditionRule> {
        use crate::machine::ConditionRule;
        const STATUSES: [&str; 3] = ["True", "False", "Unknown"];
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, c) in specs.iter().enumerate() {
            let f = format!("spec.nodeConditions[{i}]");
            let t = &c.type_;
            let type_ok = !t.is_empty()
                && t.len() <= 316
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"./-_".contains(&b));
            if !type_ok {
                self.push(d.diag(
                    &format!("{f}.type"),
                    format!("`{t}` is not a condition type (letters, digits, `.`, `/`, `-`, `_`)"),
                ));
                continue;
            }
            if !seen.insert(t.as_str()) {
                self.push(d.diag(
                    &format!("{f}.type"),
                    format!("condition `{t}` is listed twice"),
                ));
                continue;
            }
            let (field, status) = match (&c.status, &c.not_status) {
                (Some(s), None) => ("status", s),
                (None, Some(s)) => ("notStatus", s),
                _ => {
                    self.push(d.diag(&f, "needs exactly one of `status` and `notStatus`"));
                    continue;
                }
            };
            if !STATUSES.contains(&status.as_str()) {
                let hint = did_you_mean(status, STATUSES.iter().copied())
                    .or_else(|| Some("a condition status is True, False or Unknown".into()));
                self.push(
                    d.diag(
                        &format!("{f}.{field}"),
                        format!("`{status}` is not a condition status"),
                    )
                    .with_hint(hint),
                );
                continue;
            }
            let (condition, status) = (t.clone(), status.clone());
            out.push(if field == "status" {
                ConditionRule::MustBe { condition, status }
            } else {
                ConditionRule::MustNotBe { condition, status }
            });
        }
        out
    }

    fn metadata<T>(&mut self, doc: &Located<T>, name: &str, labels: &BTreeMap<String, String>) {
        self.check(doc, "metadata.name", syntax::dns_label(name));
        for (k, v) in labels {
            let field = super::yaml::join_key("metadata.labels", k);
            if !self.check(
                doc,
                &field,
                syntax::label_key(k).map_err(|e| format!("label key `{k}`: {e}")),
            ) {
                continue;
            }
            if RESERVED_LABEL_PREFIXES.iter().any(|p| k.starts_with(p)) {
                self.push(doc.diag(&field, format!("label `{k}` is reserved for drover")));
            }
            self.check(
                doc,
                &field,
                syntax::label_value(v).map_err(|e| format!("label `{k}`: {e}")),
            );
        }
    }

    fn groups(
        &mut self,
        docs: &[GroupDoc],
        failed: &[(String, String)],
        fleet: Option<&FleetDoc>,
    ) -> Option<Vec<Group>> {
        let Some(fleet) = fleet else {
            for d in docs {
                self.metadata(d, &d.value.metadata.name, &d.value.metadata.labels);
                self.group_spec(d, &d.value.spec);
            }
            return None;
        };
        let order = &fleet.value.spec.groups;
        if order.len() > self.limits.max_groups {
            self.push(fleet.diag(
                "spec.groups",
                format!(
                    "{} groups, more than the limit of {}",
                    order.len(),
                    self.limits.max_groups
                ),
            ));
            return None;
        }
        if docs.len() > self.limits.max_groups {
            self.push(Diagnostic::new(
                docs[self.limits.max_groups].path.clone(),
                Pos::default(),
                "",
                format!(
                    "{} NodeGroup documents, more than the limit of {}",
                    docs.len(),
                    self.limits.max_groups
                ),
            ));
            return None;
        }
        if order.is_empty() {
            self.push(fleet.diag("spec.groups", "must list at least one group"));
        }
        let mut by_name: BTreeMap<&str, &GroupDoc> = BTreeMap::new();
        for d in docs {
            let name = d.value.metadata.name.as_str();
            self.metadata(d, name, &d.value.metadata.labels);
            if name == ALL_GROUPS {
                self.push(d.diag(
                    "metadata.name",
                    "`all` is reserved for every group (`groups: [all]`); name the NodeGroup otherwise",
                ));
            }
            if let Some(first) = by_name.get(name) {
                self.push(d.diag(
                    "metadata.name",
                    format!(
                        "duplicate NodeGroup `{name}`; the first is {}:{}",
                        first.path,
                        first.index.pos("metadata.name").line
                    ),
                ));
                continue;
            }
            by_name.insert(name, d);
            if !order.iter().any(|g| g == name) {
                self.push(
                    d.diag(
                        "metadata.name",
                        format!("NodeGroup `{name}` is not listed in the Fleet's spec.groups"),
                    )
                    .with_hint(did_you_mean(name, order.iter().map(String::as_str))),
                );
            }
            self.group_spec(d, &d.value.spec);
        }
        let mut seen = BTreeSet::new();
        let mut ok = true;
        for (i, name) in order.iter().enumerate() {
            let field = format!("spec.groups[{i}]");
            if !seen.insert(name.as_str()) {
                self.push(fleet.diag(&field, format!("group `{name}` is listed twice")));
                ok = false;
                continue;
            }
            if name == ALL_GROUPS {
                self.push(fleet.diag(
                    &field,
                    "`all` is reserved for every group (`groups: [all]`); name the NodeGroup otherwise",
                ));
                ok = false;
                continue;
            }
            match by_name.get(name.as_str()) {
                None if failed.iter().any(|(k, n)| k == "NodeGroup" && n == name) => ok = false,
                None => {
                    self.push(
                        fleet
                            .diag(&field, format!("group `{name}` has no NodeGroup document"))
                            .with_hint(did_you_mean(name, by_name.keys().copied())),
                    );
                    ok = false;
                }
                Some(g) if g.value.spec.selector.is_catch_all() && i + 1 < order.len() => {
                    self.push(fleet.diag(
                        &field,
                        format!(
                            "group `{name}` has an empty selector (the catch-all) and must be last"
                        ),
                    ));
                    ok = false;
                }
                Some(_) => {}
            }
        }
        if !ok {
            return None;
        }
        let reqs: Vec<_> = order
            .iter()
            .map(|n| requirements(&by_name[n.as_str()].value.spec.selector))
            .collect();
        let mut out = Vec::new();
        for (i, name) in order.iter().enumerate() {
            let doc = by_name[name.as_str()];
            if !satisfiable(&reqs[i]) {
                // A gate that selects no node gates nothing: refused here, where it is
                // certain; a selector that only matches no node today is the plan's
                // verdict (see `crate::plan::Verdict`).
                self.push(doc.diag(
                    "spec.selector",
                    format!("group `{name}` can never match a node: its requirements contradict each other"),
                ));
                continue;
            }
            match affinity(&reqs, i, self.limits.max_negation_terms) {
                Ok(a) => out.push(Group {
                    name: name.clone(),
                    selector: reqs[i].clone(),
                    affinity: a,
                    tolerations: doc.value.spec.tolerations.clone(),
                    rollout: doc.value.spec.rollout.clone().unwrap_or_default(),
                    source: doc.path.clone(),
                }),
                Err(AffinityError::NotNegatable { group, requirement }) => {
                    let earlier = by_name[order[group].as_str()];
                    let idx = earlier
                        .value
                        .spec
                        .selector
                        .match_expressions
                        .iter()
                        .position(|e| e.key == requirement.key && e.operator == requirement.op.as_str())
                        .unwrap_or(0);
                    self.push(earlier.diag(
                        &format!("spec.selector.matchExpressions[{idx}]"),
                        format!(
                            "`{} {}` cannot be negated exactly, so group `{name}` after it cannot exclude its nodes",
                            requirement.key,
                            requirement.op.as_str()
                        ),
                    ).with_hint(Some("use In/NotIn/Exists/DoesNotExist, or make this group last".into())));
                }
                Err(AffinityError::TooManyTerms { limit }) => self.push(doc.diag(
                    "spec.selector",
                    format!("excluding the earlier groups' nodes needs more than {limit} nodeSelectorTerms"),
                ).with_hint(Some("use fewer requirements in earlier groups".into()))),
                Err(AffinityError::Shadowed) => self.push(doc.diag(
                    "spec.selector",
                    format!("group `{name}` can never match a node: every node it selects belongs to an earlier group"),
                )),
            }
        }
        (out.len() == order.len()).then_some(out)
    }

    /// A node selector's labels and expressions: keys, values, operators and the
    /// values each operator takes (a NodeGroup's selector, a Daemon's constraints).
    fn selector<T>(
        &mut self,
        d: &Located<T>,
        labels_field: &str,
        labels: &BTreeMap<String, String>,
        exprs_field: &str,
        exprs: &[crate::model::SelectorRequirement],
    ) {
        for (k, v) in labels {
            let field = super::yaml::join_key(labels_field, k);
            self.check(
                d,
                &field,
                syntax::label_key(k).map_err(|e| format!("label key `{k}`: {e}")),
            );
            self.check(
                d,
                &field,
                syntax::label_value(v).map_err(|e| format!("label `{k}`: {e}")),
            );
        }
        for (i, e) in exprs.iter().enumerate() {
            let field = format!("{exprs_field}[{i}]");
            self.check(d, &format!("{field}.key"), syntax::label_key(&e.key));
            let Some(op) = Op::parse(&e.operator) else {
                self.push(
                    d.diag(
                        &format!("{field}.operator"),
                        format!(
                            "unknown operator `{}`, expected one of {}",
                            e.operator,
                            Op::NAMES.join(", ")
                        ),
                    )
                    .with_hint(did_you_mean(&e.operator, Op::NAMES)),
                );
                continue;
            };
            let values_field = format!("{field}.values");
            match op {
                Op::In | Op::NotIn if e.values.is_empty() => {
                    self.push(d.diag(
                        &values_field,
                        format!("`{}` needs at least one value", e.operator),
                    ));
                }
                Op::Exists | Op::DoesNotExist if !e.values.is_empty() => {
                    self.push(d.diag(&values_field, format!("`{}` takes no values", e.operator)));
                }
                Op::Gt | Op::Lt if e.values.len() != 1 || e.values[0].parse::<i64>().is_err() => {
                    self.push(d.diag(
                        &values_field,
                        format!("`{}` takes exactly one integer value", e.operator),
                    ));
                }
                _ => {
                    for (j, v) in e.values.iter().enumerate() {
                        if !matches!(op, Op::Gt | Op::Lt) {
                            self.check(d, &format!("{values_field}[{j}]"), syntax::label_value(v));
                        }
                    }
                }
            }
        }
    }

    fn group_spec(&mut self, d: &GroupDoc, spec: &NodeGroupSpec) {
        self.selector(
            d,
            "spec.selector.matchLabels",
            &spec.selector.match_labels,
            "spec.selector.matchExpressions",
            &spec.selector.match_expressions,
        );
        self.tolerations(d, "spec.tolerations", &spec.tolerations);
        if let Some(r) = &spec.rollout {
            self.rollout(d, "spec.rollout", r);
        }
    }

    fn tolerations<T>(&mut self, d: &Located<T>, field: &str, tols: &[Toleration]) {
        for (i, t) in tols.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let op = t.operator.as_deref().unwrap_or("Equal");
            if !matches!(op, "Equal" | "Exists") {
                self.push(
                    d.diag(
                        &format!("{f}.operator"),
                        format!("unknown operator `{op}`, expected Equal or Exists"),
                    )
                    .with_hint(did_you_mean(op, ["Equal", "Exists"])),
                );
            }
            if op == "Exists" && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                self.push(d.diag(
                    &format!("{f}.value"),
                    "must be empty when operator is Exists",
                ));
            }
            if op == "Equal" && t.key.as_deref().unwrap_or("").is_empty() {
                self.push(d.diag(&f, "a toleration without a key must use operator Exists"));
            }
            if let Some(k) = &t.key
                && !k.is_empty()
            {
                self.check(d, &format!("{f}.key"), syntax::label_key(k));
            }
            if let Some(e) = &t.effect
                && !matches!(
                    e.as_str(),
                    "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute"
                )
            {
                self.push(
                    d.diag(&format!("{f}.effect"), format!("unknown effect `{e}`, expected NoSchedule, PreferNoSchedule or NoExecute"))
                        .with_hint(did_you_mean(e, ["NoSchedule", "PreferNoSchedule", "NoExecute"])),
                );
            }
        }
    }

    fn rollout<T>(&mut self, d: &Located<T>, field: &str, r: &RolloutSpec) {
        for (name, v) in [
            ("maxUnavailable", &r.max_unavailable),
            ("maxSurge", &r.max_surge),
        ] {
            let f = format!("{field}.{name}");
            match v {
                Some(IntOrPercent::Int(i)) if *i < 0 => {
                    self.push(d.diag(&f, format!("must not be negative (is {i})")));
                }
                Some(IntOrPercent::Int(i)) if *i > i64::from(i32::MAX) => {
                    self.push(d.diag(&f, format!("is too large ({i})")));
                }
                Some(IntOrPercent::Str(s)) => {
                    let pct = syntax::percent(s);
                    match pct {
                        Some(p) if p <= 100 => {}
                        Some(p) => self
                            .push(d.diag(&f, format!("percentage must be at most 100% (is {p}%)"))),
                        None => self.push(d.diag(
                            &f,
                            format!("`{s}` is neither an integer nor a percentage like \"10%\""),
                        )),
                    }
                }
                _ => {}
            }
        }
        if let Some(m) = r.min_ready_seconds
            && !(0..=i64::from(i32::MAX)).contains(&m)
        {
            self.push(d.diag(
                &format!("{field}.minReadySeconds"),
                format!("must be between 0 and {} (is {m})", i32::MAX),
            ));
        }
        self.driver_knobs(d, field, r);
    }

    /// The driver as it resolves in group `g`, returned: waves and `by` only with `drover`, which
    /// replaces a pod by deleting it first (no surge), and an upstream `OnDelete`
    /// not contradicted by an explicit `driver: controller` on the daemon.
    fn resolved_driver(
        &mut self,
        doc: &DaemonDoc,
        g: &str,
        d: &crate::fleet::Daemon,
        r: &RolloutSpec,
        said: &mut BTreeSet<&'static str>,
    ) -> crate::model::Driver {
        use crate::model::Driver;
        let driver = crate::waves::driver_of(d.spec.update_strategy.as_ref(), r);
        let explicit_controller = d
            .spec
            .rollout
            .iter()
            .chain(d.spec.overrides.values().filter_map(|o| o.rollout.as_ref()))
            .any(|r| r.driver == Some(Driver::Controller));
        if d.spec
            .update_strategy
            .as_ref()
            .is_some_and(crate::waves::is_on_delete)
            && explicit_controller
        {
            self.push(doc.diag(
                "spec.updateStrategy",
                "`OnDelete` means drover replaces the pods, but spec.rollout says `driver: controller`",
            ).with_hint(Some("keep one of the two".into())));
        }
        if driver == Driver::Controller {
            for (name, set) in [
                ("waves", r.waves.is_some()),
                ("by", r.by.is_some()),
                ("waveBake", r.wave_bake.is_some()),
            ] {
                // Said once per daemon, not once per group it runs in.
                if set && said.insert(name) {
                    self.push(doc.diag(
                        "spec.rollout",
                        format!("`{name}` is set but the driver is `controller` (from group `{g}` on): only `driver: drover` rolls a group in waves"),
                    ).with_hint(Some("set rollout.driver: drover where the waves are set".into())));
                }
            }
        } else if !is_zero(r.max_surge.as_ref()) {
            self.push(doc.diag(
                "spec.rollout",
                format!("in group `{g}` maxSurge resolves to more than 0 but the driver is `drover`, which deletes a node's old pod before its new one starts"),
            ).with_hint(Some("use maxSurge: 0 (and maxUnavailable) with driver: drover".into())));
        } else if is_zero(r.max_unavailable.as_ref()) {
            self.push(doc.diag(
                "spec.rollout",
                format!("in group `{g}` maxUnavailable resolves to 0 with `driver: drover`, so no pod could ever be replaced"),
            ));
        }
        driver
    }

    /// A wave's bake (of a daemon drover drives in group `g`) stalls the
    /// DaemonSet's status, so it must end before the stage's progress deadline would
    /// call the stage stuck.
    fn wave_bake_fits(&mut self, doc: &DaemonDoc, g: &str, r: &RolloutSpec, stages: &[Stage]) {
        let Some(bake) = r
            .wave_bake
            .as_deref()
            .and_then(|b| syntax::duration(b).ok())
        else {
            return;
        };
        let Some(stage) = stages.iter().find(|s| s.groups.iter().any(|x| x == g)) else {
            return;
        };
        if bake >= stage.progress_deadline {
            self.push(
                doc.diag(
                    "spec.rollout",
                    format!(
                        "in group `{g}` waveBake resolves to {} but stage `{}` fails after {} without progress, and nothing progresses while a wave bakes",
                        syntax::format_duration(bake),
                        stage.name,
                        syntax::format_duration(stage.progress_deadline)
                    ),
                )
                .with_hint(Some(format!(
                    "shorten waveBake, or give stage `{}` a longer progressDeadline",
                    stage.name
                ))),
            );
        }
    }

    /// The drover driver's knobs on one level: waves that parse and reach 100%, a
    /// label key for `by`, a budget only at fleet level.
    fn driver_knobs<T>(&mut self, d: &Located<T>, field: &str, r: &RolloutSpec) {
        if let Some(ws) = &r.waves
            && let Err((at, e)) = crate::waves::WaveSize::parse_list(ws)
        {
            let f = match at {
                Some(i) => format!("{field}.waves[{i}]"),
                None => format!("{field}.waves"),
            };
            self.push(d.diag(&f, e).with_hint(Some(
                "waves count from the start of the group (or zone) and end at 100%, e.g. [1, 10%, 100%]".into(),
            )));
        }
        if let Some(by) = &r.by {
            self.check(d, &format!("{field}.by"), syntax::label_key(by));
        }
        if let Some(b) = &r.wave_bake {
            self.check(
                d,
                &format!("{field}.waveBake"),
                syntax::duration(b).map(|_| ()),
            );
        }
        if let Some(b) = &r.disruption_budget {
            let f = format!("{field}.disruptionBudget");
            if field != "spec.defaults.rollout" {
                self.push(
                    d.diag(&f, "the disruption budget is fleet-wide: it is set only in the Fleet's spec.defaults.rollout")
                        .with_hint(Some("move it to the Fleet's spec.defaults.rollout".into())),
                );
            } else if let Err(e) = crate::waves::WaveSize::parse(b) {
                self.push(d.diag(&f, e));
            }
        }
    }

    fn stages(&mut self, fleet: &FleetDoc, groups: &[Group]) -> Option<Vec<Stage>> {
        let spec = &fleet.value.spec;
        let before = self.diags.len();
        let names: Vec<&str> = spec.groups.iter().map(String::as_str).collect();
        let stages: Vec<Stage> = match &spec.stages {
            None => names
                .iter()
                .map(|g| Stage {
                    name: g.to_string(),
                    groups: vec![g.to_string()],
                    bake: std::time::Duration::ZERO,
                    timeout: DEFAULT_STAGE_TIMEOUT,
                    progress_deadline: DEFAULT_STAGE_TIMEOUT,
                    max_unobserved: DEFAULT_MAX_UNOBSERVED,
                })
                .collect(),
            Some(list) => {
                if list.is_empty() {
                    self.push(fleet.diag(
                        "spec.stages",
                        "must list at least one stage, or be left out",
                    ));
                }
                let mut stage_names = BTreeSet::new();
                let mut placed: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
                let mut out = Vec::new();
                for (i, s) in list.iter().enumerate() {
                    let f = format!("spec.stages[{i}]");
                    self.check(fleet, &format!("{f}.name"), syntax::dns_label(&s.name));
                    if !stage_names.insert(s.name.as_str()) {
                        self.push(fleet.diag(
                            &format!("{f}.name"),
                            format!("duplicate stage name `{}`", s.name),
                        ));
                    }
                    if s.groups.is_empty() {
                        self.push(fleet.diag(
                            &format!("{f}.groups"),
                            "a stage must list at least one group",
                        ));
                    }
                    for (j, g) in s.groups.iter().enumerate() {
                        let gf = format!("{f}.groups[{j}]");
                        if !names.contains(&g.as_str()) {
                            self.push(
                                fleet
                                    .diag(&gf, format!("unknown group `{g}`: not in spec.groups"))
                                    .with_hint(did_you_mean(g, names.iter().copied())),
                            );
                            continue;
                        }
                        if let Some((si, sj)) = placed.get(g.as_str()) {
                            let p = fleet.index.pos(&format!("spec.stages[{si}].groups[{sj}]"));
                            self.push(fleet.diag(
                                &gf,
                                format!(
                                    "group `{g}` is already in stage `{}` (line {})",
                                    list[*si].name, p.line
                                ),
                            ));
                            continue;
                        }
                        placed.insert(g, (i, j));
                    }
                    let bake = self.bounded_duration(
                        fleet,
                        &format!("{f}.bake"),
                        s.bake.as_deref(),
                        self.limits.max_stage_bake,
                        true,
                    );
                    let timeout = self.bounded_duration(
                        fleet,
                        &format!("{f}.timeout"),
                        s.timeout.as_deref(),
                        self.limits.max_stage_timeout,
                        false,
                    );
                    let timeout = timeout.unwrap_or(DEFAULT_STAGE_TIMEOUT);
                    let deadline_field = format!("{f}.progressDeadline");
                    let deadline = self.bounded_duration(
                        fleet,
                        &deadline_field,
                        s.progress_deadline.as_deref(),
                        self.limits.max_stage_timeout,
                        false,
                    );
                    if let Some(d) = deadline
                        && d > timeout
                    {
                        self.push(fleet.diag(
                            &deadline_field,
                            format!(
                                "is longer than the stage's timeout ({}), so it could never fire",
                                syntax::format_duration(timeout)
                            ),
                        ));
                    }
                    let max_unobserved = self.bounded_duration(
                        fleet,
                        &format!("{f}.maxUnobserved"),
                        s.max_unobserved.as_deref(),
                        self.limits.max_stage_timeout,
                        false,
                    );
                    out.push(Stage {
                        name: s.name.clone(),
                        groups: s.groups.clone(),
                        bake: bake.unwrap_or_default(),
                        timeout,
                        progress_deadline: deadline.unwrap_or(timeout),
                        max_unobserved: max_unobserved.unwrap_or(DEFAULT_MAX_UNOBSERVED),
                    });
                }
                for (i, g) in names.iter().enumerate() {
                    if !placed.contains_key(g) {
                        self.push(fleet.diag(
                            &format!("spec.groups[{i}]"),
                            format!("group `{g}` is in no stage"),
                        ));
                    }
                }
                out
            }
        };
        let _ = groups;
        (self.diags.len() == before).then_some(stages)
    }

    /// A duration no longer than `max` (and more than zero unless `zero_ok`).
    fn bounded_duration(
        &mut self,
        d: &FleetDoc,
        field: &str,
        v: Option<&str>,
        max: std::time::Duration,
        zero_ok: bool,
    ) -> Option<std::time::Duration> {
        let v = v?;
        match syntax::duration(v) {
            Ok(x) if x > max => {
                self.push(d.diag(
                    field,
                    format!(
                        "`{v}` is longer than the limit of {}",
                        syntax::format_duration(max)
                    ),
                ));
                None
            }
            Ok(x) if x.is_zero() && !zero_ok => {
                self.push(d.diag(field, format!("`{v}` must be longer than 0s")));
                None
            }
            Ok(x) => Some(x),
            Err(e) => {
                self.push(d.diag(field, e));
                None
            }
        }
    }

    fn daemons(
        &mut self,
        loaded: &LoadedFleet,
        fleet: Option<&FleetDoc>,
    ) -> Option<Vec<(Daemon, DaemonDoc)>> {
        let docs = &loaded.daemons;
        if docs.len() > self.limits.max_daemons {
            self.push(Diagnostic::new(
                "",
                Pos::default(),
                "",
                format!(
                    "{} daemons, more than the limit of {}",
                    docs.len(),
                    self.limits.max_daemons
                ),
            ));
            return None;
        }
        // Group names are checked against the Fleet's list; when the Fleet failed to
        // parse, against the NodeGroup documents, so that those errors show too.
        let group_names: Vec<&str> = match fleet {
            Some(f) => f.value.spec.groups.iter().map(String::as_str).collect(),
            None => loaded
                .groups
                .iter()
                .map(|g| g.value.metadata.name.as_str())
                .chain(
                    loaded
                        .failed
                        .iter()
                        .filter(|(k, _)| k == "NodeGroup")
                        .map(|(_, n)| n.as_str()),
                )
                .collect(),
        };
        let before = self.diags.len();
        let mut by_name: BTreeMap<&str, &DaemonDoc> = BTreeMap::new();
        let mut out = Vec::new();
        for d in docs {
            let name = d.value.metadata.name.as_str();
            self.metadata(d, name, &d.value.metadata.labels);
            for k in d.value.metadata.annotations.keys() {
                let field = super::yaml::join_key("metadata.annotations", k);
                self.check(d, &field, syntax::label_key(k));
                if k.starts_with("drover.dev/") {
                    self.push(d.diag(&field, format!("annotation `{k}` is reserved for drover")));
                }
            }
            if let Some(first) = by_name.get(name) {
                self.push(d.diag(
                    "metadata.name",
                    format!(
                        "duplicate Daemon `{name}`; the first is {}:{}",
                        first.path,
                        first.index.pos("metadata.name").line
                    ),
                ));
                continue;
            }
            by_name.insert(name, d);
            if let Some(daemon) = self.daemon(d, &group_names) {
                out.push((daemon, d.clone()));
            }
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        (self.diags.len() == before).then_some(out)
    }

    fn group_ref(&mut self, d: &DaemonDoc, field: &str, g: &str, names: &[&str]) -> bool {
        // Without a Fleet (it failed to parse) there is nothing to check against.
        if names.is_empty() || names.contains(&g) {
            return true;
        }
        self.push(
            d.diag(field, format!("unknown group `{g}`")).with_hint(
                did_you_mean(g, names.iter().copied())
                    .or_else(|| Some(format!("groups are: {}", names.join(", ")))),
            ),
        );
        false
    }

    fn daemon(&mut self, d: &DaemonDoc, names: &[&str]) -> Option<Daemon> {
        let s = &d.value.spec;
        let before = self.diags.len();
        let pod = self.pod_spec_short(d);
        for (field, v) in [
            ("spec.priorityClassName", &s.priority_class_name),
            ("spec.serviceAccountName", &s.service_account_name),
        ] {
            if let Some(v) = v {
                self.check(d, field, syntax::dns_subdomain(v));
            }
        }
        self.tolerations(d, "spec.tolerations", &s.tolerations);
        if let Some(r) = &s.rollout {
            self.rollout(d, "spec.rollout", r);
        }
        // Placement.
        let wanted: Vec<String> = s.groups.clone().unwrap_or_else(|| vec!["all".into()]);
        let mut all = false;
        let mut chosen = BTreeSet::new();
        for (i, g) in wanted.iter().enumerate() {
            if g == ALL_GROUPS {
                all = true;
            } else if self.group_ref(d, &format!("spec.groups[{i}]"), g, names) {
                chosen.insert(g.as_str());
            }
        }
        let mut excluded = BTreeSet::new();
        for (i, g) in s.exclude.iter().enumerate() {
            if self.group_ref(d, &format!("spec.exclude[{i}]"), g, names) {
                excluded.insert(g.as_str());
            }
        }
        let placement: Vec<String> = names
            .iter()
            .filter(|g| (all || chosen.contains(*g)) && !excluded.contains(*g))
            .map(|g| g.to_string())
            .collect();
        let mut env_overrides = BTreeMap::new();
        for (g, o) in &s.overrides {
            let f = super::yaml::join_key("spec.overrides", g);
            if !self.group_ref(d, &f, g, names) {
                continue;
            }
            if !placement.iter().any(|p| p == g) {
                self.push(d.diag(
                    &f,
                    format!("override for group `{g}`, where the daemon is not placed"),
                ));
            }
            if let Some(img) = &o.image {
                self.check(d, &format!("{f}.image"), syntax::image(img));
            }
            if let Some(r) = &o.resources {
                self.resources(d, &format!("{f}.resources"), r);
            }
            if let Some(r) = &o.rollout {
                self.rollout(d, &format!("{f}.rollout"), r);
            }
            if let Some(e) = &o.env
                && let Some(extra) = self.env(d, &format!("{f}.env"), Some(e))
            {
                env_overrides.insert(g.clone(), merge_env(&pod.env, &extra));
            }
        }
        if placement.is_empty() && !names.is_empty() && self.diags.len() == before {
            self.push(d.diag(
                "spec.groups",
                "the daemon is placed in no group (check groups and exclude)",
            ));
        }
        if let Some(pt) = &s.pod_template {
            self.pod_template(d, pt);
        }
        let config = self.config_files(d, &pod.container_name, &placement);
        (self.diags.len() == before).then(|| Daemon {
            name: d.value.metadata.name.clone(),
            labels: d.value.metadata.labels.clone(),
            annotations: d.value.metadata.annotations.clone(),
            spec: s.clone(),
            env: pod.env,
            env_overrides,
            container_env: pod.container_env,
            container_name: pod.container_name,
            app_name: pod.app_name,
            constraints: pod.constraints,
            placement,
            source: d.path.clone(),
            config,
        })
    }

    /// Env in map or list form → Kubernetes `EnvVar`s.
    fn env(
        &mut self,
        d: &DaemonDoc,
        field: &str,
        env: Option<&JsonValue>,
    ) -> Option<Vec<JsonValue>> {
        let env = env?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let check_name = |name: &str| -> Result<(), String> {
            if name.is_empty() || name.contains('=') || name.chars().any(|c| c.is_control()) {
                Err(format!("`{name}` is not a valid environment variable name"))
            } else {
                Ok(())
            }
        };
        match env {
            JsonValue::Null => {}
            JsonValue::Object(map) => {
                let mut sorted: Vec<_> = map.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in sorted {
                    let f = super::yaml::join_key(field, k);
                    self.check(d, &f, check_name(k));
                    match v {
                        JsonValue::String(s) => {
                            out.push(serde_json::json!({"name": k, "value": s}))
                        }
                        other => self.push(d.diag(
                            &f,
                            format!(
                                "env value must be a string; quote it: \"{}\"",
                                other.to_string().trim_matches('"')
                            ),
                        )),
                    }
                }
            }
            JsonValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let f = format!("{field}[{i}]");
                    let Some(obj) = item.as_object() else {
                        self.push(d.diag(
                            &f,
                            "an env list item must be a mapping with name and value or valueFrom",
                        ));
                        continue;
                    };
                    let name = obj.get("name").and_then(JsonValue::as_str).unwrap_or("");
                    if name.is_empty() {
                        self.push(d.diag(&f, "missing field `name`"));
                        continue;
                    }
                    self.check(d, &format!("{f}.name"), check_name(name));
                    if !seen.insert(name.to_string()) {
                        self.push(d.diag(
                            &format!("{f}.name"),
                            format!("duplicate env variable `{name}`"),
                        ));
                    }
                    if obj.contains_key("value") && obj.contains_key("valueFrom") {
                        self.push(d.diag(
                            &format!("{f}.value"),
                            format!("env `{name}` sets both value and valueFrom; choose one"),
                        ));
                        continue;
                    }
                    self.typed::<k8s_openapi::api::core::v1::EnvVar, _>(d, &f, item);
                    out.push(item.clone());
                }
            }
            _ => self.push(d.diag(
                field,
                "env must be a mapping of NAME: value or a list of EnvVar",
            )),
        }
        Some(out)
    }

    fn resources(&mut self, d: &DaemonDoc, field: &str, r: &Resources) {
        for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (name, q) in map {
                let f = super::yaml::join_key(&format!("{field}.{kind}"), name);
                self.check(
                    d,
                    &f,
                    syntax::label_key(name).map_err(|e| format!("resource name `{name}`: {e}")),
                );
                self.check(d, &f, syntax::quantity(&q.as_text()));
            }
        }
    }

    /// Checks a raw Kubernetes fragment against its k8s-openapi type: type errors and
    /// fields the type does not know.
    fn typed<T: DeserializeOwned + Serialize, D>(
        &mut self,
        d: &Located<D>,
        field: &str,
        v: &JsonValue,
    ) -> Option<T> {
        match serde_json::from_value::<T>(v.clone()) {
            Err(e) => {
                self.push(d.diag(field, format!("{e}")));
                None
            }
            Ok(t) => {
                let back = serde_json::to_value(&t).unwrap_or(JsonValue::Null);
                let mut unknown = Vec::new();
                dropped_fields(v, &back, field, &mut unknown);
                for u in unknown {
                    let name = u.rsplit('.').next().unwrap_or(&u).to_string();
                    self.push(d.diag(&u, format!("unknown field `{name}`")));
                }
                Some(t)
            }
        }
    }
}

/// Paths in `orig` that a typed round trip dropped: fields the type does not know.
fn dropped_fields(orig: &JsonValue, back: &JsonValue, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (JsonValue::Object(o), JsonValue::Object(b)) => {
            for (k, v) in o {
                let p = super::yaml::join_key(path, k);
                match b.get(k) {
                    None if !v.is_null() => out.push(p),
                    None => {}
                    Some(bv) => dropped_fields(v, bv, &p, out),
                }
            }
        }
        (JsonValue::Array(o), JsonValue::Array(b)) => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                dropped_fields(ov, bv, &format!("{path}[{i}]"), out);
            }
        }
        (JsonValue::Object(o), _) if !o.is_empty() => out.push(path.to_string()),
        _ => {}
    }
}

/// Env of `base` with `extra` applied: same names replaced in place, new ones appended.
pub fn merge_env(base: &[JsonValue], extra: &[JsonValue]) -> Vec<JsonValue> {
    let name = |v: &JsonValue| {
        v.get("name")
            .and_then(JsonValue::as_str)
            .map(str::to_string)
    };
    let mut out: Vec<JsonValue> = base.to_vec();
    for e in extra {
        match out.iter_mut().find(|b| name(b) == name(e)) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

fn is_zero(v: Option<&IntOrPercent>) -> bool {
    match v {
        None => false,
        Some(IntOrPercent::Int(i)) => *i == 0,
        Some(IntOrPercent::Str(s)) => s.trim_end_matches('%').parse::<u32>() == Ok(0),
    }
}

/// Rollout settings, most specific first: override, daemon, group, fleet defaults,
/// then Kubernetes' defaults (maxUnavailable 1, maxSurge 0, minReadySeconds 0).
pub fn resolve_rollout(
    over: Option<&RolloutSpec>,
    daemon: Option<&RolloutSpec>,
    group: &RolloutSpec,
    fleet: &RolloutSpec,
) -> RolloutSpec {
    let k8s = RolloutSpec {
        max_unavailable: Some(IntOrPercent::Int(1)),
        max_surge: Some(IntOrPercent::Int(0)),
        min_ready_seconds: Some(0),
        driver: Some(crate::model::Driver::Controller),
        ..RolloutSpec::default()
    };
    let mut r = RolloutSpec::default();
    for level in [over, daemon, Some(group), Some(fleet), Some(&k8s)]
        .into_iter()
        .flatten()
    {
        r = r.or(level);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::limits::LIMITS;
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn env_with_value_and_value_from_points_at_value() {
        let files = [
            file(
                "drover.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {name: f}\nspec:\n  namespace: n\n  groups: [all-nodes]\n",
            ),
            file(
                "groups/g.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {name: all-nodes}\nspec:\n  selector: {}\n",
            ),
            file(
                "daemons/d.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: d}\nspec:\n  image: nginx:1\n  env:\n    - name: A\n      value: x\n      valueFrom:\n        fieldRef: {fieldPath: spec.nodeName}\n",
            ),
        ];
        let d = load_fleet(&files, &LIMITS).unwrap_err();
        assert_eq!(d.len(), 1, "{d}");
        assert_eq!(d.0[0].field, "spec.env[0].value");
        assert_eq!(
            d.0[0].pos,
            Pos {
                line: 8,
                column: 14
            },
            "{d}"
        );
    }
}
