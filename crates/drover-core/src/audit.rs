//! The audit record and its hash chain.
//!
//! Owns: what a record holds, how it is serialised (one JSON line), and how the
//! chain is verified: every record carries the SHA-256 of the previous record's
//! line, so editing, inserting or deleting a line breaks the chain at that record.
//! Must not: touch files (see `shell::audit`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rollout::{Outcome, StageResult};
use crate::trust::{Policy, SignatureStatus, Verification};

/// The schema tag of a record line.
pub const AUDIT_SCHEMA: &str = "drover.dev/audit/v1";
/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A new commit was acted on.
    Commit,
    /// The cluster drifted from the last applied commit and was corrected.
    Drift,
    /// An operator paused the fleet (`drover pause`); `control` says who and why.
    Pause,
    /// An operator lifted the pause (`drover resume`).
    Resume,
    /// An operator asked for a rollback (`drover rollback`): the record of the
    /// hold; the rollout it causes is recorded as its own `rollback` run.
    Rollback,
}

/// What drover knows and records about a commit: the shell fills it from git (for
/// plans, the sync loop and the audit trail); this is its only definition. The field
/// order is the record's serialised order, which the chain's canonical form pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub sha: String,
    pub parents: Vec<String>,
    pub author: String,
    pub committer: String,
    pub subject: String,
    /// Committer time, seconds since the epoch.
    pub time: i64,
    /// `unsigned` or `signed` when nothing was verified (drover held no trust
    /// source); `good`, `unknown-key` or `bad` once it was.
    pub signature: SignatureStatus,
    /// What verifying the signature found: format, key fingerprint, signer,
    /// reason. Absent in records written before drover verified signatures, and
    /// when nothing was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// The cluster a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub server: String,
    /// UID of the kube-system namespace.
    pub uid: String,
}

/// One stage's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    pub result: StageResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub daemonsets: usize,
    pub rollout_seconds: f64,
    /// Healthy time the gate observed during the bake (unobserved time never counts).
    pub bake_seconds: f64,
    /// Time in the stage with no fresh observation of it (the API server or a watch
    /// was away); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unobserved_seconds: f64,
    /// The stage was resumed after an interruption and gated again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Counts from the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlanRecord {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
    /// SHA-256 of the rendered manifests (the YAML stream `drover render` prints),
    /// then the companion objects' manifests (see `render::manifests_digest`).
    pub manifests_digest: String,
}

/// One line of `audit.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub schema: String,
    pub seq: u64,
    pub kind: RecordKind,
    /// Identifies one attempt to apply a commit, so a resumed rollout is recorded once.
    pub run_id: String,
    pub commit: CommitRecord,
    pub fleet: String,
    pub cluster: ClusterRecord,
    pub plan: PlanRecord,
    pub stages: Vec<StageRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// applied | no-op | halted | rolled-back | refused; any other text makes the
    /// line unreadable.
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signature policy the commit was checked under (`head`, `all`); absent
    /// when none was in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_policy: Option<Policy>,
    /// RFC 3339 times.
    pub started_at: String,
    pub finished_at: String,
    pub drover_version: String,
    /// Where the head of the trail is anchored outside the state directory (absent
    /// in records written before anchoring). Chained like every other field, so a
    /// shortened trail still names the anchor that counts what was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<AnchorRef>,
    /// The operator's action a `pause`, `resume` or `rollback` record is about (as
    /// the control object held it); absent in every other record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<crate::control::ControlEvent>,
    /// The freeze windows an emergency override (`--override-freeze REASON`) rolled
    /// this run through, and why; absent when nothing was overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_override: Option<crate::freeze::FreezeOverride>,
    pub prev_hash: String,
}

/// The schema tag of an anchor's data.
pub const ANCHOR_SCHEMA: &str = "drover.dev/audit-anchor/v1";

/// Where a trail is anchored. The object's name is not here: it is
/// [`anchor_name`] of the trail's first line, which no record can hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRef {
    /// The kind of object: `ConfigMap` (the only one so far).
    pub kind: String,
    pub namespace: String,
}

/// The name of a trail's anchor: derived from its first record's line, so it is
/// unique per trail and cannot be pointed elsewhere without rewriting the whole
/// trail (which then has no anchor at all).
pub fn anchor_name(first_line_hash: &str) -> String {
    format!(
        "drover-audit-{}",
        &first_line_hash[..first_line_hash.len().min(16)]
    )
}

/// What an anchor holds: how long the trail was and how it began and ended. Kept
/// as string data in the anchor object so that fields can be added (a later
/// version keeps the whole chain there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorState {
    pub records: u64,
    /// [`line_hash`] of the first record.
    pub first: String,
    /// [`line_hash`] of the last record.
    pub head: String,
}

/// How a trail (the [`line_hash`] of each of its lines) stands to its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorFit {
    /// The anchor holds exactly this trail.
    Exact,
    /// The anchor holds the first `anchored` records of this trail; the later ones
    /// were written while the anchor could not be updated.
    Behind { anchored: u64 },
}

/// Why a trail does not fit its anchor: something was removed or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorMismatch {
    #[error(
        "the trail has {log} record(s) but its anchor counts {anchored}: records were removed from the end"
    )]
    Shortened { log: u64, anchored: u64 },
    #[error(
        "record {record} is not the one the anchor holds: the trail was rewritten from there on"
    )]
    Rewritten { record: u64 },
    #[error("the first record is not the one the anchor was made for")]
    OtherTrail,
}

/// Checks a trail against its anchor. Pure: the caller reads both.
///
/// # Errors
/// When records were removed or the anchored records were changed.
pub fn check_anchor(
    anchor: &AnchorState,
    line_hashes: &[String],
) -> Result<AnchorFit, AnchorMismatch> {
    let log = line_hashes.len() as u64;
    if line_hashes.first() != Some(&anchor.first) && anchor.records > 0 {
        return Err(if log == 0 {
            AnchorMismatch::Shortened {
                log,
                anchored: anchor.records,
            }
        } else {
            AnchorMismatch::OtherTrail
        });
    }
    if log < anchor.records {
        return Err(AnchorMismatch::Shortened {
            log,
            anchored: anchor.records,
        });
    }
    let at = usize::try_from(anchor.records).unwrap_or(usize::MAX);
    if anchor.records > 0 && line_hashes.get(at - 1) != Some(&anchor.head) {
        return Err(AnchorMismatch::Rewritten {
            record: anchor.records,
        });
    }
    Ok(if log == anchor.records {
        AnchorFit::Exact
    } else {
        AnchorFit::Behind {
            anchored: anchor.records,
        }
    })
}

/// SHA-256 of a record line (without its newline), hex.
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// SHA-256 of arbitrary bytes, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("line {line}: not a valid audit record: {reason}")]
    Unreadable { line: usize, reason: String },
    #[error(
        "line {line} (record {seq}): expected sequence number {expected}; a record was deleted or inserted before it"
    )]
    Sequence {
        line: usize,
        seq: u64,
        expected: u64,
    },
    #[error(
        "line {line} (record {seq}): prev_hash does not match the previous line; the previous record was edited, or a record was deleted"
    )]
    Hash { line: usize, seq: u64 },
}

/// Parses and checks every line. Returns the records when the chain is intact.
///
/// # Errors
/// The first broken record.
pub fn verify(text: &str) -> Result<Vec<AuditRecord>, ChainError> {
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            return Err(ChainError::Unreadable {
                line: n,
                reason: "empty line".into(),
            });
        }
        let rec: AuditRecord = serde_json::from_str(line).map_err(|e| ChainError::Unreadable {
            line: n,
            reason: e.to_string(),
        })?;
        let expected = out.len() as u64 + 1;
        if rec.seq != expected {
            return Err(ChainError::Sequence {
                line: n,
                seq: rec.seq,
                expected,
            });
        }
        if rec.prev_hash != prev {
            return Err(ChainError::Hash {
                line: n,
                seq: rec.seq,
            });
        }
        // A record edited in place, or its own prev_hash rewritten: caught at the next
        // line. For the last line, re-serialising must give the same bytes.
        let canonical = serde_json::to_string(&rec).map_err(|e| ChainError::Unreadable {
            line: n,
            reason: e.to_string(),
        })?;
        if canonical != line {
            return Err(ChainError::Unreadable {
                line: n,
                reason: "the line is not in canonical form (edited by hand?)".into(),
            });
        }
        prev = line_hash(line);
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, prev: &str) -> AuditRecord {
        AuditRecord {
            schema: AUDIT_SCHEMA.into(),
            seq,
            kind: RecordKind::Commit,
            run_id: format!("run{seq}"),
            commit: CommitRecord {
                sha: format!("{seq:040}"),
                parents: vec![],
                author: "a <a@x>".into(),
                committer: "a <a@x>".into(),
                subject: "s".into(),
                time: 0,
                signature: SignatureStatus::Unsigned,
                verification: None,
            },
            fleet: "f".into(),
            cluster: ClusterRecord {
                server: "https://127.0.0.1".into(),
                uid: "u".into(),
            },
            plan: PlanRecord::default(),
            stages: vec![],
            pruned: vec![],
            outcome: Outcome::Applied,
            reason: None,
            signature_policy: None,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            drover_version: "0".into(),
            anchor: None,
            control: None,
            freeze_override: None,
            prev_hash: prev.into(),
        }
    }

    fn chain(n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|i| {
                let l = serde_json::to_string(&record(i, &prev)).unwrap();
                prev = line_hash(&l);
                l
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let text = chain(3).join("\n") + "\n";
        assert_eq!(verify(&text).unwrap().len(), 3);
    }

    #[test]
    fn a_flipped_byte_breaks_the_chain_at_that_record() {
        let mut lines = chain(3);
        lines[1] = lines[1].replace("\"subject\":\"s\"", "\"subject\":\"t\"");
        let e = verify(&lines.join("\n")).unwrap_err();
        assert_eq!(e, ChainError::Hash { line: 3, seq: 3 });
    }

    #[test]
    fn a_deleted_line_breaks_the_chain() {
        let mut lines = chain(3);
        lines.remove(1);
        let e = verify(&lines.join("\n")).unwrap_err();
        assert!(
            matches!(
                e,
                ChainError::Sequence {
                    line: 2,
                    seq: 3,
                    expected: 2
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_record_written_before_signatures_were_verified_still_verifies() {
        // A line as drover wrote it before `verification` and `signature_policy`
        // existed: it must parse and re-serialise byte for byte.
        let old = r#"{"schema":"drover.dev/audit/v1","seq":1,"kind":"commit","run_id":"r","commit":{"sha":"abc","parents":[],"author":"a <a@x>","committer":"a <a@x>","subject":"s","time":0,"signature":"signed"},"fleet":"f","cluster":{"server":"https://127.0.0.1","uid":"u"},"plan":{"create":0,"update":0,"delete":0,"unchanged":0,"manifests_digest":""},"stages":[],"outcome":"applied","started_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:01Z","drover_version":"0","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#;
        let recs = verify(old).unwrap();
        assert_eq!(recs[0].commit.signature, SignatureStatus::Signed);
        assert_eq!(recs[0].commit.verification, None);
        assert_eq!(recs[0].signature_policy, None);
        let unsigned = old.replace("\"signature\":\"signed\"", "\"signature\":\"unsigned\"");
        assert_eq!(
            verify(&unsigned).unwrap()[0].commit.signature,
            SignatureStatus::Unsigned
        );
    }

    #[test]
    fn a_record_whose_outcome_was_edited_to_unknown_text_is_unreadable() {
        let mut lines = chain(2);
        lines[1] = lines[1].replace("\"outcome\":\"applied\"", "\"outcome\":\"fine\"");
        assert!(
            matches!(
                verify(&lines.join("\n")),
                Err(ChainError::Unreadable { line: 2, .. })
            ),
            "{:?}",
            verify(&lines.join("\n"))
        );
    }

    #[test]
    fn a_verified_signature_round_trips_in_the_chain() {
        let mut r = record(1, GENESIS);
        r.commit.signature = SignatureStatus::UnknownKey;
        r.commit.verification = Some(Verification {
            status: SignatureStatus::UnknownKey,
            format: Some(crate::trust::SignatureFormat::Ssh),
            key: Some("SHA256:abc".into()),
            signer: None,
            reason: Some("no line holds this key".into()),
        });
        r.signature_policy = Some(Policy::All);
        r.outcome = Outcome::Refused;
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"signature\":\"unknown-key\",\"verification\":{\"status\":\"unknown-key\",\"format\":\"ssh\",\"key\":\"SHA256:abc\""), "{line}");
        assert!(line.contains("\"signature_policy\":\"all\""), "{line}");
        assert_eq!(verify(&line).unwrap()[0], r);
    }

    #[test]
    fn an_edited_last_line_is_caught() {
        let mut lines = chain(2);
        lines[1] = lines[1].replace("\"outcome\":\"applied\"", "\"outcome\":\"applied\" ");
        assert!(verify(&lines.join("\n")).is_err());
    }

    fn hashes(n: u64) -> Vec<String> {
        chain(n).iter().map(|l| line_hash(l)).collect()
    }

    fn anchored(h: &[String]) -> AnchorState {
        AnchorState {
            records: h.len() as u64,
            first: h[0].clone(),
            head: h[h.len() - 1].clone(),
        }
    }

    #[test]
    fn a_trail_fits_its_anchor_exactly_or_ahead_of_it() {
        let h = hashes(4);
        assert_eq!(check_anchor(&anchored(&h), &h), Ok(AnchorFit::Exact));
        assert_eq!(
            check_anchor(&anchored(&h[..2]), &h),
            Ok(AnchorFit::Behind { anchored: 2 })
        );
    }

    #[test]
    fn a_removed_last_record_does_not_fit_the_anchor() {
        let h = hashes(4);
        let a = anchored(&h);
        assert_eq!(
            check_anchor(&a, &h[..3]),
            Err(AnchorMismatch::Shortened {
                log: 3,
                anchored: 4
            })
        );
        // Every record removed: still not the anchored trail.
        assert_eq!(
            check_anchor(&a, &[]),
            Err(AnchorMismatch::Shortened {
                log: 0,
                anchored: 4
            })
        );
    }

    #[test]
    fn a_rewritten_or_other_trail_does_not_fit_the_anchor() {
        let h = hashes(4);
        let a = anchored(&h);
        let mut edited = h.clone();
        edited[3] = "f".repeat(64);
        assert_eq!(
            check_anchor(&a, &edited),
            Err(AnchorMismatch::Rewritten { record: 4 })
        );
        let mut other = h.clone();
        other[0] = "e".repeat(64);
        assert_eq!(check_anchor(&a, &other), Err(AnchorMismatch::OtherTrail));
    }

    #[test]
    fn records_without_an_anchor_keep_their_canonical_lines() {
        // Lines written before anchoring existed verify as they did.
        let lines = chain(2);
        assert!(!lines[0].contains("anchor"));
        assert_eq!(verify(&lines.join("\n")).unwrap().len(), 2);
        let mut r = record(1, GENESIS);
        r.anchor = Some(AnchorRef {
            kind: "ConfigMap".into(),
            namespace: "ns".into(),
        });
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains(r#""anchor":{"kind":"ConfigMap","namespace":"ns"}"#),
            "{line}"
        );
        assert_eq!(verify(&line).unwrap()[0].anchor, r.anchor);
        assert_eq!(
            anchor_name(&line_hash(&line)).len(),
            "drover-audit-".len() + 16
        );
    }
}
