//! Reading a fleet's files: from a working tree, or straight from a git commit's tree
//! (never checked out).
//!
//! Owns: refusing what must never be read (symlinks, submodules, path tricks, files
//! past the size limit) before reading it. Must not: parse YAML (that is
//! [`crate::core::load`]).

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use crate::core::audit::CommitRecord;
use crate::core::limits::Limits;
use crate::core::load::SourceFile;
use crate::core::trust::SignatureStatus;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: cannot open git repository: {source}")]
    OpenRepo { path: PathBuf, source: git2::Error },
    #[error("cannot resolve revision `{rev}`: {source}")]
    ResolveRev { rev: String, source: git2::Error },
    #[error("{path}: cannot read git object: {source}")]
    ReadObject { path: String, source: git2::Error },
    #[error("{path}: is a symbolic link; drover does not follow links in a fleet repository")]
    Symlink { path: String },
    #[error("{path}: is a git submodule; a fleet repository may not contain submodules")]
    Submodule { path: String },
    #[error("{path}: unsafe path component `{component}`")]
    UnsafePath { path: String, component: String },
    #[error("{path}: file is {size} bytes, more than the limit of {limit}")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("the fleet has more than {limit} YAML files")]
    TooManyFiles { limit: usize },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no such directory in commit {commit}")]
    NoSuchDir { path: String, commit: String },
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn check_component(path: &str, c: &str) -> Result<(), SourceError> {
    if c.is_empty()
        || c == "."
        || c == ".."
        || c.contains(['/', '\\', '\0'])
        || c.chars().any(char::is_control)
    {
        return Err(SourceError::UnsafePath {
            path: path.to_string(),
            component: crate::core::diag::escape_control(c),
        });
    }
    Ok(())
}

/// Reads every fleet file under `dir` from the filesystem.
///
/// # Errors
/// On any symlink, a file past the size limit, too many files, or an I/O error.
pub fn read_worktree(dir: &Path, limits: &Limits) -> Result<Vec<SourceFile>, SourceError> {
    let mut out = Vec::new();
    walk_dir(dir, "", limits, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk_dir(
    dir: &Path,
    rel: &str,
    limits: &Limits,
    out: &mut Vec<SourceFile>,
) -> Result<(), SourceError> {
    let io = |path: &str, source| SourceError::Io {
        path: if path.is_empty() {
            ".".into()
        } else {
            path.to_string()
        },
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(rel, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io(rel, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(e.path()).map_err(|err| io(&path, err))?;
        if name.starts_with('.') {
            continue;
        }
        if meta.file_type().is_symlink() {
            return Err(SourceError::Symlink { path });
        }
        if meta.is_dir() {
            walk_dir(&e.path(), &path, limits, out)?;
        } else if meta.is_file() && is_yaml(&name) {
            if meta.len() > limits.max_file_bytes {
                return Err(SourceError::TooLarge {
                    path,
                    size: meta.len(),
                    limit: limits.max_file_bytes,
                });
            }
            if out.len() >= limits.max_files {
                return Err(SourceError::TooManyFiles {
                    limit: limits.max_files,
                });
            }
            let bytes = std::fs::read(e.path()).map_err(|err| io(&path, err))?;
            out.push(SourceFile { path, bytes });
        }
    }
    Ok(())
}

/// Resolves `rev` in `repo` to a commit and describes it.
///
/// # Errors
/// When the revision does not name a commit.
pub fn resolve_commit<'r>(
    repo: &'r Repository,
    rev: &str,
) -> Result<git2::Commit<'r>, SourceError> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|source| SourceError::ResolveRev {
            rev: rev.to_string(),
            source,
        })
}

/// Describes a commit for plans and the audit trail. `signature` is `signed` (a
/// signature is present; not verified here, see [`crate::shell::signature`]) or
/// `unsigned`; `verification` is left for the signature check to fill.
pub fn commit_record(repo: &Repository, c: &git2::Commit<'_>) -> CommitRecord {
    let who = |s: git2::Signature<'_>| {
        format!(
            "{} <{}>",
            String::from_utf8_lossy(s.name_bytes()),
            String::from_utf8_lossy(s.email_bytes())
        )
    };
    let signed = repo.extract_signature(&c.id(), None).is_ok();
    CommitRecord {
        sha: c.id().to_string(),
        parents: c.parent_ids().map(|p| p.to_string()).collect(),
        author: who(c.author()),
        committer: who(c.committer()),
        time: c.committer().when().seconds(),
        subject: String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned(),
        signature: if signed {
            SignatureStatus::Signed
        } else {
            SignatureStatus::Unsigned
        },
        verification: None,
    }
}

/// Reads the fleet files under `subdir` of the commit's tree, from git objects only.
///
/// # Errors
/// On a symlink or submodule entry, an unsafe name, a blob past the size limit, or a
/// git error.
pub fn read_commit(
    repo: &Repository,
    commit: &git2::Commit<'_>,
    subdir: &Path,
    limits: &Limits,
) -> Result<Vec<SourceFile>, SourceError> {
    let root = commit.tree().map_err(|source| SourceError::ReadObject {
        path: "/".into(),
        source,
    })?;
    let tree = if subdir.as_os_str().is_empty() {
        root
    } else {
        let entry = root.get_path(subdir).map_err(|_| SourceError::NoSuchDir {
            path: subdir.display().to_string(),
            commit: commit.id().to_string(),
        })?;
        repo.find_tree(entry.id())
            .map_err(|_| SourceError::NoSuchDir {
                path: subdir.display().to_string(),
                commit: commit.id().to_string(),
            })?
    };
    let odb = repo.odb().map_err(|source| SourceError::ReadObject {
        path: "/".into(),
        source,
    })?;
    let mut found: Vec<(String, git2::Oid)> = Vec::new();
    let mut failure: Option<SourceError> = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let path = format!("{dir}{name}");
        if let Err(e) = check_component(&path, &name) {
            failure = Some(e);
            return TreeWalkResult::Abort;
        }
        if dir.split('/').any(|c| c.starts_with('.')) {
            return TreeWalkResult::Skip;
        }
        if name.starts_with('.') {
            return TreeWalkResult::Skip;
        }
        match (entry.kind(), entry.filemode()) {
            (_, 0o120000) => {
                failure = Some(SourceError::Symlink { path });
                TreeWalkResult::Abort
            }
            (Some(ObjectType::Commit), _) | (_, 0o160000) => {
                failure = Some(SourceError::Submodule { path });
                TreeWalkResult::Abort
            }
            (Some(ObjectType::Blob), _) if is_yaml(&name) => {
                if found.len() >= limits.max_files {
                    failure = Some(SourceError::TooManyFiles {
                        limit: limits.max_files,
                    });
                    return TreeWalkResult::Abort;
                }
                found.push((path, entry.id()));
                TreeWalkResult::Ok
            }
            _ => TreeWalkResult::Ok,
        }
    })
    .map_err(|source| SourceError::ReadObject {
        path: "/".into(),
        source,
    })
    .or_else(|e| if failure.is_some() { Ok(()) } else { Err(e) })?;
    if let Some(f) = failure {
        return Err(f);
    }
    let mut out = Vec::with_capacity(found.len());
    for (path, oid) in found {
        let (size, _) = odb
            .read_header(oid)
            .map_err(|source| SourceError::ReadObject {
                path: path.clone(),
                source,
            })?;
        if size as u64 > limits.max_file_bytes {
            return Err(SourceError::TooLarge {
                path,
                size: size as u64,
                limit: limits.max_file_bytes,
            });
        }
        let blob = repo
            .find_blob(oid)
            .map_err(|source| SourceError::ReadObject {
                path: path.clone(),
                source,
            })?;
        out.push(SourceFile {
            path,
            bytes: blob.content().to_vec(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Where a fleet is read from, as the CLI names it.
#[derive(Debug, Clone)]
pub enum FleetLocation {
    /// A plain directory, or a git work tree read with `--worktree`.
    Dir(PathBuf),
    /// A revision of a git repository, and the fleet's directory inside its tree.
    Git {
        repo: PathBuf,
        subdir: PathBuf,
        rev: String,
    },
}

/// Decides where to read: inside a git repository without `--worktree`, a commit
/// (`rev`, default `HEAD`); otherwise the directory.
///
/// # Errors
/// When `--rev` is given for a path that is not in a git repository.
pub fn locate(
    path: &Path,
    rev: Option<&str>,
    worktree: bool,
) -> Result<FleetLocation, SourceError> {
    if worktree {
        return Ok(FleetLocation::Dir(path.to_path_buf()));
    }
    match Repository::discover(path) {
        Ok(repo) => {
            let Some(workdir) = repo.workdir() else {
                // A bare repository: the fleet is at its root.
                return Ok(FleetLocation::Git {
                    repo: repo.path().to_path_buf(),
                    subdir: PathBuf::new(),
                    rev: rev.unwrap_or("HEAD").to_string(),
                });
            };
            let abs = path.canonicalize().map_err(|source| SourceError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let workdir = workdir.canonicalize().map_err(|source| SourceError::Io {
                path: workdir.display().to_string(),
                source,
            })?;
            let subdir = abs
                .strip_prefix(&workdir)
                .unwrap_or(Path::new(""))
                .to_path_buf();
            Ok(FleetLocation::Git {
                repo: workdir,
                subdir,
                rev: rev.unwrap_or("HEAD").to_string(),
            })
        }
        Err(source) if rev.is_some() => Err(SourceError::OpenRepo {
            path: path.to_path_buf(),
            source,
        }),
        Err(_) => Ok(FleetLocation::Dir(path.to_path_buf())),
    }
}
