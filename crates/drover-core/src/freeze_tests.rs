//! Freeze windows with injected instants: the window's edges, chains, group scope,
//! daylight saving time in both directions, and validation.

use jiff::civil::date;
use proptest::prelude::*;

use super::*;
use crate::diag::{Diagnostic, Pos};

fn spec(name: &str, start: &str, tz: &str, duration: &str) -> FreezeWindowSpec {
    FreezeWindowSpec {
        name: name.into(),
        start: start.into(),
        time_zone: tz.into(),
        duration: duration.into(),
        groups: None,
        drift_correction: DriftCorrection::Allow,
    }
}

fn groups(gs: &[&str]) -> Vec<String> {
    gs.iter().map(|g| g.to_string()).collect()
}

fn diag(field: &str, message: String, hint: Option<String>) -> Diagnostic {
    Diagnostic::new("drover.yaml", Pos::default(), field, message).with_hint(hint)
}

fn windows(specs: &[FreezeWindowSpec]) -> Vec<FreezeWindow> {
    validate_windows(specs, &groups(&["canary-eu", "general"]), diag).expect("valid windows")
}

fn errors(specs: &[FreezeWindowSpec]) -> Vec<String> {
    validate_windows(specs, &groups(&["canary-eu", "general"]), diag)
        .expect_err("invalid windows")
        .iter()
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect()
}

/// An instant given as wall-clock time in a zone.
fn at(tz: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
    date(y, mo, d)
        .at(h, mi, 0, 0)
        .to_zoned(parse_time_zone(tz).unwrap().1)
        .unwrap()
        .timestamp()
}

fn until(f: Option<Frozen>) -> String {
    f.map(|f| f.until.to_string())
        .unwrap_or_else(|| "not frozen".into())
}

/// "No rollouts to canary-eu on Fridays after 15:00 Europe/Berlin", until Monday.
fn friday_afternoon() -> FreezeWindowSpec {
    FreezeWindowSpec {
        groups: Some(groups(&["canary-eu"])),
        ..spec("friday-afternoon", "0 15 * * FRI", "Europe/Berlin", "2d15h")
    }
}

#[test]
fn the_friday_window_freezes_canary_eu_from_friday_15_00_to_monday_06_00_berlin_time() {
    let w = windows(&[friday_afternoon()]);
    let eu = groups(&["canary-eu"]);
    // 2026-12-04 is a Friday.
    assert_eq!(
        until(frozen_until(
            &w,
            &eu,
            at("Europe/Berlin", 2026, 12, 4, 14, 59)
        )),
        "not frozen"
    );
    assert_eq!(
        until(frozen_until(
            &w,
            &eu,
            at("Europe/Berlin", 2026, 12, 4, 15, 0)
        )),
        "2026-12-07T06:00:00+01:00[Europe/Berlin]"
    );
    assert_eq!(
        until(frozen_until(
            &w,
            &eu,
            at("Europe/Berlin", 2026, 12, 6, 23, 0)
        )),
        "2026-12-07T06:00:00+01:00[Europe/Berlin]"
    );
    // The end is open: at 06:00 rollouts may start again.
    assert_eq!(
        until(frozen_until(
            &w,
            &eu,
            at("Europe/Berlin", 2026, 12, 7, 6, 0)
        )),
        "not frozen"
    );
}

#[test]
fn a_window_scoped_to_groups_leaves_the_other_groups_alone() {
    let w = windows(&[friday_afternoon()]);
    let t = at("Europe/Berlin", 2026, 12, 4, 16, 0);
    assert!(frozen_until(&w, &groups(&["general"]), t).is_none());
    assert!(frozen_until(&w, &groups(&["general", "canary-eu"]), t).is_some());
    let fleet_wide = windows(&[spec("all", "0 15 * * FRI", "Europe/Berlin", "1h")]);
    assert!(
        frozen_until(
            &fleet_wide,
            &groups(&["general"]),
            t - SignedDuration::from_mins(30)
        )
        .is_some()
    );
}

#[test]
fn the_same_instant_is_judged_in_the_window_s_own_time_zone() {
    // 15:00 in Berlin is 14:00 UTC in winter; a UTC window at 15:00 is another hour.
    let berlin = windows(&[spec("b", "0 15 * * *", "Europe/Berlin", "30m")]);
    let utc = windows(&[spec("u", "0 15 * * *", "UTC", "30m")]);
    let t = at("UTC", 2026, 1, 15, 14, 10);
    assert!(frozen_until(&berlin, &[], t).is_some());
    assert!(frozen_until(&utc, &[], t).is_none());
}

#[test]
fn overlapping_and_touching_windows_freeze_until_the_last_one_ends() {
    let w = windows(&[
        spec("a", "0 9 * * *", "UTC", "2h"),
        spec("b", "0 10 * * *", "UTC", "2h"),
        spec("c", "0 12 * * *", "UTC", "30m"),
    ]);
    let f = frozen_until(&w, &[], at("UTC", 2026, 5, 5, 9, 30)).unwrap();
    assert_eq!(f.until.to_string(), "2026-05-05T12:30:00+00:00[UTC]");
    assert_eq!(f.windows, vec!["a", "b", "c"]);
}

#[test]
fn a_freeze_that_never_lets_go_stops_at_the_horizon() {
    let w = windows(&[spec("always", "0 0 * * *", "UTC", "25h")]);
    let t = at("UTC", 2026, 5, 5, 9, 30);
    let f = frozen_until(&w, &[], t).unwrap();
    assert!(f.at_least);
    let ahead = f.until.timestamp().duration_since(t);
    assert!(
        ahead >= SignedDuration::from_hours(24 * HORIZON_DAYS),
        "{ahead:?}"
    );
    assert!(
        ahead <= SignedDuration::from_hours(24 * HORIZON_DAYS + 25),
        "{ahead:?}"
    );
    assert!(
        f.to_string().starts_with("frozen until at least 2027-"),
        "{f}"
    );
}

#[test]
fn a_chain_of_minute_windows_stops_after_the_round_bound() {
    let w = windows(&[spec("every-minute", "* * * * *", "UTC", "1m")]);
    let t = at("UTC", 2026, 5, 5, 9, 30);
    let f = frozen_until(&w, &[], t).unwrap();
    assert!(f.at_least);
    assert_eq!(
        f.until.timestamp().duration_since(t),
        SignedDuration::from_mins(MAX_ROUNDS as i64)
    );
}

#[test]
fn calendar_days_follow_the_wall_clock_across_the_spring_change() {
    // Berlin springs forward on 2026-03-29 (02:00 -> 03:00): that Sunday has 23 hours.
    let w = windows(&[spec("weekend", "0 15 * * FRI", "Europe/Berlin", "2d15h")]);
    let f = frozen_until(&w, &[], at("Europe/Berlin", 2026, 3, 28, 12, 0)).unwrap();
    assert_eq!(
        f.until.to_string(),
        "2026-03-30T06:00:00+02:00[Europe/Berlin]"
    );
    // The same length written in hours is elapsed time: an hour later on the wall.
    let w = windows(&[spec("weekend", "0 15 * * FRI", "Europe/Berlin", "63h")]);
    let f = frozen_until(&w, &[], at("Europe/Berlin", 2026, 3, 28, 12, 0)).unwrap();
    assert_eq!(
        f.until.to_string(),
        "2026-03-30T07:00:00+02:00[Europe/Berlin]"
    );
}

#[test]
fn calendar_days_follow_the_wall_clock_across_the_autumn_change() {
    // Berlin falls back on 2026-10-25 (03:00 -> 02:00): that Sunday has 25 hours.
    let w = windows(&[spec("weekend", "0 15 * * FRI", "Europe/Berlin", "2d15h")]);
    let f = frozen_until(&w, &[], at("Europe/Berlin", 2026, 10, 24, 12, 0)).unwrap();
    assert_eq!(
        f.until.to_string(),
        "2026-10-26T06:00:00+01:00[Europe/Berlin]"
    );
    let w = windows(&[spec("weekend", "0 15 * * FRI", "Europe/Berlin", "63h")]);
    let f = frozen_until(&w, &[], at("Europe/Berlin", 2026, 10, 24, 12, 0)).unwrap();
    assert_eq!(
        f.until.to_string(),
        "2026-10-26T05:00:00+01:00[Europe/Berlin]"
    );
}

#[test]
fn a_start_in_the_skipped_hour_opens_the_window_right_after_the_gap() {
    // 02:30 does not exist in Berlin on 2026-03-29.
    let w = windows(&[spec("night", "30 2 * * *", "Europe/Berlin", "1h")]);
    let before_gap =
        Timestamp::from_second(at("Europe/Berlin", 2026, 3, 29, 1, 59).as_second() + 59).unwrap();
    assert!(frozen_until(&w, &[], before_gap).is_none());
    let f = frozen_until(&w, &[], at("Europe/Berlin", 2026, 3, 29, 3, 0)).unwrap();
    assert_eq!(
        f.until.to_string(),
        "2026-03-29T04:00:00+02:00[Europe/Berlin]"
    );
    // The next day it is 02:30 again.
    let f = frozen_until(&w, &[], at("Europe/Berlin", 2026, 3, 30, 2, 45)).unwrap();
    assert_eq!(
        f.until.to_string(),
        "2026-03-30T03:30:00+02:00[Europe/Berlin]"
    );
}

#[test]
fn a_start_in_the_repeated_hour_opens_the_window_once_the_first_time() {
    // 02:30 happens twice in Berlin on 2026-10-25: at 00:30 and at 01:30 UTC.
    let w = windows(&[spec("night", "30 2 * * *", "Europe/Berlin", "30m")]);
    let first = at("UTC", 2026, 10, 25, 0, 40);
    let f = frozen_until(&w, &[], first).unwrap();
    assert_eq!(
        f.until.to_string(),
        "2026-10-25T02:00:00+01:00[Europe/Berlin]"
    );
    assert_eq!(f.until.timestamp(), at("UTC", 2026, 10, 25, 1, 0));
    let second = at("UTC", 2026, 10, 25, 1, 40);
    assert!(frozen_until(&w, &[], second).is_none());
}

#[test]
fn the_stage_answer_uses_the_stage_s_groups() {
    let fleet = Fleet {
        name: "f".into(),
        namespace: "n".into(),
        groups: vec![],
        stages: vec![
            crate::fleet::Stage {
                name: "canary".into(),
                groups: groups(&["canary-eu"]),
                bake: std::time::Duration::ZERO,
                timeout: std::time::Duration::ZERO,
                progress_deadline: std::time::Duration::ZERO,
                max_unobserved: std::time::Duration::ZERO,
            },
            crate::fleet::Stage {
                name: "rest".into(),
                groups: groups(&["general"]),
                bake: std::time::Duration::ZERO,
                timeout: std::time::Duration::ZERO,
                progress_deadline: std::time::Duration::ZERO,
                max_unobserved: std::time::Duration::ZERO,
            },
        ],
        defaults: Default::default(),
        prune: Default::default(),
        on_failure: Default::default(),
        force_conflicts: false,
        daemons: vec![],
        freeze_windows: windows(&[friday_afternoon()]),
        node_conditions: vec![],
        companions: vec![],
        companion_namespaces: vec![],
    };
    let t = at("Europe/Berlin", 2026, 12, 4, 16, 0);
    assert!(stage_frozen_until(&fleet, 0, t).is_some());
    assert!(stage_frozen_until(&fleet, 1, t).is_none());
    assert!(stage_frozen_until(&fleet, 2, t).is_none());
}

#[test]
fn only_windows_that_deny_drift_correction_hold_drift_back() {
    let mut deny = spec("deny", "0 9 * * *", "UTC", "1h");
    deny.drift_correction = DriftCorrection::Deny;
    let allow = spec("allow", "0 9 * * *", "UTC", "3h");
    let t = at("UTC", 2026, 5, 5, 9, 30);
    let w = windows(&[deny, allow]);
    let f = drift_frozen_until(&w, &[], t).unwrap();
    assert_eq!(f.windows, vec!["deny"]);
    assert_eq!(f.until.to_string(), "2026-05-05T10:00:00+00:00[UTC]");
    assert_eq!(
        until(drift_frozen_until(&w, &[], at("UTC", 2026, 5, 5, 10, 30))),
        "not frozen"
    );
    assert_eq!(
        until(frozen_until(&w, &[], at("UTC", 2026, 5, 5, 10, 30))),
        "2026-05-05T12:00:00+00:00[UTC]"
    );
}

#[test]
fn an_override_is_recorded_only_when_something_was_frozen() {
    let w = windows(&[friday_afternoon()]);
    let eu = groups(&["canary-eu"]);
    let r = override_record(&w, &eu, at("Europe/Berlin", 2026, 12, 4, 16, 0), "CVE fix").unwrap();
    assert_eq!(r.windows, vec!["friday-afternoon"]);
    assert_eq!(r.frozen_until, "2026-12-07T06:00:00+01:00[Europe/Berlin]");
    assert!(override_record(&w, &eu, at("Europe/Berlin", 2026, 12, 3, 16, 0), "x").is_none());
}

#[test]
fn a_rollout_stage_is_held_by_every_open_window_and_a_drift_stage_only_by_deny_windows() {
    let mut deny = spec("deny", "0 9 * * *", "UTC", "1h");
    deny.drift_correction = DriftCorrection::Deny;
    deny.groups = Some(groups(&["canary-eu"]));
    let allow = spec("allow", "0 9 * * *", "UTC", "3h");
    let w = windows(&[deny, allow]);
    let t = at("UTC", 2026, 5, 5, 9, 30);
    let eu = groups(&["canary-eu"]);
    let us = groups(&["canary-us"]);
    let names = |f: Option<Frozen>| f.map(|f| f.windows).unwrap_or_default();
    assert_eq!(
        names(stage_gate(&w, &eu, Change::Rollout, t)),
        vec!["allow", "deny"]
    );
    assert_eq!(names(stage_gate(&w, &eu, Change::Drift, t)), vec!["deny"]);
    assert_eq!(
        names(stage_gate(&w, &us, Change::Rollout, t)),
        vec!["allow"]
    );
    assert!(stage_gate(&w, &us, Change::Drift, t).is_none());
}

#[test]
fn overrides_at_several_stages_merge_into_one_record_ending_at_the_latest_end() {
    let a = FreezeOverride {
        reason: "CVE fix".into(),
        windows: vec!["b".into(), "a".into()],
        frozen_until: "2026-12-07T06:00:00+01:00[Europe/Berlin]".into(),
    };
    let b = FreezeOverride {
        reason: "CVE fix".into(),
        windows: vec!["c".into(), "a".into()],
        // Earlier as an instant, though later as text.
        frozen_until: "2026-12-07T06:30:00+03:00[Europe/Moscow]".into(),
    };
    let m = a.clone().merge(b.clone());
    assert_eq!(m.windows, vec!["a", "b", "c"]);
    assert_eq!(m.frozen_until, a.frozen_until);
    assert_eq!(b.merge(a.clone()).frozen_until, a.frozen_until);
}

#[test]
fn bad_windows_are_reported_at_their_fields() {
    let mut g = spec("scoped", "0 15 * * FRI", "UTC", "1h");
    g.groups = Some(groups(&["canary-us"]));
    let e = errors(&[
        spec("Bad_Name", "0 15 * * FRI", "UTC", "1h"),
        spec("cron", "0 15 * FRI", "UTC", "1h"),
        spec("zone", "0 15 * * FRI", "Europe/Berln", "1h"),
        spec("case", "0 15 * * FRI", "europe/berlin", "1h"),
        spec("short", "0 15 * * FRI", "UTC", "30s"),
        spec("long", "0 15 * * FRI", "UTC", "32d"),
        spec("months", "0 15 * * FRI", "UTC", "1mo"),
        spec("never", "0 0 30 2 *", "UTC", "1h"),
        spec("dup", "0 15 * * FRI", "UTC", "1h"),
        spec("dup", "0 16 * * FRI", "UTC", "1h"),
        g,
    ]);
    let has = |field: &str, text: &str| {
        assert!(
            e.iter().any(|l| l.starts_with(field) && l.contains(text)),
            "no `{text}` at {field} in {e:#?}"
        )
    };
    has("spec.freezeWindows[0].name", "DNS-1123");
    has(
        "spec.freezeWindows[1].start",
        "not a 5-field cron expression",
    );
    has(
        "spec.freezeWindows[2].timeZone",
        "unknown time zone `Europe/Berln`",
    );
    has(
        "spec.freezeWindows[3].timeZone",
        "is spelled `Europe/Berlin`",
    );
    has(
        "spec.freezeWindows[4].duration",
        "shorter than the shortest window",
    );
    has(
        "spec.freezeWindows[5].duration",
        "longer than the longest window, 31d",
    );
    has("spec.freezeWindows[6].duration", "years and months");
    has("spec.freezeWindows[7].start", "never matches");
    has(
        "spec.freezeWindows[9].name",
        "duplicate freeze window name `dup`",
    );
    has(
        "spec.freezeWindows[10].groups[0]",
        "unknown group `canary-us`",
    );
    assert_eq!(e.len(), 10, "{e:#?}");
}

#[test]
fn an_unknown_zone_gets_a_suggestion() {
    let ds = validate_windows(
        &[spec("z", "0 15 * * FRI", "Europe/Berln", "1h")],
        &[],
        diag,
    )
    .unwrap_err();
    assert_eq!(ds[0].hint.as_deref(), Some("did you mean `Europe/Berlin`?"));
}

#[test]
fn too_many_windows_are_refused_before_any_is_parsed() {
    let many: Vec<_> = (0..=MAX_WINDOWS)
        .map(|i| spec(&format!("w{i}"), "0 0 * * *", "UTC", "1h"))
        .collect();
    let e = errors(&many);
    assert_eq!(
        e,
        vec![format!(
            "spec.freezeWindows: {} freeze windows, more than the limit of {MAX_WINDOWS}",
            MAX_WINDOWS + 1
        )]
    );
}

#[test]
fn durations_take_calendar_days_and_elapsed_time() {
    assert_eq!(parse_duration("2h"), Ok((0, SignedDuration::from_hours(2))));
    assert_eq!(
        parse_duration("1h30m"),
        Ok((0, SignedDuration::from_mins(90)))
    );
    assert_eq!(
        parse_duration("2d15h"),
        Ok((2, SignedDuration::from_hours(15)))
    );
    assert_eq!(parse_duration("1w"), Ok((7, SignedDuration::ZERO)));
    assert_eq!(parse_duration("31d"), Ok((31, SignedDuration::ZERO)));
    assert!(parse_duration("-1h").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("soon").is_err());
}

fn any_window() -> impl Strategy<Value = FreezeWindowSpec> {
    let zones = prop::sample::select(vec![
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ]);
    (0u8..60, 0u8..24, 0u8..7, zones, 1u32..(60 * 24 * 9)).prop_map(|(m, h, dow, z, mins)| {
        spec("w", &format!("{m} {h} * * {dow}"), z, &format!("{}m", mins))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Frozen means frozen until a later instant; just before that instant it is
    /// still frozen, at it it is not.
    #[test]
    fn frozen_until_is_later_still_frozen_just_before_and_free_at_it(
        ws in prop::collection::vec(any_window(), 1..4),
        secs in 1_700_000_000i64..1_900_000_000,
    ) {
        let ws: Vec<_> = ws.into_iter().enumerate().map(|(i, mut w)| { w.name = format!("w{i}"); w }).collect();
        let w = windows(&ws);
        let t = Timestamp::from_second(secs).unwrap();
        if let Some(f) = frozen_until(&w, &[], t) {
            let end = f.until.timestamp();
            prop_assert!(end > t);
            // Windows that together cover every hour of a week never let go.
            prop_assume!(!f.at_least);
            let just_before = end - SignedDuration::from_secs(1);
            prop_assert!(frozen_until(&w, &[], just_before).is_some());
            prop_assert_eq!(frozen_until(&w, &[], just_before).map(|g| g.until.timestamp()), Some(end));
            prop_assert!(frozen_until(&w, &[], end).is_none());
        }
    }

    /// Adding a window never unfreezes anything, and never shortens a freeze.
    #[test]
    fn more_windows_freeze_at_least_as_long(
        ws in prop::collection::vec(any_window(), 1..4),
        extra in any_window(),
        secs in 1_700_000_000i64..1_900_000_000,
    ) {
        let mut ws: Vec<_> = ws.into_iter().enumerate().map(|(i, mut w)| { w.name = format!("w{i}"); w }).collect();
        let t = Timestamp::from_second(secs).unwrap();
        let before = frozen_until(&windows(&ws), &[], t);
        ws.push(FreezeWindowSpec { name: "extra".into(), ..extra });
        let after = frozen_until(&windows(&ws), &[], t);
        if let Some(b) = before {
            // Past the look-ahead the answer is only "at least this long".
            prop_assume!(!b.at_least && !after.as_ref().is_some_and(|a| a.at_least));
            prop_assert!(after.is_some_and(|a| a.until.timestamp() >= b.until.timestamp()));
        }
    }
}

#[test]
fn a_fleet_file_s_bad_windows_are_reported_at_their_line_and_column() {
    let yaml = "\
apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {name: f}
spec:
  namespace: n
  groups: [canary-eu, general]
  freezeWindows:
    - name: friday
      start: \"0 15 * * FRY\"
      timeZone: Europe/Berln
      duration: 2d15h
      groups: [canary-ue]
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: canary-eu}
spec: {selector: {matchLabels: {zone: eu}}}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: general}
spec: {selector: {}}
";
    let files = [crate::load::SourceFile {
        path: "drover.yaml".into(),
        bytes: yaml.as_bytes().to_vec(),
    }];
    let d = crate::validate::load_fleet(&files, &crate::limits::LIMITS).unwrap_err();
    let lines: Vec<String> = d.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with("drover.yaml:9:14: spec.freezeWindows[0].start: `0 15 * * FRY` is not a 5-field cron expression"), "{lines:#?}");
    assert_eq!(
        lines[1],
        "drover.yaml:10:17: spec.freezeWindows[0].timeZone: unknown time zone `Europe/Berln`: not an IANA time zone name (like Europe/Berlin or UTC) (did you mean `Europe/Berlin`?)"
    );
    assert_eq!(
        lines[2],
        "drover.yaml:12:16: spec.freezeWindows[0].groups[0]: unknown group `canary-ue`: not in spec.groups (did you mean `canary-eu`?)"
    );
    // Fixed, the same file validates and the window is there.
    let good = yaml
        .replace("FRY", "FRI")
        .replace("Berln", "Berlin")
        .replace("canary-ue", "canary-eu");
    let files = [crate::load::SourceFile {
        path: "drover.yaml".into(),
        bytes: good.into_bytes(),
    }];
    let fleet = crate::validate::load_fleet(&files, &crate::limits::LIMITS).unwrap();
    assert_eq!(fleet.freeze_windows.len(), 1);
    assert_eq!(fleet.freeze_windows[0].time_zone, "Europe/Berlin");
}

#[test]
fn a_window_missing_its_time_zone_is_an_error_at_the_window() {
    let yaml = "\
apiVersion: drover.dev/v1alpha1
kind: Fleet
metadata: {name: f}
spec:
  namespace: n
  groups: [general]
  freezeWindows:
    - {name: w, start: \"0 15 * * FRI\", duration: 1h}
---
apiVersion: drover.dev/v1alpha1
kind: NodeGroup
metadata: {name: general}
spec: {selector: {}}
";
    let files = [crate::load::SourceFile {
        path: "drover.yaml".into(),
        bytes: yaml.as_bytes().to_vec(),
    }];
    let d = crate::validate::load_fleet(&files, &crate::limits::LIMITS).unwrap_err();
    let text = d.to_string();
    assert!(text.contains("drover.yaml:8:"), "{text}");
    assert!(text.contains("timeZone"), "{text}");
}

#[test]
fn a_restricted_day_of_month_and_day_of_week_match_either_as_in_vixie_cron() {
    // The 13th, and every Friday: 2026-11-13 is a Friday, 2026-11-20 a Friday,
    // 2026-12-13 a Sunday.
    let w = windows(&[spec("w", "0 12 13 * FRI", "UTC", "1h")]);
    for (d, m, frozen) in [
        (13, 11, true),
        (20, 11, true),
        (13, 12, true),
        (14, 12, false),
    ] {
        let t = at("UTC", 2026, m, d, 12, 30);
        assert_eq!(frozen_until(&w, &[], t).is_some(), frozen, "2026-{m}-{d}");
    }
}

#[test]
fn nicknames_are_five_field_schedules() {
    let w = windows(&[spec("w", "@daily", "UTC", "1h")]);
    assert!(frozen_until(&w, &[], at("UTC", 2026, 5, 5, 0, 30)).is_some());
    assert!(frozen_until(&w, &[], at("UTC", 2026, 5, 5, 1, 30)).is_none());
    let e = errors(&[spec("w", "0 0 15 * * FRI", "UTC", "1h")]);
    assert!(e[0].contains("not a 5-field cron expression"), "{e:#?}");
}
