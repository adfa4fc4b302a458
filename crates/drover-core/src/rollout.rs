//! When is a DaemonSet rollout done, what the gate knows of a pod, and how a stage
//! and a rollout ended.
//!
//! Pure decisions over numbers the shell reads from DaemonSet and Pod status (the
//! health gate itself is the rollout machine's, `machine`), and the typed outcomes
//! the shell reports and the audit trail records: each an enum with one serde
//! spelling, so an outcome read back from disk is parsed exactly or refused, never
//! guessed.

/// How a commit's rollout ended. Written to the audit trail as its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every stage succeeded (and pruning, when enabled, ran).
    Applied,
    /// Nothing to change.
    NoOp,
    /// A stage failed; the stages after it were not touched.
    Halted,
    /// A stage failed and the stages it touched were put back.
    RolledBack,
    /// A check refused the commit before anything was written.
    Refused,
}

impl Outcome {
    /// The name the audit trail and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::NoOp => "no-op",
            Outcome::Halted => "halted",
            Outcome::RolledBack => "rolled-back",
            Outcome::Refused => "refused",
        }
    }

    /// Whether the commit is now what the cluster runs.
    pub fn ok(self) -> bool {
        matches!(self, Outcome::Applied | Outcome::NoOp)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a stage ended, with the reason when it failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum StageOutcome {
    Succeeded,
    Failed { reason: String },
}

impl StageOutcome {
    /// The result without its reason, as the audit trail records it.
    pub fn result(&self) -> StageResult {
        match self {
            StageOutcome::Succeeded => StageResult::Succeeded,
            StageOutcome::Failed { .. } => StageResult::Failed,
        }
    }

    /// Why the stage failed, if it did.
    pub fn reason(&self) -> Option<&str> {
        match self {
            StageOutcome::Succeeded => None,
            StageOutcome::Failed { reason } => Some(reason),
        }
    }
}

/// A stage's result in an audit record (its reason is a field of its own there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageResult {
    Succeeded,
    Failed,
}

impl StageResult {
    pub fn as_str(self) -> &'static str {
        match self {
            StageResult::Succeeded => "succeeded",
            StageResult::Failed => "failed",
        }
    }
}

impl std::fmt::Display for StageResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status fields of a DaemonSet that decide rollout completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RolloutStatus {
    pub generation: i64,
    pub observed_generation: i64,
    pub desired: i64,
    pub updated: i64,
    pub available: i64,
    pub unavailable: i64,
    pub ready: i64,
}

impl RolloutStatus {
    /// Complete: the controller has seen the latest spec, every scheduled pod is
    /// updated and available, none unavailable. Zero desired pods is complete.
    pub fn is_complete(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated == self.desired
            && self.available == self.desired
            && self.unavailable == 0
    }

    /// `updated/desired, available` for progress lines.
    pub fn progress(&self) -> String {
        format!(
            "{}/{} updated, {}/{} available",
            self.updated, self.desired, self.available, self.desired
        )
    }
}

/// What the health gate knows about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodHealth {
    pub ready: bool,
    /// Sum of container restart counts.
    pub restarts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(
        generation: i64,
        observed: i64,
        desired: i64,
        updated: i64,
        available: i64,
        unavailable: i64,
    ) -> RolloutStatus {
        RolloutStatus {
            generation,
            observed_generation: observed,
            desired,
            updated,
            available,
            unavailable,
            ready: available,
        }
    }

    #[test]
    fn outcomes_serialise_as_the_names_the_audit_trail_has_always_used() {
        for (o, name) in [
            (Outcome::Applied, "applied"),
            (Outcome::NoOp, "no-op"),
            (Outcome::Halted, "halted"),
            (Outcome::RolledBack, "rolled-back"),
            (Outcome::Refused, "refused"),
        ] {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{name}\""));
            assert_eq!(o.as_str(), name);
            let back: Outcome = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(back, o);
        }
        assert_eq!(
            serde_json::to_string(&StageResult::Failed).unwrap(),
            "\"failed\""
        );
    }

    #[test]
    fn an_unknown_outcome_is_refused_not_read_as_another() {
        // The sync loop used to map any unknown text to `refused`; now it cannot
        // be read at all, so a hand-edited record fails loudly.
        assert!(serde_json::from_str::<Outcome>("\"aplied\"").is_err());
        assert!(serde_json::from_str::<Outcome>("\"Applied\"").is_err());
        assert!(serde_json::from_str::<StageResult>("\"ok\"").is_err());
    }

    #[test]
    fn zero_desired_pods_is_complete_not_stuck() {
        assert!(st(2, 2, 0, 0, 0, 0).is_complete());
    }

    #[test]
    fn an_unobserved_generation_is_not_complete() {
        assert!(!st(3, 2, 5, 5, 5, 0).is_complete());
    }

    #[test]
    fn unavailable_pods_hold_the_rollout() {
        assert!(!st(2, 2, 5, 5, 4, 1).is_complete());
        assert!(st(2, 2, 5, 5, 5, 0).is_complete());
    }
}
