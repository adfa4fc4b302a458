//! Reading a fleet's files: from a working tree, or straight from a git commit's tree
//! (never checked out).
//!
//! Owns: refusing what must never be read (symlinks, submodules, path tricks, files
//! past the size limit) before reading it. Must not: parse YAML (that is
//! [`crate::core::load`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};

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
    #[error(
        "{path}: the git tree holds two entries of this name (git fsck: duplicateEntries); a checkout shows only one, so drover refuses the commit"
    )]
    DuplicateEntry { path: String },
    #[error(
        "{path}: the git tree's entries are not in git's order (git fsck: treeNotSorted); a checkout may read it differently, so drover refuses the commit"
    )]
    UnsortedTree { path: String },
    #[error(
        "{path}: the file name is not valid UTF-8 (bytes shown escaped); drover refuses names it cannot show exactly"
    )]
    NonUtf8Name { path: String },
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// A file under `config/` is read whatever its name: config files are the
/// ConfigMaps' keys (`fluent-bit.conf`), see docs/config-files.md.
fn is_config_path(path: &str) -> bool {
    crate::core::load::is_config_path(path)
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
        let dir_prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let name = utf8_file_name(e.file_name(), &dir_prefix)?;
        let path = format!("{dir_prefix}{name}");
        let meta = std::fs::symlink_metadata(e.path()).map_err(|err| io(&path, err))?;
        if name.starts_with('.') {
            continue;
        }
        if meta.file_type().is_symlink() {
            return Err(SourceError::Symlink { path });
        }
        if meta.is_dir() {
            walk_dir(&e.path(), &path, limits, out)?;
        } else if meta.is_file() && (is_yaml(&name) || is_config_path(&path)) {
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

/// A directory entry's name as UTF-8, or [`SourceError::NonUtf8Name`] naming its
/// bytes: a lossy conversion would give two different files one name.
fn utf8_file_name(name: std::ffi::OsString, dir: &str) -> Result<String, SourceError> {
    name.into_string().map_err(|raw| {
        #[cfg(unix)]
        let shown = escape_bytes(std::os::unix::ffi::OsStrExt::as_bytes(raw.as_os_str()));
        #[cfg(not(unix))]
        let shown = raw.to_string_lossy().into_owned();
        SourceError::NonUtf8Name {
            path: format!("{dir}{shown}"),
        }
    })
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
/// Every tree on the way is checked the way `git fsck` would: a tree with two entries
/// of one name (`duplicateEntries`) or with entries out of git's order
/// (`treeNotSorted`) is refused, since a checkout of it may not show what drover
/// would read. A name that is not UTF-8 is refused too, naming its bytes (escaped),
/// rather than turned into a lossy name that two files could share.
///
/// # Errors
/// On a symlink or submodule entry, an unsafe, duplicate or non-UTF-8 name, a tree
/// out of order, a blob past the size limit, or a git error.
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
    let tree = descend(repo, root, subdir, &commit.id().to_string())?;
    let found = walk_tree(repo, tree, limits)?;
    let odb = repo.odb().map_err(|source| SourceError::ReadObject {
        path: "/".into(),
        source,
    })?;
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

/// The tree of `subdir` inside `root`, every tree on the way checked as in
/// [`check_tree`] and each step found by its exact name bytes.
fn descend<'r>(
    repo: &'r Repository,
    root: git2::Tree<'r>,
    subdir: &Path,
    commit: &str,
) -> Result<git2::Tree<'r>, SourceError> {
    let no_such_dir = || SourceError::NoSuchDir {
        path: subdir.display().to_string(),
        commit: commit.to_string(),
    };
    let mut tree = root;
    let mut walked = String::new();
    for component in subdir.components() {
        let std::path::Component::Normal(c) = component else {
            return Err(no_such_dir());
        };
        let want = c.to_str().ok_or_else(no_such_dir)?;
        check_tree(&tree, &walked)?;
        let id = tree
            .iter()
            .find(|e| e.name_bytes() == want.as_bytes())
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .map(|e| e.id())
            .ok_or_else(no_such_dir)?;
        tree = repo.find_tree(id).map_err(|_| no_such_dir())?;
        walked.push_str(want);
        walked.push('/');
    }
    Ok(tree)
}

/// `name` as text: bytes that are not UTF-8 as `\xNN`, control characters as
/// [`escape_control`](crate::core::diag::escape_control) shows them, and a backslash
/// doubled so the escapes cannot be forged by a name.
pub fn escape_bytes(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        out.push_str(&crate::core::diag::escape_control(
            &chunk.valid().replace('\\', "\\\\"),
        ));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Git's order of tree entries: by name bytes, a tree's name compared as if it ended
/// in `/`.
fn git_order_key(name: &[u8], is_tree: bool) -> Vec<u8> {
    let mut k = name.to_vec();
    if is_tree {
        k.push(b'/');
    }
    k
}

/// Refuses a tree that `git fsck` calls broken in a way that changes what is read:
/// two entries of one name, whatever their types (`duplicateEntries`), or entries
/// out of git's order (`treeNotSorted`: lookups by name assume the order, so a
/// checkout may pick another entry than a walk). `dir` is the tree's path with a
/// trailing `/`, empty for the root.
fn check_tree(tree: &git2::Tree<'_>, dir: &str) -> Result<(), SourceError> {
    let mut names: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut previous: Option<Vec<u8>> = None;
    let mut unsorted = false;
    for entry in tree.iter() {
        let name = entry.name_bytes();
        if !names.insert(name.to_vec()) {
            return Err(SourceError::DuplicateEntry {
                path: format!("{dir}{}", escape_bytes(name)),
            });
        }
        let key = git_order_key(name, entry.kind() == Some(ObjectType::Tree));
        if previous.as_ref().is_some_and(|p| *p >= key) {
            unsorted = true;
        }
        previous = Some(key);
    }
    // Reported after the whole tree is read: a duplicate is the more precise error.
    if unsorted {
        return Err(SourceError::UnsortedTree {
            path: if dir.is_empty() {
                "/".into()
            } else {
                dir.to_string()
            },
        });
    }
    Ok(())
}

/// Collects the YAML blobs under `tree` (path relative to it, object id), checking
/// every tree and every name on the way, skipping dot-files and dot-directories.
/// Iterative, so a deeply nested tree cannot exhaust the stack.
fn walk_tree(
    repo: &Repository,
    tree: git2::Tree<'_>,
    limits: &Limits,
) -> Result<Vec<(String, git2::Oid)>, SourceError> {
    let mut found: Vec<(String, git2::Oid)> = Vec::new();
    let mut pending: Vec<(String, git2::Oid)> = vec![(String::new(), tree.id())];
    while let Some((dir, oid)) = pending.pop() {
        let tree = repo
            .find_tree(oid)
            .map_err(|source| SourceError::ReadObject {
                path: if dir.is_empty() {
                    "/".into()
                } else {
                    dir.clone()
                },
                source,
            })?;
        check_tree(&tree, &dir)?;
        for entry in tree.iter() {
            let bytes = entry.name_bytes();
            let Ok(name) = std::str::from_utf8(bytes) else {
                return Err(SourceError::NonUtf8Name {
                    path: format!("{dir}{}", escape_bytes(bytes)),
                });
            };
            let path = format!("{dir}{name}");
            check_component(&path, name)?;
            if name.starts_with('.') {
                continue;
            }
            match (entry.kind(), entry.filemode()) {
                (_, 0o120000) => return Err(SourceError::Symlink { path }),
                (Some(ObjectType::Commit), _) | (_, 0o160000) => {
                    return Err(SourceError::Submodule { path });
                }
                (Some(ObjectType::Tree), _) => pending.push((format!("{path}/"), entry.id())),
                (Some(ObjectType::Blob), _) if is_yaml(name) || is_config_path(&path) => {
                    if found.len() >= limits.max_files {
                        return Err(SourceError::TooManyFiles {
                            limit: limits.max_files,
                        });
                    }
                    found.push((path, entry.id()));
                }
                _ => {}
            }
        }
    }
    Ok(found)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::limits::LIMITS;

    const FLEET: &str = "apiVersion: drover.dev/v1alpha1\nkind: Fleet\nmetadata: {name: f}\nspec: {namespace: n, groups: [all]}\n";

    /// A tree object written byte for byte: `(mode, name, id)` in the order given,
    /// so it can hold what git's own tools would never write.
    fn raw_tree(repo: &Repository, entries: &[(&str, &[u8], git2::Oid)]) -> git2::Oid {
        let mut bytes = Vec::new();
        for (mode, name, id) in entries {
            bytes.extend_from_slice(mode.as_bytes());
            bytes.push(b' ');
            bytes.extend_from_slice(name);
            bytes.push(0);
            bytes.extend_from_slice(id.as_bytes());
        }
        repo.odb().unwrap().write(ObjectType::Tree, &bytes).unwrap()
    }

    fn commit_tree(repo: &Repository, tree: git2::Oid) -> git2::Oid {
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo.find_tree(tree).unwrap();
        repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap()
    }

    fn read(
        repo: &Repository,
        commit: git2::Oid,
        subdir: &str,
    ) -> Result<Vec<String>, SourceError> {
        let c = repo.find_commit(commit).unwrap();
        read_commit(repo, &c, Path::new(subdir), &LIMITS)
            .map(|files| files.into_iter().map(|f| f.path).collect())
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        repo: Repository,
        fleet: git2::Oid,
        agent: git2::Oid,
        other: git2::Oid,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let fleet = repo.blob(FLEET.as_bytes()).unwrap();
        let agent = repo
            .blob(b"apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: agent}\nspec: {image: a:1}\n")
            .unwrap();
        let other = repo
            .blob(b"apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: hidden}\nspec: {image: h:1, hostPID: true}\n")
            .unwrap();
        Fixture {
            _dir: dir,
            repo,
            fleet,
            agent,
            other,
        }
    }

    #[test]
    fn a_well_formed_tree_reads_every_yaml_file_but_dot_directories() {
        let f = fixture();
        let daemons = raw_tree(&f.repo, &[("100644", b"agent.yaml", f.agent)]);
        let hidden = raw_tree(&f.repo, &[("100644", b"x.yaml", f.other)]);
        let root = raw_tree(
            &f.repo,
            &[
                ("40000", b".github", hidden),
                ("100644", b"README.md", f.agent),
                ("40000", b"daemons", daemons),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        let c = commit_tree(&f.repo, root);
        assert_eq!(
            read(&f.repo, c, "").unwrap(),
            ["daemons/agent.yaml", "drover.yaml"]
        );
        let nested = raw_tree(&f.repo, &[("40000", b"fleet", root)]);
        let c = commit_tree(&f.repo, nested);
        assert_eq!(
            read(&f.repo, c, "fleet").unwrap(),
            ["daemons/agent.yaml", "drover.yaml"]
        );
    }

    #[test]
    fn files_under_config_are_read_whatever_their_name_and_nowhere_else() {
        let f = fixture();
        let entry = raw_tree(&f.repo, &[("100644", b"fluent-bit.conf", f.other)]);
        let daemon = raw_tree(&f.repo, &[("40000", b"fluent-bit-config", entry)]);
        let config = raw_tree(&f.repo, &[("40000", b"fluent-bit", daemon)]);
        let root = raw_tree(
            &f.repo,
            &[
                ("100644", b"NOTES.txt", f.agent),
                ("40000", b"config", config),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        let c = commit_tree(&f.repo, root);
        assert_eq!(
            read(&f.repo, c, "").unwrap(),
            [
                "config/fluent-bit/fluent-bit-config/fluent-bit.conf",
                "drover.yaml"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("drover.yaml"), FLEET).unwrap();
        std::fs::write(dir.path().join("NOTES.txt"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("config/agent/agent-config")).unwrap();
        std::fs::write(dir.path().join("config/agent/agent-config/agent.conf"), "x").unwrap();
        let paths: Vec<String> = read_worktree(dir.path(), &LIMITS)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            paths,
            ["config/agent/agent-config/agent.conf", "drover.yaml"]
        );
    }

    #[test]
    fn a_tree_with_two_entries_of_one_name_is_refused_naming_the_path() {
        let f = fixture();
        // Two blobs of one name, in the fleet's directory: the hidden one is the
        // daemon a checkout would not show.
        let daemons = raw_tree(
            &f.repo,
            &[
                ("100644", b"agent.yaml", f.agent),
                ("100644", b"agent.yaml", f.other),
            ],
        );
        let root = raw_tree(
            &f.repo,
            &[
                ("40000", b"daemons", daemons),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        let e = read(&f.repo, commit_tree(&f.repo, root), "").unwrap_err();
        assert!(
            matches!(&e, SourceError::DuplicateEntry { path } if path == "daemons/agent.yaml"),
            "{e}"
        );
        assert!(e.to_string().contains("duplicateEntries"), "{e}");

        // A file and a directory of one name (git sorts them apart: `a` < `a-` < `a/`).
        let sub = raw_tree(&f.repo, &[("100644", b"x.yaml", f.other)]);
        let root = raw_tree(
            &f.repo,
            &[
                ("100644", b"daemons", f.agent),
                ("100644", b"daemons-x.yaml", f.agent),
                ("40000", b"daemons", sub),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        let e = read(&f.repo, commit_tree(&f.repo, root), "").unwrap_err();
        assert!(
            matches!(&e, SourceError::DuplicateEntry { path } if path == "daemons"),
            "{e}"
        );

        // Not only YAML files: any duplicate in the tree that is read.
        let root = raw_tree(
            &f.repo,
            &[
                ("100644", b"README.md", f.agent),
                ("100644", b"README.md", f.agent),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        let e = read(&f.repo, commit_tree(&f.repo, root), "").unwrap_err();
        assert!(
            matches!(&e, SourceError::DuplicateEntry { path } if path == "README.md"),
            "{e}"
        );

        // On the way to the fleet's directory too: two `fleet` trees.
        let good = raw_tree(&f.repo, &[("100644", b"drover.yaml", f.fleet)]);
        let evil = raw_tree(
            &f.repo,
            &[
                ("100644", b"drover.yaml", f.fleet),
                ("100644", b"z.yaml", f.other),
            ],
        );
        let root = raw_tree(
            &f.repo,
            &[("40000", b"fleet", good), ("40000", b"fleet", evil)],
        );
        let e = read(&f.repo, commit_tree(&f.repo, root), "fleet").unwrap_err();
        assert!(
            matches!(&e, SourceError::DuplicateEntry { path } if path == "fleet"),
            "{e}"
        );
    }

    #[test]
    fn a_tree_out_of_git_order_is_refused() {
        let f = fixture();
        let root = raw_tree(
            &f.repo,
            &[
                ("100644", b"drover.yaml", f.fleet),
                ("100644", b"agent.yaml", f.agent),
            ],
        );
        let e = read(&f.repo, commit_tree(&f.repo, root), "").unwrap_err();
        assert!(
            matches!(&e, SourceError::UnsortedTree { path } if path == "/"),
            "{e}"
        );
        assert!(e.to_string().contains("treeNotSorted"), "{e}");
        // Where a tree sorts as `name/`: `a.yaml` (0x2e) before tree `a` (0x2f) is the
        // correct order, the other way round is not.
        let sub = raw_tree(&f.repo, &[("100644", b"x.yaml", f.agent)]);
        let ok = raw_tree(
            &f.repo,
            &[
                ("100644", b"a.yaml", f.agent),
                ("40000", b"a", sub),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        assert_eq!(
            read(&f.repo, commit_tree(&f.repo, ok), "").unwrap(),
            ["a.yaml", "a/x.yaml", "drover.yaml"]
        );
        let bad = raw_tree(
            &f.repo,
            &[
                ("40000", b"a", sub),
                ("100644", b"a.yaml", f.agent),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        assert!(matches!(
            read(&f.repo, commit_tree(&f.repo, bad), ""),
            Err(SourceError::UnsortedTree { .. })
        ));
    }

    #[test]
    fn non_utf8_names_in_a_commit_are_refused_naming_their_bytes() {
        let f = fixture();
        // Two names that a lossy conversion makes one: `agent\u{fffd}.yaml`.
        let daemons = raw_tree(
            &f.repo,
            &[
                ("100644", b"agent\xfe.yaml", f.other),
                ("100644", b"agent\xff.yaml", f.agent),
            ],
        );
        let root = raw_tree(
            &f.repo,
            &[
                ("40000", b"daemons", daemons),
                ("100644", b"drover.yaml", f.fleet),
            ],
        );
        let e = read(&f.repo, commit_tree(&f.repo, root), "").unwrap_err();
        assert!(
            matches!(&e, SourceError::NonUtf8Name { path } if path == "daemons/agent\\xfe.yaml"),
            "{e}"
        );
        assert!(!e.to_string().contains('\u{fffd}'), "{e}");
        // A directory name, and a name that is not YAML: refused as well.
        let sub = raw_tree(&f.repo, &[("100644", b"x.yaml", f.agent)]);
        let root = raw_tree(
            &f.repo,
            &[
                ("100644", b"drover.yaml", f.fleet),
                ("40000", b"d\xc3(", sub),
            ],
        );
        let e = read(&f.repo, commit_tree(&f.repo, root), "").unwrap_err();
        assert!(
            matches!(&e, SourceError::NonUtf8Name { path } if path == "d\\xc3("),
            "{e}"
        );
        let root = raw_tree(
            &f.repo,
            &[
                ("100644", b"drover.yaml", f.fleet),
                ("100644", b"notes-\x80.txt", f.agent),
            ],
        );
        assert!(matches!(
            read(&f.repo, commit_tree(&f.repo, root), ""),
            Err(SourceError::NonUtf8Name { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_in_a_working_tree_are_refused_naming_their_bytes() {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("drover.yaml"), FLEET).unwrap();
        std::fs::create_dir(dir.path().join("daemons")).unwrap();
        let name = std::ffi::OsStr::from_bytes(b"agent\xff.yaml");
        std::fs::write(dir.path().join("daemons").join(name), "x: 1\n").unwrap();
        let e = read_worktree(dir.path(), &LIMITS).unwrap_err();
        assert!(
            matches!(&e, SourceError::NonUtf8Name { path } if path == "daemons/agent\\xff.yaml"),
            "{e}"
        );
    }

    #[test]
    fn escaped_bytes_cannot_be_forged_by_a_name() {
        assert_eq!(escape_bytes(b"a\xffb"), "a\\xffb");
        assert_eq!(escape_bytes(b"a\\xffb"), "a\\\\xffb");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
        assert_ne!(escape_bytes(b"\x1b"), "\x1b");
    }
}
