//! SSH commit signatures (git's `gpg.format ssh`): an armoured SSHSIG in namespace
//! `git` over the commit without its `gpgsig` header, checked against an OpenSSH
//! allowed-signers file.
//!
//! The file's format is `ssh-keygen(1)`'s ALLOWED SIGNERS: one key per line,
//! `principals [options] keytype base64-key [comment]`, `#` comments. Options:
//! `namespaces="git,…"` (the key may sign only in these), `valid-after=` and
//! `valid-before=` (`YYYYMMDD[HHMM[SS]]Z`: drover reads only UTC times, since a
//! local time would mean something else on another machine) and `cert-authority`
//! (certificate signatures are not supported: such a line never matches).
//! Key parsing and signature checks are `ssh-key`'s; the line format is parsed
//! here because `ssh-key` has no parser for it.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use ssh_key::{HashAlg, PublicKey, SshSig};

use super::SignatureError;
use crate::core::trust::{SignatureFormat, SignatureStatus, Verification};

/// The namespace git signs commits in.
pub const NAMESPACE: &str = "git";

#[derive(Debug, Clone)]
struct Entry {
    principals: String,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    valid_after: Option<Timestamp>,
    valid_before: Option<Timestamp>,
    cert_authority: bool,
    line: usize,
}

/// A parsed allowed-signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// Splits the first whitespace-separated token off `s`, honouring double quotes
/// (as OpenSSH does for principals and option values).
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Some((&s[..i], &s[i..])),
            _ => {}
        }
    }
    Some((s, ""))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// Splits options at commas outside quotes.
fn split_options(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn is_key_type(s: &str) -> bool {
    s.starts_with("ssh-") || s.starts_with("ecdsa-sha2-") || s.starts_with("sk-")
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, with a `Z`.
fn parse_time(v: &str) -> Result<Timestamp, String> {
    let digits = v.strip_suffix(['Z', 'z']).ok_or_else(|| {
        format!("`{v}`: drover reads only UTC times here; add a Z (like 20260101Z)")
    })?;
    if !digits.chars().all(|c| c.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(format!("`{v}` is not a time like YYYYMMDD[HHMM[SS]]Z"));
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).map_or(Ok(0), str::parse::<i16>);
    let bad = |_| format!("`{v}` is not a time like YYYYMMDD[HHMM[SS]]Z");
    let dt = jiff::civil::DateTime::new(
        n(0..4).map_err(bad)?,
        n(4..6).map_err(bad)? as i8,
        n(6..8).map_err(bad)? as i8,
        n(8..10).map_err(bad)? as i8,
        n(10..12).map_err(bad)? as i8,
        n(12..14).map_err(bad)? as i8,
        0,
    )
    .map_err(|e| format!("`{v}`: {e}"))?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| format!("`{v}`: {e}"))
}

/// Whether a namespace pattern (`*` and `?` wildcards) matches `name`.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

impl AllowedSigners {
    /// Parses an allowed-signers file.
    ///
    /// # Errors
    /// The first line that is not understood, with its number.
    pub fn parse(path: &Path, text: &str) -> Result<AllowedSigners, SignatureError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |reason: String| SignatureError::ParseAllowedSigners {
                path: path.to_path_buf(),
                line,
                reason,
            };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (principals, rest) = token(l).ok_or_else(|| err("no principals".into()))?;
            let (next, after) =
                token(rest).ok_or_else(|| err("a principal, but no key after it".into()))?;
            let (options, key_text) = if is_key_type(next) {
                ("", rest.trim_start())
            } else {
                (next, after.trim_start())
            };
            let key = PublicKey::from_openssh(key_text)
                .map_err(|e| err(format!("not an OpenSSH public key: {e}")))?;
            let mut entry = Entry {
                principals: unquote(principals).to_string(),
                key,
                namespaces: None,
                valid_after: None,
                valid_before: None,
                cert_authority: false,
                line,
            };
            if !options.is_empty() {
                for opt in split_options(options) {
                    let (name, value) = match opt.split_once('=') {
                        Some((n, v)) => (n.to_ascii_lowercase(), Some(unquote(v))),
                        None => (opt.to_ascii_lowercase(), None),
                    };
                    match (name.as_str(), value) {
                        ("cert-authority", None) => entry.cert_authority = true,
                        ("namespaces", Some(v)) => {
                            entry.namespaces =
                                Some(v.split(',').map(|s| s.trim().to_string()).collect());
                        }
                        ("valid-after", Some(v)) => {
                            entry.valid_after = Some(parse_time(v).map_err(err)?);
                        }
                        ("valid-before", Some(v)) => {
                            entry.valid_before = Some(parse_time(v).map_err(err)?);
                        }
                        _ => return Err(err(format!("unknown option `{opt}`"))),
                    }
                }
            }
            entries.push(entry);
        }
        Ok(AllowedSigners {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Verifies an armoured SSH signature over `payload`.
    pub fn verify(
        &self,
        signature: &[u8],
        payload: &[u8],
        commit_time: i64,
        now: Timestamp,
    ) -> Verification {
        let v = |status, key: Option<String>, signer: Option<String>, reason: Option<String>| {
            Verification {
                status,
                format: Some(SignatureFormat::Ssh),
                key,
                signer,
                reason,
            }
        };
        let sig = match SshSig::from_pem(signature) {
            Ok(s) => s,
            Err(e) => {
                return v(
                    SignatureStatus::Bad,
                    None,
                    None,
                    Some(format!("not a valid SSH signature: {e}")),
                );
            }
        };
        let fp = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        let key = Some(fp);
        if sig.namespace() != NAMESPACE {
            return v(
                SignatureStatus::Bad,
                key,
                None,
                Some(format!(
                    "made for namespace `{}`, not `{NAMESPACE}`",
                    sig.namespace()
                )),
            );
        }
        let candidates: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !e.cert_authority && e.key.key_data() == sig.public_key())
            .collect();
        if candidates.is_empty() {
            return v(
                SignatureStatus::UnknownKey,
                key,
                None,
                Some(format!(
                    "no line of the allowed-signers file {} holds this key",
                    self.path.display()
                )),
            );
        }
        let made = Timestamp::from_second(commit_time).ok();
        let mut why_not = Vec::new();
        let mut allowed = None;
        for e in &candidates {
            if let Some(ns) = &e.namespaces
                && !ns.iter().any(|p| pattern_matches(p, NAMESPACE))
            {
                why_not.push(format!(
                    "line {}: the key may sign only in namespaces {}",
                    e.line,
                    ns.join(",")
                ));
                continue;
            }
            let mut in_time = true;
            for (what, t) in [("when the commit was made", made), ("now", Some(now))] {
                let Some(t) = t else {
                    in_time = false;
                    why_not.push(format!(
                        "line {}: the commit's time is out of range",
                        e.line
                    ));
                    break;
                };
                if e.valid_after.is_some_and(|a| t < a) || e.valid_before.is_some_and(|b| t >= b) {
                    in_time = false;
                    why_not.push(format!(
                        "line {}: the key is not valid {what} ({t})",
                        e.line
                    ));
                    break;
                }
            }
            if in_time {
                allowed = Some(*e);
                break;
            }
        }
        let Some(entry) = allowed else {
            return v(SignatureStatus::Bad, key, None, Some(why_not.join("; ")));
        };
        match entry.key.verify(NAMESPACE, payload, &sig) {
            Ok(()) => v(
                SignatureStatus::Good,
                key,
                Some(entry.principals.clone()),
                None,
            ),
            Err(e) => v(
                SignatureStatus::Bad,
                key,
                None,
                Some(format!(
                    "the signature does not match the commit (changed after signing?): {e}"
                )),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIKf9Uv19BFOh2FFBth6USq6oA52aGcs9YWxX785bUGb test";

    fn parse(text: &str) -> Result<AllowedSigners, SignatureError> {
        AllowedSigners::parse(Path::new("allowed_signers"), text)
    }

    #[test]
    fn lines_with_and_without_options_parse() {
        let a = parse(&format!(
            "# team\n\nalice@example.com {KEY}\n\"bob@example.com,carol@*\" namespaces=\"git,file\",valid-after=20260101Z,valid-before=\"202701011200Z\" {KEY}\n"
        ))
        .unwrap();
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.entries[0].principals, "alice@example.com");
        assert_eq!(a.entries[1].principals, "bob@example.com,carol@*");
        assert_eq!(
            a.entries[1].namespaces.as_deref(),
            Some(&["git".to_string(), "file".to_string()][..])
        );
        assert_eq!(
            a.entries[1].valid_before.unwrap().to_string(),
            "2027-01-01T12:00:00Z"
        );
    }

    #[test]
    fn a_bad_line_is_named_by_number() {
        let e = parse(&format!(
            "alice@example.com {KEY}\nbob@example.com ssh-ed25519 AAAA\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("allowed_signers:2: not an OpenSSH public key"),
            "{e}"
        );
        let e = parse(&format!("a@x valid-after=20260101 {KEY}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allowed_signers:1:") && e.contains("add a Z"),
            "{e}"
        );
        let e = parse(&format!("a@x restrict {KEY}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown option `restrict`"), "{e}");
        let e = parse("lonely@x\n").unwrap_err().to_string();
        assert!(e.contains("no key"), "{e}");
    }

    #[test]
    fn namespace_patterns_take_wildcards() {
        assert!(pattern_matches("git", "git"));
        assert!(pattern_matches("g*", "git"));
        assert!(pattern_matches("g?t", "git"));
        assert!(!pattern_matches("file", "git"));
    }

    #[test]
    fn garbage_is_a_bad_signature_not_a_panic() {
        let a = parse(&format!("alice@example.com {KEY}\n")).unwrap();
        let v = a.verify(
            b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
            b"payload",
            0,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(v.status, SignatureStatus::Bad);
    }
}
