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
    #[error("{path}: {source}")]
    ParseKnownHosts {
        path: PathBuf,
        source: KnownHostsSyntax,
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
            let known = parse_known_hosts(&text).map_err(|source| GitError::ParseKnownHosts {
                path: path.clone(),
                source,
            })?;
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

/// One usable `known_hosts` entry: its host patterns and the key in SSH wire format
/// (what libgit2 hands the certificate check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    pub hosts: Vec<String>,
    pub key: Vec<u8>,
    /// `@revoked`: this key is refused for every host.
    pub revoked: bool,
}

/// A line of a `known_hosts` file that is not an entry.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: not a known_hosts entry: {source}")]
pub struct KnownHostsSyntax {
    pub line: usize,
    pub source: ssh_key::Error,
}

/// Parses OpenSSH `known_hosts` with `ssh-key`, which decodes each key and checks it
/// against its algorithm name. Host-name patterns are kept; hashed (`|1|`) entries
/// and `@cert-authority` lines never match a host key, so they are dropped;
/// `@revoked` keys are kept, to be refused.
///
/// # Errors
/// The first line that is not an entry (fail closed: a file read in part could
/// miss a `@revoked` line).
pub fn parse_known_hosts(text: &str) -> Result<Vec<KnownHost>, KnownHostsSyntax> {
    use ssh_key::known_hosts::{Entry, HostPatterns, Marker};
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split_once('#').map_or(raw, |(l, _)| l);
        // OpenSSH separates fields by any whitespace; ssh-key by single spaces.
        let fields: Vec<&str> = content.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let syntax = |source| KnownHostsSyntax {
            line: i + 1,
            source,
        };
        let entry: Entry = fields.join(" ").parse().map_err(syntax)?;
        let revoked = match entry.marker() {
            None => false,
            Some(Marker::Revoked) => true,
            Some(Marker::CertAuthority) => continue,
        };
        let hosts = match entry.host_patterns() {
            HostPatterns::Patterns(p) => p.clone(),
            HostPatterns::HashedName { .. } if revoked => Vec::new(),
            HostPatterns::HashedName { .. } => continue,
        };
        let key = entry.public_key().to_bytes().map_err(syntax)?;
        out.push(KnownHost {
            hosts,
            key,
            revoked,
        });
    }
    Ok(out)
}

/// Whether `key` is listed for `host` (plain `host` or `[host]:port` entries) and
/// not revoked. A negated pattern (`!host`) on an entry keeps that entry from
/// matching `host`; wildcards are not expanded, so they match nothing but
/// themselves.
pub fn host_key_known(known: &[KnownHost], host: &str, key: &[u8]) -> bool {
    let names = |h: &str| -> bool {
        h == host
            || h.strip_prefix('[')
                .and_then(|r| r.split_once("]:"))
                .is_some_and(|(name, _)| name == host)
    };
    if known.iter().any(|k| k.revoked && k.key == key) {
        return false;
    }
    known.iter().any(|k| {
        !k.revoked
            && k.key == key
            && !k
                .hosts
                .iter()
                .any(|h| h.strip_prefix('!').is_some_and(names))
            && k.hosts.iter().any(|h| names(h))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::PublicKey;
    use ssh_key::public::{Ed25519PublicKey, KeyData};

    /// A made-up ed25519 host key: its `known_hosts` form and its wire bytes.
    fn key(n: u8) -> (String, Vec<u8>) {
        let k = PublicKey::new(KeyData::Ed25519(Ed25519PublicKey([n; 32])), "");
        (k.to_openssh().unwrap(), k.to_bytes().unwrap())
    }

    #[test]
    fn known_hosts_match_by_host_and_key() {
        let ((a, a_raw), (b, b_raw)) = (key(1), key(2));
        let known = parse_known_hosts(&format!(
            "# comment\ngithub.com,140.82.121.4 {a} a comment\n\n[git.example.com]:2222\t{b}\n\
             |1|AAAAAAAAAAAAAAAAAAAAAAAAAAA=|AAAAAAAAAAAAAAAAAAAAAAAAAAA= {b}\n\
             @cert-authority *.example.com {a}\n"
        ))
        .unwrap();
        assert_eq!(known.len(), 2, "{known:?}");
        assert!(host_key_known(&known, "github.com", &a_raw));
        assert!(host_key_known(&known, "140.82.121.4", &a_raw));
        assert!(
            !host_key_known(&known, "github.com", &b_raw),
            "a different key is refused"
        );
        assert!(host_key_known(&known, "git.example.com", &b_raw));
        assert!(
            !host_key_known(&known, "evil.example.com", &a_raw),
            "an unknown host is refused"
        );
        assert!(
            !host_key_known(&known, "sub.example.com", &a_raw),
            "a certificate authority's key is not a host key"
        );
    }

    #[test]
    fn a_revoked_key_is_refused_even_where_it_is_listed() {
        let (a, a_raw) = key(1);
        let known = parse_known_hosts(&format!(
            "git.example.com {a}\n@revoked other.example.com {a}\n"
        ))
        .unwrap();
        assert!(!host_key_known(&known, "git.example.com", &a_raw));
    }

    #[test]
    fn a_negated_pattern_keeps_its_entry_from_matching_that_host() {
        let (a, a_raw) = key(1);
        let known = parse_known_hosts(&format!("git.example.com,!git.example.com {a}\n")).unwrap();
        assert!(!host_key_known(&known, "git.example.com", &a_raw));
    }

    #[test]
    fn a_line_that_is_not_an_entry_is_refused_with_its_line_number() {
        let (a, _) = key(1);
        for bad in [
            "git.example.com ssh-ed25519 a$==".to_string(),
            "git.example.com".to_string(),
            // The key blob says ed25519, the name says rsa.
            format!("git.example.com {}", a.replace("ssh-ed25519", "ssh-rsa")),
            format!("@trusted git.example.com {a}"),
        ] {
            let err = parse_known_hosts(&format!("# ok\nok.example.com {a}\n{bad}\n")).unwrap_err();
            assert_eq!(err.line, 3, "{bad}: {err}");
            assert!(err.to_string().starts_with("line 3: "), "{err}");
        }
    }
}
