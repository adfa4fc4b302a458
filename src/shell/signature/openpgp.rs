//! OpenPGP commit signatures (git's default `gpg.format openpgp`): an armoured
//! detached signature over the commit without its `gpgsig` header, checked against
//! a keyring of armoured public keys (`gpg --export --armor`, one or more blocks).
//!
//! Parsing and cryptography are rpgp's (`pgp`). rpgp checks a key's binding
//! signatures but has no notion of a key being valid at a time, so what makes a key
//! usable is decided here, failing closed: its self-signatures and subkey bindings
//! verify (checked when the keyring is read), it is not revoked, the key that
//! signed carries the signing flag, and it had not expired — neither when the
//! signature says it was made nor now. SHA-1 signatures are refused.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use pgp::composed::{Deserializable as _, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType};
use pgp::types::KeyDetails as _;

use super::SignatureError;
use crate::core::trust::{SignatureFormat, SignatureStatus, Verification};

/// Parsed trusted keys.
#[derive(Debug, Clone)]
pub struct Keyring {
    path: PathBuf,
    keys: Vec<SignedPublicKey>,
}

/// Upper-case hex, as `gpg --fingerprint` prints it (without spaces).
fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// The newest of `sigs` by creation time.
fn newest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
}

/// A signing-capable key found for a signature.
struct Signer<'a> {
    cert: &'a SignedPublicKey,
    /// `None`: the primary key signed; else the subkey's index.
    subkey: Option<usize>,
}

impl Keyring {
    /// Parses armoured public keys (several blocks may follow one another).
    ///
    /// # Errors
    /// A block that does not parse, or a key whose self-signatures do not verify.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Keyring, SignatureError> {
        let err = |reason: String| SignatureError::ParseKeyring {
            path: path.to_path_buf(),
            reason,
        };
        let (iter, _) = SignedPublicKey::from_reader_many(Cursor::new(bytes.to_vec()))
            .map_err(|e| err(format!("not an armoured OpenPGP public key: {e}")))?;
        let mut keys = Vec::new();
        for k in iter {
            let k = k.map_err(|e| err(format!("not an armoured OpenPGP public key: {e}")))?;
            k.verify_bindings().map_err(|e| {
                err(format!(
                    "key {}: its self-signatures do not verify: {e}",
                    hex_upper(k.fingerprint().as_bytes())
                ))
            })?;
            keys.push(k);
        }
        if keys.is_empty() {
            return Err(err("holds no public key".into()));
        }
        Ok(Keyring {
            path: path.to_path_buf(),
            keys,
        })
    }

    /// The key (primary or subkey) the signature names as its issuer.
    fn find(&self, sig: &Signature) -> Option<Signer<'_>> {
        let fps: Vec<Vec<u8>> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect();
        let ids: Vec<Vec<u8>> = sig
            .issuer_key_id()
            .iter()
            .map(|k| k.as_ref().to_vec())
            .collect();
        let matches =
            |fp: Vec<u8>, id: Vec<u8>| fps.contains(&fp) || (fps.is_empty() && ids.contains(&id));
        for cert in &self.keys {
            let p = &cert.primary_key;
            if matches(
                p.fingerprint().as_bytes().to_vec(),
                p.legacy_key_id().as_ref().to_vec(),
            ) {
                return Some(Signer { cert, subkey: None });
            }
            for (i, sk) in cert.public_subkeys.iter().enumerate() {
                if matches(
                    sk.key.fingerprint().as_bytes().to_vec(),
                    sk.key.legacy_key_id().as_ref().to_vec(),
                ) {
                    return Some(Signer {
                        cert,
                        subkey: Some(i),
                    });
                }
            }
        }
        None
    }

    /// Verifies an armoured detached signature over `payload`. An OpenPGP
    /// signature carries its own creation time: that, and `now`, are the times the
    /// key must be valid at (the commit's own date is not used).
    pub fn verify(
        &self,
        signature: &[u8],
        payload: &[u8],
        _commit_time: i64,
        now: Timestamp,
    ) -> Verification {
        let v = |status, key: Option<String>, signer: Option<String>, reason: Option<String>| {
            Verification {
                status,
                format: Some(SignatureFormat::Openpgp),
                key,
                signer,
                reason,
            }
        };
        let sig = match DetachedSignature::from_armor_single(Cursor::new(signature.to_vec())) {
            Ok((s, _)) => s.signature,
            Err(e) => {
                return v(
                    SignatureStatus::Bad,
                    None,
                    None,
                    Some(format!("not a valid OpenPGP signature: {e}")),
                );
            }
        };
        let named = sig
            .issuer_fingerprint()
            .first()
            .map(|f| hex_upper(f.as_bytes()))
            .or_else(|| sig.issuer_key_id().first().map(|k| hex_upper(k.as_ref())));
        let Some(signer) = self.find(&sig) else {
            return v(
                SignatureStatus::UnknownKey,
                named,
                None,
                Some(format!(
                    "no key of the keyring {} is the signature's issuer",
                    self.path.display()
                )),
            );
        };
        let cert = signer.cert;
        let (fp, created, binding) = match signer.subkey {
            None => (
                cert.primary_key.fingerprint(),
                cert.primary_key.created_at(),
                newest(
                    cert.details
                        .users
                        .iter()
                        .flat_map(|u| u.signatures.iter())
                        .chain(cert.details.direct_signatures.iter()),
                ),
            ),
            Some(i) => {
                let sk = &cert.public_subkeys[i];
                (
                    sk.key.fingerprint(),
                    sk.key.created_at(),
                    newest(
                        sk.signatures
                            .iter()
                            .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding)),
                    ),
                )
            }
        };
        let key = Some(hex_upper(fp.as_bytes()));
        let user = cert
            .details
            .users
            .first()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned());
        let bad = |reason: String| v(SignatureStatus::Bad, key.clone(), None, Some(reason));
        if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
            return bad(format!(
                "a {:?} signature, not a signature over data",
                sig.typ()
            ));
        }
        if sig.hash_alg() == Some(HashAlgorithm::Sha1) {
            return bad("made with SHA-1, which drover does not accept".into());
        }
        if !cert.details.revocation_signatures.is_empty() {
            return bad("the key is revoked".into());
        }
        if let Some(i) = signer.subkey
            && cert.public_subkeys[i]
                .signatures
                .iter()
                .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
        {
            return bad("the signing subkey is revoked".into());
        }
        let Some(binding) = binding else {
            return bad("the key has no self-signature".into());
        };
        if !binding.key_flags().sign() {
            return bad("the key is not marked for signing".into());
        }
        let Some(made) = sig.created() else {
            return bad("the signature has no creation time".into());
        };
        let made = i64::from(made.as_secs());
        let born = i64::from(created.as_secs());
        let expires = binding
            .key_expiration_time()
            .map(|d| born + std::time::Duration::from(d).as_secs() as i64);
        let sig_expires = sig
            .signature_expiration_time()
            .map(|d| made + std::time::Duration::from(d).as_secs() as i64);
        for (what, t) in [("when it signed", made), ("now", now.as_second())] {
            if t < born {
                return bad(format!("the key did not exist yet {what}"));
            }
            if expires.is_some_and(|e| t >= e) {
                return bad(format!("the key had expired {what}"));
            }
        }
        if sig_expires.is_some_and(|e| now.as_second() >= e) {
            return bad("the signature has expired".into());
        }
        let checked = match signer.subkey {
            None => sig.verify(&cert.primary_key, payload),
            Some(i) => sig.verify(&cert.public_subkeys[i].key, payload),
        };
        match checked {
            Ok(()) => v(SignatureStatus::Good, key, user, None),
            Err(e) => bad(format!(
                "the signature does not match the commit (changed after signing?): {e}"
            )),
        }
    }
}
