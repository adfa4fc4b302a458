//! The signature policy: may drover apply this head, given what the shell verified
//! about the signatures of the head and of the commits since the last applied one?
//!
//! Owns: the vocabulary of a signature check ([`SignatureStatus`], [`Verification`])
//! as it is written to the audit trail, plans and `history`, the [`Policy`] values,
//! and the decision itself ([`decide`]). Must not: read git objects, trust files or
//! keys, or do any cryptography; the shell (`shell::signature`) verifies each commit
//! against drover's own trust sources and hands the results in.
//!
//! Fail closed: only [`SignatureStatus::Good`] counts as signed. A commit range the
//! shell could not enumerate ([`Range::Unknown`]) refuses the head under
//! [`Policy::All`], since drover cannot tell which commits it would be accepting.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a commit's signature was made, from its armour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    /// git's `gpg.format ssh`: an armoured SSHSIG in namespace `git`.
    Ssh,
    /// git's default `gpg.format openpgp`: an armoured detached OpenPGP signature.
    Openpgp,
    /// git's `gpg.format x509` (S/MIME); drover cannot verify these.
    X509,
    /// A `gpgsig` header drover does not recognise.
    Unknown,
}

impl SignatureFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFormat::Ssh => "ssh",
            SignatureFormat::Openpgp => "openpgp",
            SignatureFormat::X509 => "x509",
            SignatureFormat::Unknown => "unknown",
        }
    }
}

/// What checking a commit's signature found. Serialised as the audit record's
/// `commit.signature` (`unsigned` and `signed` are the values records carried
/// before drover verified anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// No signature on the commit.
    Unsigned,
    /// A signature is present but was not checked: drover holds no trust source for
    /// its format.
    Signed,
    /// Signed by a key of drover's trust sources, valid for that use at that time,
    /// over exactly this commit.
    Good,
    /// Signed by a key that drover's trust sources do not hold.
    UnknownKey,
    /// The signature does not hold: the commit was changed after signing, the
    /// signature is malformed or for another purpose, or the key was not valid
    /// (expired, revoked, outside its `valid-after`/`valid-before`) when it signed.
    Bad,
}

impl SignatureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureStatus::Unsigned => "unsigned",
            SignatureStatus::Signed => "signed",
            SignatureStatus::Good => "good",
            SignatureStatus::UnknownKey => "unknown-key",
            SignatureStatus::Bad => "bad",
        }
    }
}

impl fmt::Display for SignatureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of checking one commit's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub status: SignatureStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SignatureFormat>,
    /// The signing key's fingerprint: `SHA256:…` (OpenSSH's form) for SSH, the
    /// 40 (v4) or 64 (v6) hex digits for OpenPGP; the 16-digit key id when the
    /// signature names only that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Who the trust source says the key belongs to: the allowed-signers
    /// principals, or the OpenPGP key's first user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Why the status is not `good`, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Verification {
    /// A commit without a signature.
    pub fn unsigned() -> Verification {
        Verification {
            status: SignatureStatus::Unsigned,
            format: None,
            key: None,
            signer: None,
            reason: Some("the commit has no signature".into()),
        }
    }

    pub fn is_good(&self) -> bool {
        self.status == SignatureStatus::Good
    }

    /// One line for people: `good (ssh SHA256:…, alice@example.com)`,
    /// `unknown-key (openpgp 0123…)`, `unsigned`.
    pub fn summary(&self) -> String {
        let mut facts = Vec::new();
        if let Some(f) = self.format {
            facts.push(f.as_str().to_string());
        }
        if let Some(k) = &self.key {
            facts.push(k.clone());
        }
        let mut out = self.status.as_str().to_string();
        if !facts.is_empty() {
            out.push_str(&format!(" ({}", facts.join(" ")));
            if let Some(s) = &self.signer {
                out.push_str(&format!(", {s}"));
            }
            out.push(')');
        }
        out
    }
}

/// Which commits must be signed by a trusted key before a head is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Nothing is required; signatures are still checked and recorded when drover
    /// holds a trust source.
    Off,
    /// Every head drover applies is signed by a trusted key.
    Head,
    /// Every commit since the last applied one (first-parent and merged ones, and
    /// the head) is signed by a trusted key. Before anything was applied, only the
    /// head is checked: its signer vouches for the whole tree.
    All,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Off => "off",
            Policy::Head => "head",
            Policy::All => "all",
        }
    }

    /// The policy in force: the one asked for; else `head` when a trust source is
    /// configured (configuring keys is asking for them to be used), else `off`.
    pub fn resolve(asked: Option<Policy>, has_trust_source: bool) -> Policy {
        match asked {
            Some(p) => p,
            None if has_trust_source => Policy::Head,
            None => Policy::Off,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One checked commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitCheck {
    pub sha: String,
    pub verification: Verification,
}

/// The commits since the last applied one, as far as the shell could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// Nothing applied yet: only the head is checked.
    FirstApply,
    /// Every commit reachable from the head and not from the last applied commit,
    /// the head included, oldest first.
    Commits(Vec<CommitCheck>),
    /// The shell could not enumerate them (the last applied commit is gone from
    /// the repository, or the range is past drover's bound).
    Unknown { reason: String },
}

/// Why a head is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub policy: Policy,
    /// The commit that failed the policy (the head, or one before it).
    pub commit: String,
    /// Its check; `None` when the range itself could not be enumerated.
    pub verification: Option<Verification>,
    /// How many commits the policy covered, and which of them failed (1-based,
    /// oldest first); `None` for the head-only policy.
    pub position: Option<(usize, usize)>,
    /// Why the range could not be enumerated.
    pub range_error: Option<String>,
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signature policy `{}`: ", self.policy)?;
        if let Some(e) = &self.range_error {
            return write!(
                f,
                "cannot tell which commits lead from the last applied one to {}: {e}",
                short(&self.commit)
            );
        }
        write!(f, "commit {}", short(&self.commit))?;
        if let Some((n, of)) = self.position {
            write!(f, " ({n} of {of} since the last applied commit)")?;
        }
        match &self.verification {
            Some(v) => {
                let what = match v.status {
                    SignatureStatus::Unsigned => "is not signed".to_string(),
                    SignatureStatus::Signed => format!(
                        "has a {} signature that drover holds no trust source for",
                        v.format.unwrap_or(SignatureFormat::Unknown).as_str()
                    ),
                    SignatureStatus::UnknownKey => "is signed by a key that is not trusted".into(),
                    SignatureStatus::Bad => "has a signature that does not verify".into(),
                    SignatureStatus::Good => "is signed".into(),
                };
                write!(f, " {what}")?;
                if let Some(k) = &v.key {
                    write!(f, " (key {k})")?;
                }
                if let Some(r) = &v.reason
                    && v.status != SignatureStatus::Unsigned
                {
                    write!(f, ": {r}")?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The policy's verdict on a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Refuse(Refusal),
}

/// Decides whether `head` may be applied under `policy`. `range` is only looked at
/// under [`Policy::All`].
pub fn decide(policy: Policy, head: &CommitCheck, range: &Range) -> Decision {
    let refuse_head = |position| {
        Decision::Refuse(Refusal {
            policy,
            commit: head.sha.clone(),
            verification: Some(head.verification.clone()),
            position,
            range_error: None,
        })
    };
    match policy {
        Policy::Off => Decision::Accept,
        Policy::Head => {
            if head.verification.is_good() {
                Decision::Accept
            } else {
                refuse_head(None)
            }
        }
        Policy::All => match range {
            Range::FirstApply => {
                if head.verification.is_good() {
                    Decision::Accept
                } else {
                    refuse_head(Some((1, 1)))
                }
            }
            Range::Unknown { reason } => Decision::Refuse(Refusal {
                policy,
                commit: head.sha.clone(),
                verification: None,
                position: None,
                range_error: Some(reason.clone()),
            }),
            Range::Commits(commits) => {
                // The head is part of the range; should the shell leave it out (a
                // range it built from the last applied commit itself), it still counts.
                let head_listed = commits.iter().any(|c| c.sha == head.sha);
                let all: Vec<&CommitCheck> = commits
                    .iter()
                    .chain((!head_listed).then_some(head))
                    .collect();
                match all.iter().position(|c| !c.verification.is_good()) {
                    None => Decision::Accept,
                    Some(i) => Decision::Refuse(Refusal {
                        policy,
                        commit: all[i].sha.clone(),
                        verification: Some(all[i].verification.clone()),
                        position: Some((i + 1, all.len())),
                        range_error: None,
                    }),
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sha: &str, status: SignatureStatus) -> CommitCheck {
        CommitCheck {
            sha: sha.into(),
            verification: Verification {
                status,
                format: (status != Unsigned).then_some(SignatureFormat::Ssh),
                key: (status != Unsigned).then(|| format!("SHA256:{sha}")),
                signer: None,
                reason: (status != SignatureStatus::Good).then(|| "why".into()),
            },
        }
    }

    use SignatureStatus::*;

    #[test]
    fn off_accepts_anything() {
        let h = check("h", Unsigned);
        assert_eq!(
            decide(Policy::Off, &h, &Range::Unknown { reason: "x".into() }),
            Decision::Accept
        );
    }

    #[test]
    fn head_policy_looks_only_at_the_head() {
        let bad_middle = Range::Commits(vec![check("m", Unsigned), check("h", Good)]);
        assert_eq!(
            decide(Policy::Head, &check("h", Good), &bad_middle),
            Decision::Accept
        );
        for s in [Unsigned, Signed, UnknownKey, Bad] {
            let d = decide(Policy::Head, &check("h", s), &Range::FirstApply);
            let Decision::Refuse(r) = d else {
                panic!("{s} accepted")
            };
            assert_eq!(r.commit, "h");
            assert_eq!(r.verification.unwrap().status, s);
        }
    }

    #[test]
    fn all_policy_names_the_first_commit_that_is_not_good() {
        let range = Range::Commits(vec![
            check("a", Good),
            check("b", Unsigned),
            check("c", UnknownKey),
            check("h", Good),
        ]);
        let Decision::Refuse(r) = decide(Policy::All, &check("h", Good), &range) else {
            panic!("accepted")
        };
        assert_eq!(r.commit, "b");
        assert_eq!(r.position, Some((2, 4)));
        assert_eq!(
            r.to_string(),
            "signature policy `all`: commit b (2 of 4 since the last applied commit) is not signed"
        );
    }

    #[test]
    fn all_policy_accepts_a_fully_signed_range_and_checks_an_unlisted_head() {
        let range = Range::Commits(vec![check("a", Good)]);
        assert_eq!(
            decide(Policy::All, &check("h", Good), &range),
            Decision::Accept
        );
        let Decision::Refuse(r) = decide(Policy::All, &check("h", Bad), &range) else {
            panic!("accepted")
        };
        assert_eq!((r.commit.as_str(), r.position), ("h", Some((2, 2))));
    }

    #[test]
    fn all_policy_refuses_a_range_it_cannot_enumerate() {
        let d = decide(
            Policy::All,
            &check("h", Good),
            &Range::Unknown {
                reason: "the last applied commit is not in the repository".into(),
            },
        );
        let Decision::Refuse(r) = d else {
            panic!("accepted")
        };
        assert!(r.to_string().contains("cannot tell which commits"), "{r}");
    }

    #[test]
    fn all_policy_on_the_first_apply_checks_the_head() {
        assert_eq!(
            decide(Policy::All, &check("h", Good), &Range::FirstApply),
            Decision::Accept
        );
        assert!(matches!(
            decide(Policy::All, &check("h", Unsigned), &Range::FirstApply),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn a_refusal_names_the_key_and_the_reason() {
        let mut c = check("0123456789abcdef", UnknownKey);
        c.verification.reason = Some("no allowed-signers line holds this key".into());
        let Decision::Refuse(r) = decide(Policy::Head, &c, &Range::FirstApply) else {
            panic!()
        };
        assert_eq!(
            r.to_string(),
            "signature policy `head`: commit 0123456789ab is signed by a key that is not trusted \
             (key SHA256:0123456789abcdef): no allowed-signers line holds this key"
        );
    }

    #[test]
    fn a_trust_source_without_a_policy_means_head() {
        assert_eq!(Policy::resolve(None, true), Policy::Head);
        assert_eq!(Policy::resolve(None, false), Policy::Off);
        assert_eq!(Policy::resolve(Some(Policy::All), false), Policy::All);
        assert_eq!(Policy::resolve(Some(Policy::Off), true), Policy::Off);
    }

    #[test]
    fn statuses_serialise_as_the_audit_trail_spells_them() {
        for (s, text) in [
            (Unsigned, "\"unsigned\""),
            (Signed, "\"signed\""),
            (Good, "\"good\""),
            (UnknownKey, "\"unknown-key\""),
            (Bad, "\"bad\""),
        ] {
            assert_eq!(serde_json::to_string(&s).unwrap(), text);
            assert_eq!(serde_json::from_str::<SignatureStatus>(text).unwrap(), s);
        }
    }

    #[test]
    fn a_summary_reads_in_one_line() {
        let mut v = check("k", Good).verification;
        v.signer = Some("alice@example.com".into());
        assert_eq!(v.summary(), "good (ssh SHA256:k, alice@example.com)");
        assert_eq!(Verification::unsigned().summary(), "unsigned");
    }
}
