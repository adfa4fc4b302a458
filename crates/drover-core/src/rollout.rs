//! When is a DaemonSet rollout done, and is a baking stage still healthy?
//!
//! Pure decisions over numbers the shell reads from DaemonSet and Pod status.

use std::collections::BTreeMap;

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

/// Why a baking stage is unhealthy, if it is.
///
/// `baseline` is the pods at the start of the bake; `now` the pods at this moment.
/// Unhealthy when a pod that was there is now not ready, or any container restarted
/// more often than at the start. Pods that appear during the bake (a node joined) are
/// judged from when they first become ready.
pub fn bake_problem(
    baseline: &BTreeMap<String, PodHealth>,
    now: &BTreeMap<String, PodHealth>,
) -> Option<String> {
    let mut problems = Vec::new();
    for (name, h) in now {
        match baseline.get(name) {
            Some(b) if h.restarts > b.restarts => problems.push(format!(
                "pod {name} restarted ({} -> {} restarts)",
                b.restarts, h.restarts
            )),
            Some(b) if b.ready && !h.ready => {
                problems.push(format!("pod {name} is no longer ready"))
            }
            None if h.restarts > 0 && h.ready => {}
            _ => {}
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
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

    #[test]
    fn a_restart_during_bake_is_a_problem() {
        let pod = |ready, restarts| PodHealth { ready, restarts };
        let base: BTreeMap<_, _> = [("a".to_string(), pod(true, 0))].into();
        assert_eq!(bake_problem(&base, &base), None);
        let now: BTreeMap<_, _> = [("a".to_string(), pod(true, 2))].into();
        assert!(bake_problem(&base, &now).unwrap().contains("restarted"));
        let now: BTreeMap<_, _> = [("a".to_string(), pod(false, 0))].into();
        assert!(
            bake_problem(&base, &now)
                .unwrap()
                .contains("no longer ready")
        );
    }
}
