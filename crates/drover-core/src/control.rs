//! The operator's controls of a fleet - pause, resume, and the hold a rollback puts
//! on the sync - as one value the shell keeps in the cluster, so every replica and
//! every CLI reads the same one.
//!
//! Owns: what the control value holds, how it is read (exactly one way: unknown
//! fields or a wrong schema are refused) and changed, which control events the
//! audit trail has not recorded yet, and what a sync may do given what it could
//! read ([`gate`]). Must not: talk to the API server or read a clock (times come in
//! as RFC 3339 text from the shell).

use serde::{Deserialize, Serialize};

/// The schema tag of the control value.
pub const CONTROL_SCHEMA: &str = "drover.dev/control/v1";
/// How many control events the value keeps (oldest dropped first). The audit trail
/// keeps them all; this only bounds the object.
pub const MAX_EVENTS: usize = 50;

/// The control value of one fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Control {
    pub schema: String,
    /// Set while the fleet is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    /// Set while a rollback holds the sync on an earlier commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// The serial of the last event (0: none yet).
    #[serde(default)]
    pub serial: u64,
    /// The last [`MAX_EVENTS`] changes, oldest first.
    #[serde(default)]
    pub events: Vec<ControlEvent>,
}

impl Default for Control {
    fn default() -> Control {
        Control {
            schema: CONTROL_SCHEMA.to_string(),
            paused: None,
            hold: None,
            serial: 0,
            events: Vec::new(),
        }
    }
}

/// Who paused, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pause {
    pub reason: String,
    pub by: String,
    pub at: String,
}

/// A rollback's hold: the sync applies `commit` instead of the branch head while the
/// head is still `branch_head`; once the branch moves, the hold is cleared. The CLI
/// cannot know the head the sync follows: the sync pins it when it first sees the
/// hold (`branch_head` is `None` until then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hold {
    pub commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_head: Option<String>,
    pub by: String,
    pub at: String,
}

/// What an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pause,
    Resume,
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Rollback => "rollback",
        }
    }
}

/// One change of the control value, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlEvent {
    pub serial: u64,
    pub action: Action,
    pub by: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The commit a rollback holds the sync on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Why a control value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the control value is not valid: {reason}")]
    Parse { reason: String },
    #[error("the control value has schema `{found}`, expected `{CONTROL_SCHEMA}`")]
    Schema { found: String },
}

/// Whether a change did anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Changed; the event added.
    Done(ControlEvent),
    /// Already so: nothing changed, no event.
    Already,
}

impl Control {
    /// Reads a control value, refusing anything it cannot read exactly one way.
    ///
    /// # Errors
    /// Invalid JSON, unknown fields, or another schema.
    pub fn parse(text: &str) -> Result<Control, ControlError> {
        let c: Control = serde_json::from_str(text).map_err(|e| ControlError::Parse {
            reason: e.to_string(),
        })?;
        if c.schema != CONTROL_SCHEMA {
            return Err(ControlError::Schema { found: c.schema });
        }
        Ok(c)
    }

    /// The value as stored (pretty JSON, stable field order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the control value serialises")
    }

    fn push(&mut self, mut ev: ControlEvent) -> Change {
        self.serial += 1;
        ev.serial = self.serial;
        self.events.push(ev.clone());
        let extra = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..extra);
        Change::Done(ev)
    }

    /// Pauses the fleet; a fleet already paused keeps its first reason.
    pub fn pause(&mut self, reason: &str, by: &str, at: &str) -> Change {
        if self.paused.is_some() {
            return Change::Already;
        }
        self.paused = Some(Pause {
            reason: reason.to_string(),
            by: by.to_string(),
            at: at.to_string(),
        });
        self.push(ControlEvent {
            serial: 0,
            action: Action::Pause,
            by: by.to_string(),
            at: at.to_string(),
            reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
            commit: None,
        })
    }

    /// Lifts the pause.
    pub fn resume(&mut self, by: &str, at: &str) -> Change {
        if self.paused.take().is_none() {
            return Change::Already;
        }
        self.push(ControlEvent {
            serial: 0,
            action: Action::Resume,
            by: by.to_string(),
            at: at.to_string(),
            reason: None,
            commit: None,
        })
    }

    /// Pins the hold to the branch head the sync sees now (once).
    pub fn pin_hold(&mut self, commit: &str, head: &str) -> Change {
        match self.hold.as_mut() {
            Some(h) if h.commit == commit && h.branch_head.is_none() => {
                h.branch_head = Some(head.to_string());
                Change::Done(self.events.last().cloned().unwrap_or(ControlEvent {
                    serial: self.serial,
                    action: Action::Rollback,
                    by: h.by.clone(),
                    at: h.at.clone(),
                    reason: None,
                    commit: Some(commit.to_string()),
                }))
            }
            _ => Change::Already,
        }
    }

    /// Clears the hold on `commit` (the branch moved past it).
    pub fn release_hold(&mut self, commit: &str) -> Change {
        match &self.hold {
            Some(h) if h.commit == commit => {
                let ev = self.events.last().cloned();
                self.hold = None;
                ev.map_or(Change::Already, Change::Done)
            }
            _ => Change::Already,
        }
    }

    /// Holds the sync on `commit` until the branch moves.
    pub fn hold(&mut self, commit: &str, by: &str, at: &str) -> Change {
        self.hold = Some(Hold {
            commit: commit.to_string(),
            branch_head: None,
            by: by.to_string(),
            at: at.to_string(),
        });
        self.push(ControlEvent {
            serial: 0,
            action: Action::Rollback,
            by: by.to_string(),
            at: at.to_string(),
            reason: None,
            commit: Some(commit.to_string()),
        })
    }

    /// The events after serial `recorded`, oldest first. Events dropped from the
    /// value before they were recorded are counted in the second element, so the
    /// trail can say that some were lost rather than pretend there were none.
    pub fn unrecorded(&self, recorded: u64) -> (Vec<&ControlEvent>, u64) {
        let events: Vec<&ControlEvent> =
            self.events.iter().filter(|e| e.serial > recorded).collect();
        let first = events.first().map_or(self.serial + 1, |e| e.serial);
        let lost = first.saturating_sub(recorded + 1);
        (events, lost)
    }
}

/// What the control value allows a sync to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clearance {
    /// Not paused: stages may start.
    Clear,
    /// Paused by an operator.
    Paused { reason: String, by: String },
    /// The control value could not be read: treated as paused (fail closed).
    Unknown { reason: String },
    /// A freeze window holds the stage (`Fleet.spec.freezeWindows`): it starts when
    /// the window ends.
    Frozen(crate::freeze::Frozen),
}

impl Clearance {
    pub fn is_open(&self) -> bool {
        *self == Clearance::Clear
    }

    /// Why stages may not start, for logs and status.
    pub fn why(&self) -> Option<String> {
        match self {
            Clearance::Clear => None,
            Clearance::Paused { reason, by } if reason.is_empty() => {
                Some(format!("paused by {by}"))
            }
            Clearance::Paused { reason, by } => Some(format!("paused by {by}: {reason}")),
            Clearance::Unknown { reason } => Some(format!(
                "the control object cannot be read ({reason}); no new stage starts"
            )),
            Clearance::Frozen(f) => Some(f.to_string()),
        }
    }
}

/// The gate, from what reading the control value gave: `Ok(None)` is a fleet with
/// no control value yet (never paused), an error is a value that could not be read.
pub fn gate<E: std::fmt::Display>(read: Result<Option<&Control>, E>) -> Clearance {
    match read {
        Ok(None) => Clearance::Clear,
        Ok(Some(c)) => match &c.paused {
            None => Clearance::Clear,
            Some(p) => Clearance::Paused {
                reason: p.reason.clone(),
                by: p.by.clone(),
            },
        },
        Err(e) => Clearance::Unknown {
            reason: e.to_string(),
        },
    }
}

/// Which commit a sync works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The branch head, normally.
    Head,
    /// A rollback holds the sync on this commit: the branch has not moved since
    /// (`pin`: the hold is new, pin it to the head seen now).
    Held { commit: String, pin: bool },
    /// There is a hold, but the branch moved past it: clear it and follow the head.
    Released { commit: String },
}

/// The commit to work on, given the hold (if any) and the branch head now.
pub fn target(hold: Option<&Hold>, head: &str) -> Target {
    match hold {
        None => Target::Head,
        Some(h) => match h.branch_head.as_deref() {
            None => Target::Held {
                commit: h.commit.clone(),
                pin: true,
            },
            Some(b) if b == head => Target::Held {
                commit: h.commit.clone(),
                pin: false,
            },
            Some(_) => Target::Released {
                commit: h.commit.clone(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_and_resume_each_add_one_event_and_repeats_change_nothing() {
        let mut c = Control::default();
        let Change::Done(ev) = c.pause("bad canary", "alice", "t1") else {
            panic!()
        };
        assert_eq!((ev.serial, ev.action), (1, Action::Pause));
        assert_eq!(c.pause("again", "bob", "t2"), Change::Already);
        assert_eq!(c.paused.as_ref().unwrap().reason, "bad canary");
        assert!(matches!(c.resume("bob", "t3"), Change::Done(e) if e.serial == 2));
        assert_eq!(c.resume("bob", "t4"), Change::Already);
        assert_eq!(c.paused, None);
        assert_eq!(c.serial, 2);
        assert_eq!(c.events.len(), 2);
    }

    #[test]
    fn the_value_round_trips_and_anything_else_is_refused() {
        let mut c = Control::default();
        c.pause("why", "me", "t");
        c.hold("abc", "me", "t");
        c.pin_hold("abc", "def");
        assert_eq!(Control::parse(&c.to_json()).unwrap(), c);
        let unknown = c
            .to_json()
            .replacen("\"serial\"", "\"paused_at\": 1, \"serial\"", 1);
        assert!(matches!(
            Control::parse(&unknown),
            Err(ControlError::Parse { .. })
        ));
        let other = c.to_json().replace(CONTROL_SCHEMA, "drover.dev/control/v9");
        assert_eq!(
            Control::parse(&other),
            Err(ControlError::Schema {
                found: "drover.dev/control/v9".into()
            })
        );
        assert!(Control::parse("").is_err());
    }

    #[test]
    fn unrecorded_events_are_those_after_the_last_recorded_and_lost_ones_are_counted() {
        let mut c = Control::default();
        for i in 0..(MAX_EVENTS + 5) {
            if i % 2 == 0 {
                c.pause("", "a", "t");
            } else {
                c.resume("a", "t");
            }
        }
        assert_eq!(c.events.len(), MAX_EVENTS);
        let (events, lost) = c.unrecorded(0);
        assert_eq!((events.len(), lost), (MAX_EVENTS, 5));
        let (events, lost) = c.unrecorded(c.serial - 2);
        assert_eq!(events.len(), 2);
        assert_eq!(lost, 0);
        assert_eq!(events[0].serial, c.serial - 1);
        assert_eq!(c.unrecorded(c.serial), (vec![], 0));
    }

    #[test]
    fn the_gate_is_open_only_when_the_value_was_read_and_says_not_paused() {
        assert_eq!(gate::<String>(Ok(None)), Clearance::Clear);
        let mut c = Control::default();
        assert_eq!(gate::<String>(Ok(Some(&c))), Clearance::Clear);
        c.pause("db migration", "alice", "t");
        let g = gate::<String>(Ok(Some(&c)));
        assert_eq!(g.why().as_deref(), Some("paused by alice: db migration"));
        let g = gate(Err::<Option<&Control>, _>("connection refused"));
        assert!(!g.is_open());
        assert!(g.why().unwrap().contains("connection refused"));
    }

    #[test]
    fn a_hold_is_pinned_to_the_head_first_seen_and_applies_until_the_branch_moves() {
        let mut c = Control::default();
        assert_eq!(target(c.hold.as_ref(), "bad"), Target::Head);
        assert!(
            matches!(c.hold("old", "a", "t"), Change::Done(e) if e.action == Action::Rollback && e.commit.as_deref() == Some("old"))
        );
        assert_eq!(
            target(c.hold.as_ref(), "bad"),
            Target::Held {
                commit: "old".into(),
                pin: true
            }
        );
        assert!(matches!(c.pin_hold("old", "bad"), Change::Done(_)));
        assert_eq!(c.pin_hold("old", "other"), Change::Already, "pinned once");
        assert_eq!(
            target(c.hold.as_ref(), "bad"),
            Target::Held {
                commit: "old".into(),
                pin: false
            }
        );
        assert_eq!(
            target(c.hold.as_ref(), "fix"),
            Target::Released {
                commit: "old".into()
            }
        );
        assert_eq!(c.release_hold("another"), Change::Already);
        assert!(matches!(c.release_hold("old"), Change::Done(_)));
        assert_eq!(target(c.hold.as_ref(), "fix"), Target::Head);
        assert_eq!(
            c.serial, 1,
            "pinning and releasing are not operator actions"
        );
    }
}
