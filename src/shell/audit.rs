//! The audit log file: `audit.jsonl` in the state directory, one record per line,
//! appended, flushed and fsynced before the step it records is reported done.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::core::audit::{AuditRecord, ChainError, GENESIS, line_hash, verify};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Chain { path: PathBuf, source: ChainError },
    #[error(
        "{path}: the last record does not match the hash recorded in state.json (edited or deleted at the end)"
    )]
    Head { path: PathBuf },
}

/// An append-only, hash-chained log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub path: PathBuf,
}

impl AuditLog {
    pub fn in_dir(dir: &Path) -> AuditLog {
        AuditLog {
            path: dir.join("audit.jsonl"),
        }
    }

    fn text(&self) -> Result<String, AuditError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(AuditError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// All records, after checking the chain (and the head hash when given).
    ///
    /// # Errors
    /// The first broken record.
    pub fn verify(&self, head: Option<&str>) -> Result<Vec<AuditRecord>, AuditError> {
        let text = self.text()?;
        let records = verify(&text).map_err(|source| AuditError::Chain {
            path: self.path.clone(),
            source,
        })?;
        if let Some(h) = head {
            let last = text.lines().last().map(line_hash);
            if last.as_deref() != Some(h) {
                return Err(AuditError::Head {
                    path: self.path.clone(),
                });
            }
        }
        Ok(records)
    }

    /// The [`line_hash`] of every line, in order (without verifying the chain): what
    /// an anchor is checked against.
    ///
    /// # Errors
    /// On I/O errors.
    pub fn line_hashes(&self) -> Result<Vec<String>, AuditError> {
        Ok(self.text()?.lines().map(line_hash).collect())
    }

    /// The last record, if any (without verifying the chain).
    ///
    /// # Errors
    /// On I/O errors or an unreadable last line.
    pub fn last(&self) -> Result<Option<(AuditRecord, String)>, AuditError> {
        let text = self.text()?;
        let Some(line) = text.lines().last() else {
            return Ok(None);
        };
        let rec = serde_json::from_str(line).map_err(|e| AuditError::Chain {
            path: self.path.clone(),
            source: ChainError::Unreadable {
                line: text.lines().count(),
                reason: e.to_string(),
            },
        })?;
        Ok(Some((rec, line_hash(line))))
    }

    /// The serial of the last operator action recorded (0 when none was), read
    /// from the end of the trail.
    ///
    /// # Errors
    /// On I/O errors or an unreadable line.
    pub fn last_control_serial(&self) -> Result<u64, AuditError> {
        let text = self.text()?;
        for (i, line) in text
            .lines()
            .enumerate()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let rec: AuditRecord = serde_json::from_str(line).map_err(|e| AuditError::Chain {
                path: self.path.clone(),
                source: ChainError::Unreadable {
                    line: i + 1,
                    reason: e.to_string(),
                },
            })?;
            if let Some(c) = rec.control {
                return Ok(c.serial);
            }
        }
        Ok(0)
    }

    /// Appends a record, filling in `seq` and `prev_hash`; durable on return.
    /// Returns the hash of the written line.
    ///
    /// # Errors
    /// On I/O errors; nothing is reported done until this succeeds.
    #[tracing::instrument(name = "record", skip_all, fields(commit = %rec.commit.sha, kind = ?rec.kind, outcome = %rec.outcome))]
    pub fn append(&self, rec: AuditRecord) -> Result<(AuditRecord, String), AuditError> {
        let (rec, line) = self.prepare(rec)?;
        self.write_line(&line)?;
        Ok((rec, line_hash(&line)))
    }

    /// The record as the next line of this trail: `seq` and `prev_hash` filled in
    /// from the last line, and its serialised line. Nothing is written.
    ///
    /// # Errors
    /// On I/O errors or an unreadable last line.
    pub fn prepare(&self, mut rec: AuditRecord) -> Result<(AuditRecord, String), AuditError> {
        let (seq, prev) = match self.last()? {
            Some((last, hash)) => (last.seq + 1, hash),
            None => (1, GENESIS.to_string()),
        };
        rec.seq = seq;
        rec.prev_hash = prev;
        let line = serde_json::to_string(&rec).expect("record serialises");
        Ok((rec, line))
    }

    /// Appends one line; durable on return.
    ///
    /// # Errors
    /// On I/O errors.
    pub fn write_line(&self, line: &str) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let created = !self.path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        f.flush().map_err(io)?;
        f.sync_all().map_err(io)?;
        if created && let Some(dir) = self.path.parent() {
            super::state::sync_dir(dir).map_err(io)?;
        }
        Ok(())
    }

    /// Every line, as written (without verifying the chain).
    ///
    /// # Errors
    /// On I/O errors.
    pub fn lines(&self) -> Result<Vec<String>, AuditError> {
        Ok(self.text()?.lines().map(str::to_string).collect())
    }

    /// Replaces the whole file with `lines`, atomically and durably (temp file,
    /// fsync, rename, fsync of the directory); nothing is done when it already
    /// holds them.
    ///
    /// # Errors
    /// On I/O errors; the previous file is then still in place.
    pub fn replace(&self, lines: &[String]) -> Result<(), AuditError> {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if self.text()? == text {
            return Ok(());
        }
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            super::state::sync_dir(dir).map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::{AUDIT_SCHEMA, ClusterRecord, CommitRecord, PlanRecord, RecordKind};
    use crate::core::rollout::Outcome;
    use crate::shell::test_support::capture;

    fn record(sha: &str, outcome: Outcome) -> AuditRecord {
        AuditRecord {
            schema: AUDIT_SCHEMA.into(),
            seq: 0,
            kind: RecordKind::Drift,
            run_id: "r".into(),
            commit: CommitRecord {
                sha: sha.into(),
                parents: vec![],
                author: "a <a@x>".into(),
                committer: "a <a@x>".into(),
                subject: "s".into(),
                time: 0,
                signature: crate::core::trust::SignatureStatus::Unsigned,
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
            outcome,
            reason: None,
            signature_policy: None,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            drover_version: "0".into(),
            anchor: None,
            control: None,
            freeze_override: None,
            prev_hash: String::new(),
        }
    }

    #[test]
    fn each_appended_record_opens_a_span_naming_its_commit_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        let (spans, dispatch) = capture();
        tracing::dispatcher::with_default(&dispatch, || {
            log.append(record("c1", Outcome::Applied)).unwrap();
            log.append(record("c2", Outcome::RolledBack)).unwrap();
        });
        let records: Vec<(String, String, String)> = spans
            .named("record")
            .into_iter()
            .map(|s| {
                (
                    s.fields["commit"].clone(),
                    s.fields["kind"].clone(),
                    s.fields["outcome"].clone(),
                )
            })
            .collect();
        assert_eq!(
            records,
            [
                ("c1".into(), "Drift".into(), "applied".into()),
                ("c2".into(), "Drift".into(), "rolled-back".into())
            ]
        );
        assert_eq!(log.verify(None).unwrap().len(), 2);
    }

    #[test]
    fn a_prepared_record_continues_the_chain_and_a_replaced_file_holds_exactly_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        let (first, line1) = log.prepare(record("c1", Outcome::Applied)).unwrap();
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS));
        assert!(log.lines().unwrap().is_empty(), "prepare writes nothing");
        log.write_line(&line1).unwrap();
        let (second, line2) = log.prepare(record("c2", Outcome::Applied)).unwrap();
        assert_eq!((second.seq, second.prev_hash), (2, line_hash(&line1)));
        log.replace(&[line1.clone(), line2.clone()]).unwrap();
        assert_eq!(log.lines().unwrap(), [line1.clone(), line2]);
        assert_eq!(log.verify(None).unwrap().len(), 2);
        log.replace(std::slice::from_ref(&line1)).unwrap();
        assert_eq!(log.lines().unwrap(), [line1]);
    }
}
