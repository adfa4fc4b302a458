//! Commit signatures: read a commit's `gpgsig` header and the payload it signs with
//! git2, verify it against drover's own trust sources, and enumerate the commits
//! since the last applied one for the `all` policy.
//!
//! Owns: reading the trust sources (an OpenSSH allowed-signers file, an armoured
//! OpenPGP keyring) from drover's configuration — never from the repository — and
//! the cryptographic checks (`ssh-key` for SSHSIG, `pgp` for OpenPGP). Must not:
//! decide what to do with the result; [`crate::core::trust::decide`] does.
//!
//! Fail closed: a signature counts as `good` only when it verifies over exactly the
//! commit's payload, with a key the trust source holds, that was valid for signing
//! both when the commit says it was made and now (so a key removed, expired or
//! revoked since cannot bring in new commits with an old date).

mod openpgp;
mod ssh;

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::core::trust::{
    CommitCheck, Decision, Policy, Range, SignatureFormat, SignatureStatus, Verification, decide,
};

pub use openpgp::Keyring;
pub use ssh::AllowedSigners;

/// The most commits the `all` policy walks from the head back to the last applied
/// commit; a longer range is refused (not guessed at).
pub const MAX_RANGE: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("{path}: cannot read the trust source: {source}")]
    ReadTrustSource {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    ParseAllowedSigners {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    ParseKeyring { path: PathBuf, reason: String },
    #[error(
        "--require-signed {policy} needs a trust source: --allowed-signers FILE or --trusted-keys FILE"
    )]
    NoTrustSource { policy: Policy },
    #[error(
        "{path}: the trust source lies inside the repository it checks ({repo}); keep it in drover's own configuration"
    )]
    InsideRepository { path: PathBuf, repo: PathBuf },
}

/// Where drover's trust comes from, as configured (flags, environment, a mounted
/// Secret's files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    /// OpenSSH allowed-signers file (`ssh-keygen -Y verify` format).
    pub allowed_signers: Option<PathBuf>,
    /// Armoured OpenPGP public keys.
    pub trusted_keys: Option<PathBuf>,
    /// The policy in force (already resolved: see [`Policy::resolve`]).
    pub policy: Policy,
}

impl TrustConfig {
    /// Resolves the policy from what was asked and what was configured.
    ///
    /// # Errors
    /// A policy that requires signatures without any trust source to check them.
    pub fn new(
        allowed_signers: Option<PathBuf>,
        trusted_keys: Option<PathBuf>,
        policy: Option<Policy>,
    ) -> Result<TrustConfig, SignatureError> {
        let has = allowed_signers.is_some() || trusted_keys.is_some();
        let policy = Policy::resolve(policy, has);
        if policy != Policy::Off && !has {
            return Err(SignatureError::NoTrustSource { policy });
        }
        Ok(TrustConfig {
            allowed_signers,
            trusted_keys,
            policy,
        })
    }

    /// Refuses trust sources that lie inside the local repository `repo` they are
    /// meant to check: whoever can push there could name their own key.
    ///
    /// # Errors
    /// The first trust source inside `repo`.
    pub fn refuse_inside(&self, repo: &Path) -> Result<(), SignatureError> {
        // The whole working tree (or git directory) the path belongs to.
        let root = match Repository::discover(repo) {
            Ok(r) => r.workdir().unwrap_or(r.path()).canonicalize(),
            Err(_) => repo.canonicalize(),
        };
        let Ok(root) = root else {
            // Not a local path (a URL): nothing to be inside of.
            return Ok(());
        };
        for p in self.allowed_signers.iter().chain(self.trusted_keys.iter()) {
            let full = p.canonicalize().unwrap_or_else(|_| p.clone());
            if full.starts_with(&root) {
                return Err(SignatureError::InsideRepository {
                    path: p.clone(),
                    repo: repo.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    pub fn has_trust_source(&self) -> bool {
        self.allowed_signers.is_some() || self.trusted_keys.is_some()
    }

    /// Reads and parses the trust sources. Called again before every check, so a
    /// rotated Secret takes effect without a restart.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, naming the file (and line).
    pub fn load(&self) -> Result<TrustSources, SignatureError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| SignatureError::ReadTrustSource {
                path: p.to_path_buf(),
                source,
            })
        };
        let ssh = match &self.allowed_signers {
            Some(p) => Some(AllowedSigners::parse(
                p,
                &String::from_utf8_lossy(&read(p)?),
            )?),
            None => None,
        };
        let openpgp = match &self.trusted_keys {
            Some(p) => Some(Keyring::parse(p, &read(p)?)?),
            None => None,
        };
        Ok(TrustSources { ssh, openpgp })
    }
}

/// Parsed trust sources.
#[derive(Debug, Default)]
pub struct TrustSources {
    pub ssh: Option<AllowedSigners>,
    pub openpgp: Option<Keyring>,
}

/// Which format an armoured signature is in.
pub fn format_of(signature: &[u8]) -> SignatureFormat {
    let text = String::from_utf8_lossy(signature);
    let first = text.trim_start().lines().next().unwrap_or_default().trim();
    match first {
        "-----BEGIN SSH SIGNATURE-----" => SignatureFormat::Ssh,
        "-----BEGIN PGP SIGNATURE-----" => SignatureFormat::Openpgp,
        "-----BEGIN SIGNED MESSAGE-----" | "-----BEGIN PKCS7-----" => SignatureFormat::X509,
        _ => SignatureFormat::Unknown,
    }
}

impl TrustSources {
    /// Verifies `signature` over `payload`, for a commit whose committer time is
    /// `commit_time` (seconds since the epoch), at `now`.
    pub fn verify(
        &self,
        signature: &[u8],
        payload: &[u8],
        commit_time: i64,
        now: jiff::Timestamp,
    ) -> Verification {
        let format = format_of(signature);
        let unchecked = |reason: &str| Verification {
            status: SignatureStatus::Signed,
            format: Some(format),
            key: None,
            signer: None,
            reason: Some(reason.to_string()),
        };
        match format {
            SignatureFormat::Ssh => match &self.ssh {
                Some(s) => s.verify(signature, payload, commit_time, now),
                None => unchecked("an SSH signature, and drover has no --allowed-signers file"),
            },
            SignatureFormat::Openpgp => match &self.openpgp {
                Some(k) => k.verify(signature, payload, commit_time, now),
                None => unchecked("an OpenPGP signature, and drover has no --trusted-keys file"),
            },
            SignatureFormat::X509 => unchecked("drover cannot verify x509 (S/MIME) signatures"),
            SignatureFormat::Unknown => Verification {
                status: SignatureStatus::Bad,
                format: Some(format),
                key: None,
                signer: None,
                reason: Some("the gpgsig header is not an SSH or OpenPGP signature".into()),
            },
        }
    }

    /// Reads and verifies the signature of commit `oid`.
    pub fn verify_commit(&self, repo: &Repository, oid: Oid, now: jiff::Timestamp) -> Verification {
        let (signature, payload) = match repo.extract_signature(&oid, None) {
            Ok(x) => x,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Verification::unsigned(),
            Err(e) => {
                return Verification {
                    status: SignatureStatus::Bad,
                    format: None,
                    key: None,
                    signer: None,
                    reason: Some(format!(
                        "cannot read the commit's signature: {}",
                        e.message()
                    )),
                };
            }
        };
        let time = repo
            .find_commit(oid)
            .map(|c| c.committer().when().seconds())
            .unwrap_or(i64::MIN);
        self.verify(&signature, &payload, time, now)
    }
}

/// Whether commit `oid` carries a signature at all (no keys needed).
pub fn is_signed(repo: &Repository, oid: Oid) -> bool {
    repo.extract_signature(&oid, None).is_ok()
}

/// The commits reachable from `head` and not from `last_applied`, oldest first
/// (topological order), at most [`MAX_RANGE`] of them.
///
/// # Errors
/// Why the range cannot be told: the last applied commit is not in the repository,
/// or the range is longer than the bound.
pub fn commits_since(repo: &Repository, last_applied: &str, head: Oid) -> Result<Vec<Oid>, String> {
    let last = Oid::from_str(last_applied)
        .ok()
        .filter(|o| repo.find_commit(*o).is_ok())
        .ok_or_else(|| {
            format!(
                "the last applied commit {} is not in the repository (history rewritten?)",
                &last_applied[..last_applied.len().min(12)]
            )
        })?;
    let walk = || -> Result<Vec<Oid>, git2::Error> {
        let mut w = repo.revwalk()?;
        w.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
        w.push(head)?;
        w.hide(last)?;
        let mut out = Vec::new();
        for oid in w {
            out.push(oid?);
            if out.len() > MAX_RANGE {
                break;
            }
        }
        Ok(out)
    };
    let out = walk().map_err(|e| format!("walking the history: {}", e.message()))?;
    if out.len() > MAX_RANGE {
        return Err(format!(
            "more than {MAX_RANGE} commits since the last applied one"
        ));
    }
    Ok(out)
}

/// What the trust check found for a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustCheck {
    pub policy: Policy,
    /// The head's own verification.
    pub head: Verification,
    pub decision: Decision,
}

/// Verifies `head` (and, under the `all` policy, every commit since
/// `last_applied`) and decides. Without a trust source, the head is only noted
/// as signed or unsigned and the decision is the policy's (`off`: accept).
///
/// # Errors
/// A trust source that cannot be read or parsed (the caller refuses the commit).
pub fn check(
    cfg: &TrustConfig,
    repo: &Repository,
    last_applied: Option<&str>,
    head: Oid,
    now: jiff::Timestamp,
) -> Result<TrustCheck, SignatureError> {
    if !cfg.has_trust_source() {
        let head_v = if is_signed(repo, head) {
            Verification {
                status: SignatureStatus::Signed,
                format: repo
                    .extract_signature(&head, None)
                    .ok()
                    .map(|(s, _)| format_of(&s)),
                key: None,
                signer: None,
                reason: Some("drover holds no trust source to check it".into()),
            }
        } else {
            Verification::unsigned()
        };
        let decision = decide(
            cfg.policy,
            &CommitCheck {
                sha: head.to_string(),
                verification: head_v.clone(),
            },
            &Range::FirstApply,
        );
        return Ok(TrustCheck {
            policy: cfg.policy,
            head: head_v,
            decision,
        });
    }
    let sources = cfg.load()?;
    let head_v = sources.verify_commit(repo, head, now);
    let head_check = CommitCheck {
        sha: head.to_string(),
        verification: head_v.clone(),
    };
    let range = match (cfg.policy, last_applied) {
        (Policy::All, Some(last)) if last != head.to_string() => {
            match commits_since(repo, last, head) {
                Ok(oids) => Range::Commits(
                    oids.into_iter()
                        .map(|o| CommitCheck {
                            sha: o.to_string(),
                            verification: if o == head {
                                head_v.clone()
                            } else {
                                sources.verify_commit(repo, o, now)
                            },
                        })
                        .collect(),
                ),
                Err(reason) => Range::Unknown { reason },
            }
        }
        _ => Range::FirstApply,
    };
    let decision = decide(cfg.policy, &head_check, &range);
    Ok(TrustCheck {
        policy: cfg.policy,
        head: head_v,
        decision,
    })
}

/// The trust check of a head as the sync loop needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub policy: Policy,
    /// The head's verification, for the audit record.
    pub head: Verification,
    /// Why the head may not be applied; `None`: it may.
    pub refusal: Option<String>,
}

/// Checks `head` under `cfg` (see [`check`]). A trust source that cannot be read
/// refuses the head whenever a policy is in force.
pub fn verdict(
    cfg: &TrustConfig,
    repo: &Repository,
    last_applied: Option<&str>,
    head: &str,
    now: jiff::Timestamp,
) -> Verdict {
    let unverified = |reason: String| Verification {
        status: SignatureStatus::Bad,
        format: None,
        key: None,
        signer: None,
        reason: Some(reason),
    };
    let Ok(oid) = Oid::from_str(head) else {
        let reason = format!("`{head}` is not a commit id");
        return Verdict {
            policy: cfg.policy,
            head: unverified(reason.clone()),
            refusal: Some(reason),
        };
    };
    match check(cfg, repo, last_applied, oid, now) {
        Ok(c) => Verdict {
            policy: c.policy,
            head: c.head,
            refusal: match c.decision {
                Decision::Accept => None,
                Decision::Refuse(r) => Some(r.to_string()),
            },
        },
        Err(e) => {
            let reason = format!("cannot check signatures: {e}");
            Verdict {
                policy: cfg.policy,
                head: Verification {
                    status: if is_signed(repo, oid) {
                        SignatureStatus::Signed
                    } else {
                        SignatureStatus::Unsigned
                    },
                    format: None,
                    key: None,
                    signer: None,
                    reason: Some(reason.clone()),
                },
                refusal: (cfg.policy != Policy::Off).then_some(reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armour_tells_the_format() {
        assert_eq!(
            format_of(b"-----BEGIN SSH SIGNATURE-----\nU1NI\n-----END SSH SIGNATURE-----\n"),
            SignatureFormat::Ssh
        );
        assert_eq!(
            format_of(b"-----BEGIN PGP SIGNATURE-----\n\niQ\n-----END PGP SIGNATURE-----"),
            SignatureFormat::Openpgp
        );
        assert_eq!(
            format_of(b"-----BEGIN SIGNED MESSAGE-----\n"),
            SignatureFormat::X509
        );
        assert_eq!(format_of(b"garbage"), SignatureFormat::Unknown);
    }

    #[test]
    fn a_policy_without_a_trust_source_is_refused_at_start() {
        assert!(matches!(
            TrustConfig::new(None, None, Some(Policy::All)),
            Err(SignatureError::NoTrustSource {
                policy: Policy::All
            })
        ));
        assert_eq!(
            TrustConfig::new(None, None, None).unwrap().policy,
            Policy::Off
        );
        assert_eq!(
            TrustConfig::new(Some("a".into()), None, None)
                .unwrap()
                .policy,
            Policy::Head
        );
    }

    #[test]
    fn an_unknown_gpgsig_is_bad_and_a_missing_trust_source_leaves_it_unchecked() {
        let t = TrustSources::default();
        let now = jiff::Timestamp::UNIX_EPOCH;
        assert_eq!(t.verify(b"junk", b"p", 0, now).status, SignatureStatus::Bad);
        let v = t.verify(b"-----BEGIN SSH SIGNATURE-----\n", b"p", 0, now);
        assert_eq!(v.status, SignatureStatus::Signed);
        assert_eq!(v.format, Some(SignatureFormat::Ssh));
    }
}
