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
    #[error("reading the known_hosts file {path}: {source}")]
    KnownHosts {
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
    /// OpenSSH `known_hosts` file; when set, an ssh host key must be listed there.
    pub known_hosts: Option<PathBuf>,
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
        if let Some(path) = &spec.known_hosts {
            let text = std::fs::read_to_string(path).map_err(|e| GitError::KnownHosts {
                path: path.clone(),
                source: e,
            })?;
            let known = parse_known_hosts(&text);
            cb.certificate_check(move |cert, host| {
                let Some(hk) = cert.as_hostkey() else {
                    // TLS: keep libgit2's own certificate validation.
                    return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
                };
                let key = hk.hostkey().unwrap_or_default();
                if host_key_known(&known, host, key) {
                    Ok(git2::CertificateCheckStatus::CertificateOk)
                } else {
                    Err(git2::Error::from_str(&format!(
                        "the ssh host key of {} is not in the known_hosts file",
                        crate::core::diag::escape_control(host)
                    )))
                }
            });
        }
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

/// One `known_hosts` line: host patterns and the decoded key blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    pub hosts: Vec<String>,
    pub key: Vec<u8>,
}

/// Parses OpenSSH `known_hosts` (plain host names; hashed `|1|` entries and
/// `@cert-authority`/`@revoked` markers are skipped).
pub fn parse_known_hosts(text: &str) -> Vec<KnownHost> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.starts_with('@') && !l.starts_with('|')
        })
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let hosts = parts.next()?.split(',').map(str::to_string).collect();
            let _keytype = parts.next()?;
            let key = base64_decode(parts.next()?)?;
            Some(KnownHost { hosts, key })
        })
        .collect()
}

/// Whether `key` is listed for `host` (or `[host]:port` entries of it).
pub fn host_key_known(known: &[KnownHost], host: &str, key: &[u8]) -> bool {
    known.iter().any(|k| {
        k.key == key
            && k.hosts.iter().any(|h| {
                h == host
                    || h.strip_prefix('[')
                        .and_then(|r| r.split_once("]:"))
                        .is_some_and(|(name, _)| name == host)
            })
    })
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = chunk.len();
        if n == 1 {
            return None;
        }
        out.push((acc >> 16) as u8);
        if n > 2 {
            out.push((acc >> 8) as u8);
        }
        if n > 3 {
            out.push(acc as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a$==").is_none());
    }

    #[test]
    fn known_hosts_match_by_host_and_key() {
        let known = parse_known_hosts(
            "# comment\ngithub.com,140.82.121.4 ssh-ed25519 aGVsbG8=\n[git.example.com]:2222 ssh-rsa aGk=\n|1|hashed|entry ssh-ed25519 aGk=\n",
        );
        assert_eq!(known.len(), 2);
        assert!(host_key_known(&known, "github.com", b"hello"));
        assert!(
            !host_key_known(&known, "github.com", b"hi"),
            "a different key is refused"
        );
        assert!(host_key_known(&known, "git.example.com", b"hi"));
        assert!(!host_key_known(&known, "evil.example.com", b"hello"));
    }
}
