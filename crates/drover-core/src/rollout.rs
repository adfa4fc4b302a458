//! When is a DaemonSet rollout done, and what the gate knows of a pod.
//!
//! Pure decisions over numbers the shell reads from DaemonSet and Pod status; the
//! health gate itself is the rollout machine's (`machine`).

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
