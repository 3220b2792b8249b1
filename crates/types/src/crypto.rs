use std::fmt;

use alloy_primitives::{Address, B256, keccak256};
use k256::ecdsa::{RecoveryId, Signature as K256Signature};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::TypesError;

/// A 65-byte Ethereum ECDSA signature `r || s || v` with `v` in {27, 28} and low `s`, the form
/// OpenZeppelin's `ECDSA.recover` accepts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 65]);

impl Signature {
    /// Parses and validates 65 bytes (length, `v`, low `s`).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TypesError> {
        let raw: [u8; 65] = bytes
            .try_into()
            .map_err(|_| TypesError::SignatureLength(bytes.len()))?;
        let sig = Self(raw);
        sig.parts()?;
        Ok(sig)
    }

    /// The raw 65 bytes.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// The `(r || s, recovery id)` pair, rejecting a bad `v` or a high `s`.
    fn parts(&self) -> Result<(K256Signature, RecoveryId), TypesError> {
        let v = self.0[64];
        let recid = match v {
            27 | 28 => v - 27,
            other => return Err(TypesError::SignatureRecoveryId(other)),
        };
        let sig = K256Signature::from_slice(&self.0[..64]).map_err(|_| TypesError::SignatureInvalid)?;
        if sig.normalize_s().is_some() {
            return Err(TypesError::SignatureHighS);
        }
        let recid = RecoveryId::from_byte(recid).ok_or(TypesError::SignatureRecoveryId(v))?;
        Ok((sig, recid))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("65 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                Signature::from_slice(v).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut raw = [0u8; 65];
                for (i, slot) in raw.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(66, &self));
                }
                Signature::from_slice(&raw).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

/// Recovers the address that produced `signature` over `digest`. Rejects malformed and
/// malleable (high-s) signatures.
///
/// The signature is parsed and checked with k256 (`r` and `s` in range, low `s`, `v` 27 or 28);
/// the public key is recovered with libsecp256k1.
pub fn recover_signer(digest: &B256, signature: &Signature) -> Result<Address, TypesError> {
    let (_, recid) = signature.parts()?;
    let recid = secp256k1::ecdsa::RecoveryId::try_from(i32::from(recid.to_byte()))
        .map_err(|_| TypesError::SignatureRecoveryId(signature.0[64]))?;
    let sig = secp256k1::ecdsa::RecoverableSignature::from_compact(&signature.0[..64], recid)
        .map_err(|_| TypesError::SignatureInvalid)?;
    let key = secp256k1::SECP256K1
        .recover_ecdsa(secp256k1::Message::from_digest(digest.0), &sig)
        .map_err(|_| TypesError::SignatureInvalid)?;
    Ok(address_of_uncompressed(&key.serialize_uncompressed()))
}

/// The Ethereum address of an uncompressed SEC1 public key (`0x04 || x || y`).
fn address_of_uncompressed(point: &[u8; 65]) -> Address {
    let hash = keccak256(&point[1..]);
    Address::from_slice(&hash[12..])
}

/// Recovery with k256 alone: the reference the libsecp256k1 backend is tested against.
#[cfg(test)]
fn recover_signer_k256(digest: &B256, signature: &Signature) -> Result<Address, TypesError> {
    let (sig, recid) = signature.parts()?;
    let key = k256::ecdsa::VerifyingKey::recover_from_prehash(digest.as_slice(), &sig, recid)
        .map_err(|_| TypesError::SignatureInvalid)?;
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    Ok(Address::from_slice(&hash[12..]))
}

/// Why a [`Signer`] gave no signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Not yet: the signature is being made elsewhere (a remote signer, a wallet waiting for its
    /// user). Asked again later, the signer answers with it.
    #[error("the signature is not ready yet")]
    Pending,
    /// The signer failed or refused; asking again may succeed.
    #[error("the signer failed: {0}")]
    Failed(String),
}

/// Something that signs EIP-712 digests for one participant. Implemented by [`LocalSigner`]; a
/// hardware wallet, a remote signer or a faster backend can implement it too.
///
/// A signer may be asynchronous: it answers [`SignError::Pending`] while it works and the
/// signature when asked again; and it may fail. The cores never wait for it: what could not be
/// signed is tried again on their next timeout (and nothing is sent unsigned).
pub trait Signer {
    /// The participant's address.
    fn address(&self) -> Address;
    /// Signs a 32-byte digest (no further hashing), returning a low-s signature.
    fn try_sign_digest(&self, digest: &B256) -> Result<Signature, SignError>;
}

impl<T: Signer + ?Sized> Signer for std::sync::Arc<T> {
    fn address(&self) -> Address {
        (**self).address()
    }

    fn try_sign_digest(&self, digest: &B256) -> Result<Signature, SignError> {
        (**self).try_sign_digest(digest)
    }
}

/// A secp256k1 private key held in memory; signs with libsecp256k1 (RFC 6979 nonces, low `s`).
#[derive(Clone)]
pub struct LocalSigner {
    key: secp256k1::SecretKey,
    address: Address,
}

impl LocalSigner {
    /// From a 32-byte private key.
    pub fn from_bytes(key: &B256) -> Result<Self, TypesError> {
        let key = secp256k1::SecretKey::from_byte_array(key.0).map_err(|_| TypesError::InvalidKey)?;
        let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &key);
        let address = address_of_uncompressed(&public.serialize_uncompressed());
        Ok(Self { key, address })
    }

    /// The private key bytes (for persisting or deriving the libp2p identity).
    pub fn to_bytes(&self) -> B256 {
        B256::from(self.key.secret_bytes())
    }
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Signer for LocalSigner {
    fn address(&self) -> Address {
        self.address
    }

    fn try_sign_digest(&self, digest: &B256) -> Result<Signature, SignError> {
        Ok(self.sign_digest(digest))
    }
}

impl LocalSigner {
    /// Signs a 32-byte digest (no further hashing), returning a low-s signature; a key in memory
    /// never fails.
    pub fn sign_digest(&self, digest: &B256) -> Signature {
        // RFC 6979 deterministic nonces; libsecp256k1 always produces low-s signatures (and
        // the recovery id that goes with them).
        let sig =
            secp256k1::SECP256K1.sign_ecdsa_recoverable(secp256k1::Message::from_digest(digest.0), &self.key);
        let (recid, compact) = sig.serialize_compact();
        let mut raw = [0u8; 65];
        raw[..64].copy_from_slice(&compact);
        raw[64] = 27 + u8::from(i32::from(recid) == 1);
        Signature(raw)
    }
}

/// Signing with k256 alone: the reference the libsecp256k1 backend is tested against.
#[cfg(test)]
fn sign_k256(key: &B256, digest: &B256) -> Signature {
    let key = k256::ecdsa::SigningKey::from_slice(key.as_slice()).unwrap();
    let (sig, recid) = key.sign_prehash_recoverable(digest.as_slice()).unwrap();
    let (sig, recid) = match sig.normalize_s() {
        Some(low) => (low, RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced())),
        None => (sig, recid),
    };
    let mut raw = [0u8; 65];
    raw[..64].copy_from_slice(&sig.to_bytes());
    raw[64] = 27 + recid.to_byte();
    Signature(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(n: u8) -> LocalSigner {
        LocalSigner::from_bytes(&B256::repeat_byte(n)).unwrap()
    }

    #[test]
    fn sign_and_recover_round_trip() {
        let s = signer(3);
        let digest = keccak256(b"entente");
        let sig = s.sign_digest(&digest);
        assert_eq!(recover_signer(&digest, &sig).unwrap(), s.address());
        assert_ne!(recover_signer(&keccak256(b"other"), &sig).unwrap(), s.address());
    }

    #[test]
    fn known_address_of_key_one() {
        // The address of private key 1 is a well-known constant.
        let mut key = [0u8; 32];
        key[31] = 1;
        let s = LocalSigner::from_bytes(&B256::from(key)).unwrap();
        assert_eq!(
            s.address(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
                .parse::<Address>()
                .unwrap()
        );
    }

    #[test]
    fn high_s_is_rejected() {
        let s = signer(5);
        let digest = keccak256(b"malleable");
        let sig = s.sign_digest(&digest);
        // Flip to the malleable twin: s' = n - s, v' = v ^ 1.
        let k = K256Signature::from_slice(&sig.as_bytes()[..64]).unwrap();
        let (r, s_low) = k.split_scalars();
        let high = K256Signature::from_scalars(r, -*s_low).unwrap();
        let mut raw = [0u8; 65];
        raw[..64].copy_from_slice(&high.to_bytes());
        raw[64] = 55 - sig.as_bytes()[64]; // 27 <-> 28
        assert_eq!(Signature::from_slice(&raw), Err(TypesError::SignatureHighS));
    }

    #[test]
    fn libsecp256k1_and_k256_sign_and_recover_identically() {
        for i in 1u8..=64 {
            let key = keccak256([i]);
            let s = LocalSigner::from_bytes(&key).unwrap();
            let digest = keccak256([i, 0xee]);
            let sig = s.sign_digest(&digest);
            // Both use RFC 6979 nonces and low s: byte-identical signatures.
            assert_eq!(sig, sign_k256(&key, &digest), "key {i}");
            assert_eq!(recover_signer(&digest, &sig), recover_signer_k256(&digest, &sig));
            assert_eq!(recover_signer(&digest, &sig), Ok(s.address()));
            let other = keccak256([i, 0xdd]);
            assert_eq!(recover_signer(&other, &sig), recover_signer_k256(&other, &sig));
            // A corrupted r: both refuse or both recover the same (wrong) key.
            let mut raw = *sig.as_bytes();
            raw[5] ^= 0x40;
            if let Ok(bad) = Signature::from_slice(&raw) {
                assert_eq!(recover_signer(&digest, &bad), recover_signer_k256(&digest, &bad));
            }
        }
    }

    #[test]
    fn bad_v_and_length_are_rejected() {
        let s = signer(6);
        let mut raw = *s.sign_digest(&B256::ZERO).as_bytes();
        raw[64] = 1;
        assert_eq!(
            Signature::from_slice(&raw),
            Err(TypesError::SignatureRecoveryId(1))
        );
        assert_eq!(
            Signature::from_slice(&raw[..64]),
            Err(TypesError::SignatureLength(64))
        );
    }

    #[test]
    fn invalid_private_key_is_rejected() {
        assert_eq!(
            LocalSigner::from_bytes(&B256::ZERO).unwrap_err(),
            TypesError::InvalidKey
        );
    }
}
