//! Following a branch of a remote repository: a bare mirror under the state
//! directory, fetched with git2 (https with a token, ssh with a key file, or a local
//! path / `file://` URL), shallow where the transport allows.

use std::path::{Path, PathBuf};

use git2::{Cred, FetchOptions, RemoteCallbacks, Repository};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path}: cannot open or create the mirror repository: {source}")]
    Mirror { path: PathBuf, source: git2::Error },
    #[error("fetching {branch} from {url}: {source}")]
    Fetch {
        url: String,
        branch: String,
        source: git2::Error,
    },
    #[error("branch {branch} not found in {url}")]
    NoBranch { url: String, branch: String },
    #[error("reading the token file {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where to fetch from and how to authenticate.
#[derive(Debug, Clone)]
pub struct RemoteSpec {
    pub url: String,
    pub branch: String,
    /// https token (used as the password, user `x-access-token`).
    pub token: Option<String>,
    /// ssh private key file.
    pub ssh_key: Option<PathBuf>,
}

impl RemoteSpec {
    /// Reads the token from the environment variable or file, if either is given.
    ///
    /// # Errors
    /// When the token file cannot be read.
    pub fn resolve_token(
        env_var: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<String>, GitError> {
        if let Some(f) = file {
            let t = std::fs::read_to_string(f).map_err(|source| GitError::Token {
                path: f.to_path_buf(),
                source,
            })?;
            return Ok(Some(t.trim().to_string()));
        }
        Ok(env_var
            .and_then(|v| std::env::var(v).ok())
            .filter(|t| !t.is_empty()))
    }

    fn is_local(&self) -> bool {
        self.url.starts_with("file://") || Path::new(&self.url).exists()
    }

    /// A local path made absolute; other URLs as given.
    fn fetch_url(&self) -> String {
        if !self.url.contains("://") && Path::new(&self.url).exists() {
            return Path::new(&self.url)
                .canonicalize()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| self.url.clone());
        }
        self.url.clone()
    }
}

/// A bare mirror of the fleet repository.
pub struct Mirror {
    pub path: PathBuf,
    pub repo: Repository,
}

impl Mirror {
    /// Opens or creates the mirror at `path`.
    ///
    /// # Errors
    /// When the directory is not a usable git repository.
    pub fn open(path: &Path) -> Result<Mirror, GitError> {
        let repo = match Repository::open_bare(path) {
            Ok(r) => r,
            Err(_) => Repository::init_bare(path).map_err(|source| GitError::Mirror {
                path: path.to_path_buf(),
                source,
            })?,
        };
        Ok(Mirror {
            path: path.to_path_buf(),
            repo,
        })
    }

    /// Fetches the branch and returns the commit it points at.
    ///
    /// # Errors
    /// When the remote cannot be reached, refuses the credentials, or lacks the branch.
    pub fn fetch(&self, spec: &RemoteSpec) -> Result<String, GitError> {
        let url = spec.fetch_url();
        let err = |source| GitError::Fetch {
            url: crate::core::diag::escape_control(&spec.url),
            branch: spec.branch.clone(),
            source,
        };
        let mut remote = self.repo.remote_anonymous(&url).map_err(err)?;
        let mut cb = RemoteCallbacks::new();
        let token = spec.token.clone();
        let key = spec.ssh_key.clone();
        let mut tries = 0;
        cb.credentials(move |_url, username, allowed| {
            tries += 1;
            if tries > 3 {
                return Err(git2::Error::from_str("authentication failed"));
            }
            if allowed.contains(git2::CredentialType::SSH_KEY)
                && let Some(k) = &key
            {
                return Cred::ssh_key(username.unwrap_or("git"), None, k, None);
            }
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
                && let Some(t) = &token
            {
                return Cred::userpass_plaintext("x-access-token", t);
            }
            Cred::default()
        });
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(cb);
        if !spec.is_local() {
            fo.depth(1);
        }
        let refspec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", spec.branch);
        remote
            .fetch(&[&refspec], Some(&mut fo), None)
            .map_err(err)?;
        let r = self
            .repo
            .find_reference(&format!("refs/remotes/origin/{}", spec.branch))
            .map_err(|_| GitError::NoBranch {
                url: spec.url.clone(),
                branch: spec.branch.clone(),
            })?;
        let oid = r.peel_to_commit().map_err(err)?.id();
        Ok(oid.to_string())
    }
}
