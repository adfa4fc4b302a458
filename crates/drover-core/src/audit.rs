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
    /// SHA-256 of the rendered manifests (the YAML stream `drover render` prints).
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
    pub prev_hash: String,
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
}
