//! Plan-bound apply: the change set between two renders, its digest, and what differs
//! between an approved change set and the one about to be applied.
//!
//! Owns: what "the reviewed change" is, exactly. A change set is every object whose
//! render differs between a base and a head, with its action and the content hashes
//! of both sides (the spec hash, which leaves out the commit annotation, so a merge
//! commit renders the same change as the PR head it merges). Its digest is a SHA-256
//! over a canonical text of it. Must not: read git or the cluster (the shell renders
//! the commits and passes both sets in).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::render::DesiredSet;

/// The digest's text prefix and version: a new canonical form gets a new prefix.
pub const DIGEST_PREFIX: &str = "drover-plan-v1:sha256:";

/// The commit trailer a merge carries to bind it to a reviewed plan.
pub const TRAILER: &str = "Drover-Plan";

/// What happens to one object between base and head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Change {
    Create { hash: String },
    Update { from: String, to: String },
    Delete { hash: String },
}

impl Change {
    fn line(&self) -> String {
        match self {
            Change::Create { hash } => format!("create {hash}"),
            Change::Update { from, to } => format!("update {from} {to}"),
            Change::Delete { hash } => format!("delete {hash}"),
        }
    }
}

/// Every object whose render differs between two commits, keyed by
/// `Kind/namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeSet {
    pub changes: BTreeMap<String, Change>,
}

fn key(namespace: &str, name: &str) -> String {
    format!("DaemonSet/{namespace}/{name}")
}

/// Every object of a rendered set with its content hash: the DaemonSets by their
/// spec hash, the companion objects by [`crate::companion::Companion::content_hash`].
fn hashes(set: &DesiredSet) -> BTreeMap<String, String> {
    set.items
        .iter()
        .map(|i| (key(&set.namespace, &i.name), i.spec_hash.clone()))
        .chain(set.companions.iter().map(|c| (c.key(), c.content_hash())))
        .collect()
}

/// The change set from `base` (none: an empty cluster) to `head`: its DaemonSets and
/// its companion objects (a fleet without companions has the change set, and the
/// digest, it had before companions existed).
pub fn change_set(base: Option<&DesiredSet>, head: &DesiredSet) -> ChangeSet {
    let before = base.map(hashes).unwrap_or_default();
    let after = hashes(head);
    let mut changes = BTreeMap::new();
    for (k, to) in &after {
        match before.get(k) {
            None => {
                changes.insert(
                    k.clone(),
                    Change::Create {
                        hash: to.to_string(),
                    },
                );
            }
            Some(from) if from != to => {
                changes.insert(
                    k.clone(),
                    Change::Update {
                        from: from.to_string(),
                        to: to.to_string(),
                    },
                );
            }
            Some(_) => {}
        }
    }
    for (k, from) in &before {
        if !after.contains_key(k) {
            changes.insert(
                k.clone(),
                Change::Delete {
                    hash: from.to_string(),
                },
            );
        }
    }
    ChangeSet { changes }
}

impl ChangeSet {
    /// `drover-plan-v1:sha256:<hex>` over one line per change, sorted by object.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (k, c) in &self.changes {
            h.update(k.as_bytes());
            h.update(b" ");
            h.update(c.line().as_bytes());
            h.update(b"\n");
        }
        format!("{DIGEST_PREFIX}{}", hex::encode(h.finalize()))
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// How the change about to be applied differs from the approved one, per object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mismatch {
    /// In the change to apply, not in what was approved (e.g. another merge between).
    NotApproved { object: String, change: Change },
    /// Approved, but not part of the change to apply.
    Missing { object: String, change: Change },
    /// Both change the object, differently (another base, or a drover that renders
    /// differently).
    Differs {
        object: String,
        approved: Change,
        actual: Change,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::NotApproved { object, change } => {
                write!(f, "{object}: {} was not approved", change.line())
            }
            Mismatch::Missing { object, change } => {
                write!(
                    f,
                    "{object}: the approved {} is not in this change",
                    change.line()
                )
            }
            Mismatch::Differs {
                object,
                approved,
                actual,
            } => write!(
                f,
                "{object}: approved {}, about to {}",
                approved.line(),
                actual.line()
            ),
        }
    }
}

/// Every object on which `actual` differs from `approved`; empty when they are equal.
pub fn explain(approved: &ChangeSet, actual: &ChangeSet) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (object, change) in &actual.changes {
        match approved.changes.get(object) {
            None => out.push(Mismatch::NotApproved {
                object: object.clone(),
                change: change.clone(),
            }),
            Some(a) if a != change => out.push(Mismatch::Differs {
                object: object.clone(),
                approved: a.clone(),
                actual: change.clone(),
            }),
            Some(_) => {}
        }
    }
    for (object, change) in &approved.changes {
        if !actual.changes.contains_key(object) {
            out.push(Mismatch::Missing {
                object: object.clone(),
                change: change.clone(),
            });
        }
    }
    out
}

/// The value of the last `Drover-Plan:` trailer in a commit message, if any. Only the
/// final paragraph counts, as git's trailers do, and only a well-formed digest.
pub fn trailer(message: &str) -> Option<&str> {
    let last = message.trim_end().rsplit("\n\n").next()?;
    last.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(TRAILER))
        .map(|(_, v)| v.trim())
        .next_back()
        .filter(|v| is_digest(v))
}

/// `drover-plan-v1:sha256:` and 64 lowercase hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix(DIGEST_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Why `sync --require-approved-plan` refuses a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unapproved {
    /// The head changes objects and carries no well-formed `Drover-Plan:` trailer.
    NoTrailer { actual: String, changes: usize },
    /// The trailer's digest is not the digest of the change about to be applied.
    /// `mismatches` compare it with the reviewed change set when drover could find
    /// the one the digest was made from among the merge's parents; empty when no
    /// change set drover renders has that digest.
    Differs {
        approved: String,
        actual: String,
        mismatches: Vec<Mismatch>,
    },
}

impl fmt::Display for Unapproved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unapproved::NoTrailer { actual, changes } => write!(
                f,
                "the head changes {changes} object(s) and carries no `{TRAILER}:` trailer; \
                 approve its plan by merging with `{TRAILER}: {actual}`"
            ),
            Unapproved::Differs {
                approved,
                actual,
                mismatches,
            } if mismatches.is_empty() => write!(
                f,
                "the approved plan {approved} is not the change about to be applied ({actual}), \
                 and no change set of this merge's parents has that digest: it was made for \
                 other commits, or by a drover version that renders differently"
            ),
            Unapproved::Differs {
                approved,
                actual,
                mismatches,
            } => {
                write!(
                    f,
                    "the change about to be applied ({actual}) is not the approved plan \
                     ({approved}): "
                )?;
                for (i, m) in mismatches.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{m}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Unapproved {}

/// May a head be applied under `--require-approved-plan`? `actual` is the change
/// set from the last applied commit to the head, `trailer` the head's
/// `Drover-Plan:` value, `reviewed` the change sets a reviewer may have seen (the
/// PR's, from the merge's parents), used only to explain a mismatch.
///
/// A head that changes nothing needs no approval: nothing would be written.
///
/// # Errors
/// [`Unapproved`] when the head may not be applied.
pub fn decide(
    trailer: Option<&str>,
    actual: &ChangeSet,
    reviewed: &[ChangeSet],
) -> Result<(), Unapproved> {
    if actual.is_empty() {
        return Ok(());
    }
    let digest = actual.digest();
    let Some(approved) = trailer else {
        return Err(Unapproved::NoTrailer {
            actual: digest,
            changes: actual.changes.len(),
        });
    };
    if approved == digest {
        return Ok(());
    }
    let mismatches = reviewed
        .iter()
        .find(|r| r.digest() == approved)
        .map(|r| explain(r, actual))
        .unwrap_or_default();
    Err(Unapproved::Differs {
        approved: approved.to_string(),
        actual: digest,
        mismatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DesiredDaemonSet;

    fn set(ns: &str, items: &[(&str, &str)]) -> DesiredSet {
        DesiredSet {
            fleet: "prod".into(),
            namespace: ns.into(),
            items: items
                .iter()
                .map(|(name, hash)| DesiredDaemonSet {
                    name: name.to_string(),
                    daemon: name.to_string(),
                    group: "g".into(),
                    stage: "s".into(),
                    source: "daemons/x.yaml".into(),
                    spec_hash: hash.to_string(),
                    manifest: serde_json::Value::Null.into(),
                })
                .collect(),
            companions: Vec::new(),
            config_maps: Vec::new(),
        }
    }

    #[test]
    fn the_change_set_names_creates_updates_and_deletes_and_leaves_out_the_unchanged() {
        let base = set("agents", &[("a", "h1"), ("b", "h2"), ("c", "h3")]);
        let head = set("agents", &[("a", "h1"), ("b", "h9"), ("d", "h4")]);
        let cs = change_set(Some(&base), &head);
        assert_eq!(
            cs.changes.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "DaemonSet/agents/b".into(),
                    Change::Update {
                        from: "h2".into(),
                        to: "h9".into()
                    }
                ),
                (
                    "DaemonSet/agents/c".into(),
                    Change::Delete { hash: "h3".into() }
                ),
                (
                    "DaemonSet/agents/d".into(),
                    Change::Create { hash: "h4".into() }
                ),
            ]
        );
    }

    #[test]
    fn equal_change_sets_have_equal_digests_and_any_difference_changes_it() {
        let base = set("agents", &[("a", "h1"), ("b", "h2")]);
        let head = set("agents", &[("a", "h1"), ("b", "h9")]);
        let d = change_set(Some(&base), &head).digest();
        assert!(is_digest(&d), "{d}");
        assert_eq!(d, change_set(Some(&base), &head).digest());
        // Another base (main moved under the PR), another head, another namespace.
        for (b, h) in [
            (set("agents", &[("a", "h1"), ("b", "h3")]), head.clone()),
            (base.clone(), set("agents", &[("a", "h1"), ("b", "h8")])),
            (base.clone(), set("other", &[("a", "h1"), ("b", "h9")])),
        ] {
            assert_ne!(change_set(Some(&b), &h).digest(), d);
        }
        // An unchanged object changing nothing leaves the digest alone.
        let base2 = set("agents", &[("a", "h1"), ("b", "h2"), ("z", "h5")]);
        let head2 = set("agents", &[("a", "h1"), ("b", "h9"), ("z", "h5")]);
        assert_eq!(change_set(Some(&base2), &head2).digest(), d);
    }

    #[test]
    fn explain_names_unapproved_missing_and_differing_objects() {
        let base = set("agents", &[("a", "h1"), ("b", "h2"), ("c", "h3")]);
        let approved = change_set(
            Some(&base),
            &set("agents", &[("a", "h1"), ("b", "h9"), ("c", "h3")]),
        );
        assert!(explain(&approved, &approved).is_empty());
        // Another merge between changed c, and b renders differently now.
        let actual = change_set(
            Some(&base),
            &set("agents", &[("a", "h1"), ("b", "h7"), ("c", "h6")]),
        );
        let m = explain(&approved, &actual);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].to_string()
                .contains("DaemonSet/agents/b: approved update h2 h9, about to update h2 h7")
        );
        assert!(
            matches!(&m[1], Mismatch::NotApproved { object, .. } if object == "DaemonSet/agents/c")
        );
        let nothing = ChangeSet::default();
        assert!(matches!(
            &explain(&approved, &nothing)[0],
            Mismatch::Missing { .. }
        ));
    }

    #[test]
    fn only_a_well_formed_trailer_in_the_last_paragraph_counts() {
        let d = format!("{DIGEST_PREFIX}{}", "ab".repeat(32));
        assert_eq!(
            trailer(&format!("Merge #12\n\nbody\n\nDrover-Plan: {d}\n")),
            Some(d.as_str())
        );
        assert_eq!(
            trailer(&format!("Merge\n\nDrover-Plan: {d}\n\nSigned-off-by: x")),
            None
        );
        assert_eq!(trailer("Merge\n\nDrover-Plan: sha256:abc"), None);
        assert_eq!(
            trailer(&format!("Merge\n\ndrover-plan:   {d}")),
            Some(d.as_str())
        );
        let upper = format!("{DIGEST_PREFIX}{}", "AB".repeat(32));
        assert_eq!(trailer(&format!("Merge\n\nDrover-Plan: {upper}")), None);
    }

    #[test]
    fn a_head_is_approved_exactly_when_its_trailer_is_the_digest_of_its_change() {
        let base = set("agents", &[("a", "h1"), ("b", "h2")]);
        let head = set("agents", &[("a", "h1"), ("b", "h9")]);
        let actual = change_set(Some(&base), &head);
        let d = actual.digest();
        assert_eq!(decide(Some(&d), &actual, &[]), Ok(()));
        assert!(matches!(
            decide(None, &actual, &[]),
            Err(Unapproved::NoTrailer { changes: 1, .. })
        ));
        let other = change_set(Some(&base), &set("agents", &[("a", "h1"), ("b", "h8")])).digest();
        let Err(Unapproved::Differs { mismatches, .. }) = decide(Some(&other), &actual, &[]) else {
            panic!("another digest must be refused");
        };
        assert!(mismatches.is_empty(), "no reviewed set to explain by");
        // Nothing to apply needs no approval.
        assert_eq!(decide(None, &change_set(Some(&base), &base), &[]), Ok(()));
    }

    #[test]
    fn a_second_merge_between_is_named_object_by_object() {
        // The PR changed b; another merge landed c first; the merge carries the PR's
        // digest. The change from the last applied commit now holds both.
        let pr_base = set("agents", &[("a", "h1"), ("b", "h2")]);
        let pr_head = set("agents", &[("a", "h1"), ("b", "h9")]);
        let reviewed = change_set(Some(&pr_base), &pr_head);
        let merged = set("agents", &[("a", "h1"), ("b", "h9"), ("c", "h5")]);
        let actual = change_set(Some(&pr_base), &merged);
        let err = decide(Some(&reviewed.digest()), &actual, &[reviewed]).unwrap_err();
        let Unapproved::Differs { mismatches, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            mismatches,
            &vec![Mismatch::NotApproved {
                object: "DaemonSet/agents/c".into(),
                change: Change::Create { hash: "h5".into() }
            }]
        );
        assert!(
            err.to_string()
                .contains("DaemonSet/agents/c: create h5 was not approved"),
            "{err}"
        );
    }
}
