//! Progress of a rollout: live bars on a terminal, structured log lines otherwise.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::core::diag::escape_control;
use crate::core::rollout::RolloutStatus;

/// Receives rollout events. Implementations must be cheap; they run on the hot path.
pub trait Progress: Send + Sync {
    fn stage_started(&self, stage: &str, daemonsets: &[String]);
    fn daemonset(&self, stage: &str, name: &str, status: &RolloutStatus);
    fn baking(&self, stage: &str, bake: Duration);
    fn stage_finished(&self, stage: &str, ok: bool, detail: &str);
    /// The gate of a baking stage after a judgement: `observed` of `bake` so far.
    fn gate(&self, _stage: &str, _bake: Duration, _observed: Duration) {}
}

/// Another [`Progress`], plus `progress.json` in the sync's state directory: where
/// the stage in progress and its gate are, for `drover status`. Written atomically
/// on each change of phase and at most once a second of observed bake.
pub struct Published {
    inner: Box<dyn Progress>,
    path: std::path::PathBuf,
    now: Mutex<Option<crate::core::status::StageProgress>>,
}

impl Published {
    pub fn new(inner: Box<dyn Progress>, path: std::path::PathBuf) -> Published {
        Published {
            inner,
            path,
            now: Mutex::new(None),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Option<crate::core::status::StageProgress>) -> bool) {
        let mut now = self.now.lock().expect("poisoned");
        if !f(&mut now) {
            return;
        }
        if let Some(p) = now.as_mut() {
            p.updated_at = jiff::Timestamp::now().to_string();
            let text = serde_json::to_string_pretty(p).expect("progress serialises");
            let tmp = self.path.with_extension("json.tmp");
            // Best effort: `drover status` shows what it finds; a rollout never waits
            // on this file.
            if let Err(e) =
                std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path))
            {
                tracing::debug!(error = %e, path = %self.path.display(), "cannot publish progress");
            }
        }
    }
}

impl Progress for Published {
    fn stage_started(&self, stage: &str, daemonsets: &[String]) {
        self.inner.stage_started(stage, daemonsets);
        self.update(|p| {
            *p = Some(crate::core::status::StageProgress {
                stage: stage.to_string(),
                phase: crate::core::status::Phase::Rolling,
                started_at: jiff::Timestamp::now().to_string(),
                bake_seconds: 0,
                observed_seconds: 0.0,
                updated_at: String::new(),
            });
            true
        });
    }
    fn daemonset(&self, stage: &str, name: &str, status: &RolloutStatus) {
        self.inner.daemonset(stage, name, status);
    }
    fn baking(&self, stage: &str, bake: Duration) {
        self.inner.baking(stage, bake);
        self.update(|p| match p.as_mut() {
            Some(p) if p.stage == stage => {
                p.phase = crate::core::status::Phase::Baking;
                p.bake_seconds = bake.as_secs();
                true
            }
            _ => false,
        });
    }
    fn stage_finished(&self, stage: &str, ok: bool, detail: &str) {
        self.inner.stage_finished(stage, ok, detail);
        self.update(|p| match p.as_mut() {
            Some(p) if p.stage == stage => {
                p.phase = crate::core::status::Phase::Finished;
                true
            }
            _ => false,
        });
    }
    fn gate(&self, stage: &str, bake: Duration, observed: Duration) {
        self.inner.gate(stage, bake, observed);
        self.update(|p| match p.as_mut() {
            Some(p) if p.stage == stage && observed.as_secs_f64() >= p.observed_seconds + 1.0 => {
                p.phase = crate::core::status::Phase::Baking;
                p.bake_seconds = bake.as_secs();
                p.observed_seconds = (observed.as_secs_f64() * 10.0).round() / 10.0;
                true
            }
            _ => false,
        });
    }
}

/// Structured `tracing` lines, one per change of what the line shows: a watch event
/// that changes only fields the line does not print (generation, ready) prints nothing.
#[derive(Default)]
pub struct LogProgress {
    last: Mutex<BTreeMap<String, Shown>>,
}

/// The part of a rollout status a progress line shows.
type Shown = (i64, i64, i64, i64, bool);

fn shown(s: &RolloutStatus) -> Shown {
    (
        s.desired,
        s.updated,
        s.available,
        s.unavailable,
        s.is_complete(),
    )
}

impl LogProgress {
    /// Whether a status of `name` in `stage` changes what its line would show, and
    /// remembers it.
    fn changed(&self, stage: &str, name: &str, s: &RolloutStatus) -> bool {
        let mut last = self.last.lock().expect("poisoned");
        let key = format!("{stage}/{name}");
        let now = shown(s);
        if last.get(&key) == Some(&now) {
            return false;
        }
        last.insert(key, now);
        true
    }
}

impl Progress for LogProgress {
    fn stage_started(&self, stage: &str, daemonsets: &[String]) {
        tracing::info!(stage, daemonsets = daemonsets.len(), "stage started");
    }
    fn daemonset(&self, stage: &str, name: &str, s: &RolloutStatus) {
        if !self.changed(stage, name, s) {
            return;
        }
        tracing::info!(
            stage,
            daemonset = name,
            desired = s.desired,
            updated = s.updated,
            available = s.available,
            unavailable = s.unavailable,
            complete = s.is_complete(),
            "rollout status"
        );
    }
    fn baking(&self, stage: &str, bake: Duration) {
        tracing::info!(stage, bake_seconds = bake.as_secs(), "baking");
    }
    fn stage_finished(&self, stage: &str, ok: bool, detail: &str) {
        if ok {
            tracing::info!(stage, "stage succeeded");
        } else {
            tracing::warn!(stage, reason = %escape_control(detail), "stage failed");
        }
    }
}

/// One live line per stage and per DaemonSet on a terminal (stderr).
pub struct BarProgress {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Default for BarProgress {
    fn default() -> Self {
        BarProgress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(BTreeMap::new()),
        }
    }
}

impl BarProgress {
    fn bar(&self, key: &str, template: &str) -> ProgressBar {
        let mut bars = self.bars.lock().expect("poisoned");
        bars.entry(key.to_string())
            .or_insert_with(|| {
                let pb = self.multi.add(ProgressBar::new_spinner());
                pb.set_style(ProgressStyle::with_template(template).expect("valid template"));
                pb.enable_steady_tick(Duration::from_millis(120));
                pb
            })
            .clone()
    }
}

impl Progress for BarProgress {
    fn stage_started(&self, stage: &str, daemonsets: &[String]) {
        let pb = self.bar(
            &format!("stage/{stage}"),
            "{spinner} stage {prefix:<14} {msg} [{elapsed}]",
        );
        pb.set_prefix(stage.to_string());
        pb.set_message(format!("rolling out {} DaemonSet(s)", daemonsets.len()));
    }
    fn daemonset(&self, stage: &str, name: &str, s: &RolloutStatus) {
        let pb = self.bar(
            &format!("ds/{stage}/{name}"),
            "    {prefix:<40} [{bar:20}] {msg}",
        );
        pb.set_prefix(name.to_string());
        pb.set_length(s.desired.max(1) as u64);
        pb.set_position(s.updated.min(s.available).max(0) as u64);
        let mark = if s.is_complete() { " done" } else { "" };
        pb.set_message(format!("{}{mark}", s.progress()));
    }
    fn baking(&self, stage: &str, bake: Duration) {
        let pb = self.bar(
            &format!("stage/{stage}"),
            "{spinner} stage {prefix:<14} {msg} [{elapsed}]",
        );
        pb.set_message(format!(
            "baking for {}",
            crate::core::syntax::format_duration(bake)
        ));
    }
    fn stage_finished(&self, stage: &str, ok: bool, detail: &str) {
        let bars = self.bars.lock().expect("poisoned");
        for (k, pb) in bars.iter() {
            if k.starts_with(&format!("ds/{stage}/")) {
                pb.finish();
            }
        }
        if let Some(pb) = bars.get(&format!("stage/{stage}")) {
            let msg = if ok {
                "succeeded".to_string()
            } else {
                format!("FAILED: {}", escape_control(detail))
            };
            pb.finish_with_message(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(generation: i64, ready: i64, updated: i64) -> RolloutStatus {
        RolloutStatus {
            generation,
            observed_generation: generation,
            desired: 4,
            updated,
            available: updated,
            unavailable: 4 - updated,
            ready,
        }
    }

    #[test]
    fn watch_events_that_change_no_shown_field_print_no_line() {
        let p = LogProgress::default();
        assert!(p.changed("canary", "agent-canary", &status(2, 1, 1)));
        // generation and ready move, the shown fields do not: no second line
        assert!(!p.changed("canary", "agent-canary", &status(3, 1, 1)));
        assert!(!p.changed("canary", "agent-canary", &status(3, 2, 1)));
        assert!(p.changed("canary", "agent-canary", &status(3, 2, 2)));
        // the same DaemonSet name in another stage (a resumed run) is its own line
        assert!(p.changed("blue", "agent-canary", &status(3, 2, 2)));
    }
}
