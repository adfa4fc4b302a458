//! The state directory: the rollout cursor and the last applied and bad commits,
//! written atomically (temp file, fsync, rename, fsync of the directory) before each
//! step they describe.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where an unfinished rollout stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub run_id: String,
    pub commit: String,
    /// Why the run started: a new commit or a drift correction.
    pub kind: crate::core::audit::RecordKind,
    /// Index of the stage in progress (stages before it succeeded).
    pub stage: usize,
    pub started_at: String,
    /// Stages that finished before the run was interrupted, for the audit record.
    #[serde(default)]
    pub completed: Vec<crate::core::audit::StageRecord>,
}

/// Everything the sync loop must remember across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SyncState {
    /// The last commit whose rollout finished successfully.
    pub last_applied: Option<String>,
    /// A commit whose rollout failed; not retried until the branch moves.
    pub bad_commit: Option<String>,
    pub cursor: Option<Cursor>,
    /// SHA-256 of the last audit line, so an edit of the last record is caught too.
    pub audit_head: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Reads and writes `state.json` in a state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    pub dir: PathBuf,
}

impl StateStore {
    /// Opens (and creates) the state directory.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Whether a state was saved here (and is still there).
    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// The saved state, or the default when none was saved.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn load(&self) -> Result<SyncState, StateError> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Saves atomically and durably: after this returns, a crash leaves either the
    /// old or the new state, never a torn file.
    ///
    /// # Errors
    /// On any I/O error; the previous state is then still in place.
    pub fn save(&self, state: &SyncState) -> Result<(), StateError> {
        let path = self.path();
        let tmp = self.dir.join("state.json.tmp");
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        Ok(())
    }
}

/// fsync of a directory, so a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_defaults_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), SyncState::default());
        let s = SyncState {
            last_applied: Some("abc".into()),
            bad_commit: None,
            cursor: Some(Cursor {
                run_id: "r".into(),
                commit: "def".into(),
                kind: crate::core::audit::RecordKind::Commit,
                stage: 2,
                started_at: "t".into(),
                completed: vec![],
            }),
            audit_head: None,
        };
        store.save(&s).unwrap();
        assert_eq!(store.load().unwrap(), s);
    }
}
