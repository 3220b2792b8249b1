//! Encrypted key files in the Web3 Secret Storage format (version 3), as geth, foundry's `cast wallet`
//! and Python's `eth-account` write and read them.
//!
//! A file holds one secp256k1 key encrypted with AES-128-CTR under a key derived from a password by
//! scrypt (what [`encrypt`] writes) or PBKDF2-HMAC-SHA256 (read too); a MAC (keccak256 of the second half
//! of the derived key and the ciphertext) tells a wrong password from a right one before anything is
//! decrypted. See <https://ethereum.org/en/developers/docs/data-structures-and-encoding/web3-secret-storage/>.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aes::cipher::{KeyIvInit, StreamCipher};
use entente_types::{Address, B256, LocalSigner, Signer as _, keccak256};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// A secret key in memory, wiped when dropped and never printed.
pub struct SecretKey(B256);

impl SecretKey {
    /// Wraps a key.
    pub fn new(key: B256) -> Self {
        Self(key)
    }

    /// The key's bytes.
    pub fn expose(&self) -> &B256 {
        &self.0
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0.0);
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The password does not open this file (its MAC does not match).
    #[error("wrong password for this key file")]
    WrongPassword,
    /// The file is not a version 3 key file this implementation reads.
    #[error("not a Web3 Secret Storage (version 3) key file: {0}")]
    Malformed(String),
    /// A cipher or key derivation this implementation does not support.
    #[error("unsupported {what}: {name}")]
    Unsupported {
        /// `cipher`, `kdf` or `prf`.
        what: &'static str,
        /// The name in the file.
        name: String,
    },
    /// Key derivation parameters out of the range this implementation accepts.
    #[error("key derivation parameters out of range: {0}")]
    BadParams(String),
    /// The decrypted key is not a valid secp256k1 key.
    #[error("the file decrypts to an invalid secp256k1 key")]
    InvalidKey,
    /// The file names an address that is not the key's.
    #[error("the file says address {claimed} but holds the key of {actual}")]
    AddressMismatch {
        /// The address written in the file.
        claimed: Address,
        /// The key's address.
        actual: Address,
    },
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The cost of the scrypt derivation a new file is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    /// log2 of scrypt's `n` (18 is geth's standard, 12 its light setting).
    pub log_n: u8,
    /// scrypt's `r`.
    pub r: u32,
    /// scrypt's `p`.
    pub p: u32,
}

impl ScryptParams {
    /// geth's and foundry's standard cost: n = 2^18, r = 8, p = 1 (about 256 MiB and a second).
    pub const STANDARD: Self = Self {
        log_n: 18,
        r: 8,
        p: 1,
    };
    /// geth's light cost: n = 2^12, r = 8, p = 6 (for tests and throwaway development keys).
    pub const LIGHT: Self = Self {
        log_n: 12,
        r: 8,
        p: 6,
    };
}

/// A key file as stored: the JSON object of version 3.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// The encrypted key (geth once wrote it as `Crypto`).
    #[serde(alias = "Crypto")]
    pub crypto: CryptoSection,
    /// A UUID naming the file.
    pub id: String,
    /// Always 3.
    pub version: u32,
    /// The key's address, lower-case hex without `0x` (optional in the format; geth and foundry write it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("id", &self.id)
            .field("address", &self.address)
            .field("kdf", &self.crypto.kdf)
            .finish_non_exhaustive()
    }
}

/// The `crypto` section of a key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CryptoSection {
    /// `aes-128-ctr`.
    pub cipher: String,
    /// The cipher's parameters.
    pub cipherparams: CipherParams,
    /// The encrypted key, hex.
    pub ciphertext: String,
    /// `scrypt` or `pbkdf2`.
    pub kdf: String,
    /// The derivation's parameters (their fields depend on `kdf`).
    pub kdfparams: serde_json::Value,
    /// keccak256(derived key[16..32] ++ ciphertext), hex.
    pub mac: String,
}

/// The cipher's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CipherParams {
    /// The 16-byte counter's initial value, hex.
    pub iv: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptFields {
    dklen: usize,
    n: u64,
    r: u32,
    p: u32,
    salt: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pbkdf2Fields {
    c: u32,
    dklen: usize,
    prf: String,
    salt: String,
}

/// Limits on what a file may ask of us: a hostile file must not make the reader allocate gigabytes
/// or spin for hours.
const MAX_SCRYPT_LOG_N: u8 = 20;
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

fn hex_field(name: &str, text: &str) -> Result<Vec<u8>, KeystoreError> {
    hex::decode(text.trim_start_matches("0x")).map_err(|e| KeystoreError::Malformed(format!("{name}: {e}")))
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The operating system's generator; without it there is no safe key file to write.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut out).expect("the operating system's random generator is unavailable");
    out
}

/// A random (version 4) UUID.
fn uuid_v4() -> String {
    let mut b = random::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn scrypt_key(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
    dklen: usize,
) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    let memory = 128u64
        .saturating_mul(u64::from(r))
        .saturating_mul(1u64 << log_n.min(63));
    if log_n == 0 || log_n > MAX_SCRYPT_LOG_N || r == 0 || p == 0 || p > 64 || memory > MAX_SCRYPT_MEMORY {
        return Err(KeystoreError::BadParams(format!(
            "scrypt n = 2^{log_n}, r = {r}, p = {p}"
        )));
    }
    let mut key = Zeroizing::new(vec![0u8; dklen]);
    crate::scrypt::scrypt(password, salt, log_n, r as usize, p as usize, &mut key);
    Ok(key)
}

/// Encrypts `secret` under `password`: a new key file (scrypt with `params`, a fresh salt, IV and id).
pub fn encrypt(secret: &B256, password: &[u8], params: ScryptParams) -> Result<KeyFile, KeystoreError> {
    let signer = LocalSigner::from_bytes(secret).map_err(|_| KeystoreError::InvalidKey)?;
    let salt = random::<32>();
    let iv = random::<16>();
    let derived = scrypt_key(password, &salt, params.log_n, params.r, params.p, 32)?;
    let mut ciphertext = secret.0.to_vec();
    Aes128Ctr::new(derived[..16].into(), (&iv).into()).apply_keystream(&mut ciphertext);
    let mac = keccak256([&derived[16..32], &ciphertext[..]].concat());
    Ok(KeyFile {
        crypto: CryptoSection {
            cipher: "aes-128-ctr".into(),
            cipherparams: CipherParams { iv: hex::encode(iv) },
            ciphertext: hex::encode(&ciphertext),
            kdf: "scrypt".into(),
            kdfparams: serde_json::json!({
                "dklen": 32,
                "n": 1u64 << params.log_n,
                "r": params.r,
                "p": params.p,
                "salt": hex::encode(salt),
            }),
            mac: hex::encode(mac),
        },
        id: uuid_v4(),
        version: 3,
        address: Some(hex::encode(signer.address())),
    })
}

/// Opens a key file with `password`: the secret key, after checking the MAC (a wrong password is
/// [`KeystoreError::WrongPassword`]) and, when the file names one, that the address is the key's.
pub fn decrypt(file: &KeyFile, password: &[u8]) -> Result<SecretKey, KeystoreError> {
    if file.version != 3 {
        return Err(KeystoreError::Malformed(format!("version {}", file.version)));
    }
    let c = &file.crypto;
    if c.cipher != "aes-128-ctr" {
        return Err(KeystoreError::Unsupported {
            what: "cipher",
            name: c.cipher.clone(),
        });
    }
    let derived = match c.kdf.as_str() {
        "scrypt" => {
            let f: ScryptFields = serde_json::from_value(c.kdfparams.clone())
                .map_err(|e| KeystoreError::Malformed(format!("scrypt parameters: {e}")))?;
            if !f.n.is_power_of_two() || f.n < 2 {
                return Err(KeystoreError::BadParams(format!(
                    "scrypt n = {} is not a power of two",
                    f.n
                )));
            }
            let log_n = f.n.trailing_zeros() as u8;
            if f.dklen < 32 || f.dklen > 64 {
                return Err(KeystoreError::BadParams(format!("dklen = {}", f.dklen)));
            }
            scrypt_key(password, &hex_field("salt", &f.salt)?, log_n, f.r, f.p, f.dklen)?
        }
        "pbkdf2" => {
            let f: Pbkdf2Fields = serde_json::from_value(c.kdfparams.clone())
                .map_err(|e| KeystoreError::Malformed(format!("pbkdf2 parameters: {e}")))?;
            if f.prf != "hmac-sha256" {
                return Err(KeystoreError::Unsupported {
                    what: "prf",
                    name: f.prf,
                });
            }
            if f.c == 0 || f.c > MAX_PBKDF2_ROUNDS || f.dklen < 32 || f.dklen > 64 {
                return Err(KeystoreError::BadParams(format!(
                    "pbkdf2 c = {}, dklen = {}",
                    f.c, f.dklen
                )));
            }
            let mut key = Zeroizing::new(vec![0u8; f.dklen]);
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &hex_field("salt", &f.salt)?, f.c, &mut key);
            key
        }
        other => {
            return Err(KeystoreError::Unsupported {
                what: "kdf",
                name: other.to_string(),
            });
        }
    };
    let mut ciphertext = hex_field("ciphertext", &c.ciphertext)?;
    let iv = hex_field("iv", &c.cipherparams.iv)?;
    let mac = hex_field("mac", &c.mac)?;
    if iv.len() != 16 || mac.len() != 32 || ciphertext.len() != 32 {
        return Err(KeystoreError::Malformed(
            "iv, mac or ciphertext of the wrong length".into(),
        ));
    }
    if keccak256([&derived[16..32], &ciphertext[..]].concat().as_slice()).0[..] != mac[..] {
        return Err(KeystoreError::WrongPassword);
    }
    Aes128Ctr::new(derived[..16].into(), iv.as_slice().into()).apply_keystream(&mut ciphertext);
    let secret = SecretKey(B256::from_slice(&ciphertext));
    zeroize::Zeroize::zeroize(&mut ciphertext);
    let signer = LocalSigner::from_bytes(secret.expose()).map_err(|_| KeystoreError::InvalidKey)?;
    if let Some(claimed) = file.address.as_deref() {
        let claimed: Address = hex_field("address", claimed)
            .ok()
            .filter(|b| b.len() == 20)
            .map(|b| Address::from_slice(&b))
            .ok_or_else(|| KeystoreError::Malformed(format!("address {claimed:?}")))?;
        if claimed != signer.address() {
            return Err(KeystoreError::AddressMismatch {
                claimed,
                actual: signer.address(),
            });
        }
    }
    Ok(secret)
}

impl KeyFile {
    /// Parses a key file's JSON.
    pub fn from_json(text: &str) -> Result<Self, KeystoreError> {
        serde_json::from_str(text).map_err(|e| KeystoreError::Malformed(e.to_string()))
    }

    /// Reads a key file.
    pub fn read(path: &Path) -> Result<Self, KeystoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeystoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Writes the file with mode 0600 (readable by its owner only), refusing to replace an existing one.
    pub fn write_new(&self, path: &Path) -> Result<(), KeystoreError> {
        let io = |source| KeystoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_string_pretty(self).map_err(|e| KeystoreError::Malformed(e.to_string()))?;
        let mut f = crate::files::create_private(path).map_err(io)?;
        f.write_all(json.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// The address the file names, if any.
    pub fn address(&self) -> Option<Address> {
        let b = hex::decode(self.address.as_deref()?.trim_start_matches("0x")).ok()?;
        (b.len() == 20).then(|| Address::from_slice(&b))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The two test vectors of the Web3 Secret Storage definition.
    const PASSWORD: &[u8] = b"testpassword";
    const SECRET: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
    const PBKDF2: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},
        "ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2",
        "kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},
        "mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},
        "id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;
    const SCRYPT: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"83dbcc02d8ccb40e466191a123791e0e"},
        "ciphertext":"d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c","kdf":"scrypt",
        "kdfparams":{"dklen":32,"n":262144,"r":1,"p":8,"salt":"ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19"},
        "mac":"2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097"},
        "id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;

    #[test]
    fn the_definitions_test_vectors_decrypt() {
        for vector in [PBKDF2, SCRYPT] {
            let file = KeyFile::from_json(vector).unwrap();
            assert_eq!(hex::encode(decrypt(&file, PASSWORD).unwrap().expose()), SECRET);
            assert!(matches!(
                decrypt(&file, b"testpassword!"),
                Err(KeystoreError::WrongPassword)
            ));
        }
    }

    #[test]
    fn what_is_written_reads_back_and_names_its_address() {
        let secret = B256::repeat_byte(7);
        let file = encrypt(&secret, b"pw", ScryptParams::LIGHT).unwrap();
        let again = KeyFile::from_json(&serde_json::to_string(&file).unwrap()).unwrap();
        assert_eq!(*decrypt(&again, b"pw").unwrap().expose(), secret);
        assert_eq!(
            again.address(),
            Some(LocalSigner::from_bytes(&secret).unwrap().address())
        );
        assert!(matches!(
            decrypt(&again, b"px"),
            Err(KeystoreError::WrongPassword)
        ));
        // two files of one key share nothing random
        let other = encrypt(&secret, b"pw", ScryptParams::LIGHT).unwrap();
        assert_ne!(other.id, file.id);
        assert_ne!(other.crypto.ciphertext, file.crypto.ciphertext);
    }

    #[test]
    fn hostile_or_broken_files_are_refused_with_a_reason() {
        let mut costly: serde_json::Value = serde_json::from_str(SCRYPT).unwrap();
        costly["crypto"]["kdfparams"]["n"] = serde_json::json!(1u64 << 30);
        let f = KeyFile::from_json(&costly.to_string()).unwrap();
        assert!(matches!(decrypt(&f, PASSWORD), Err(KeystoreError::BadParams(_))));
        let mut cipher: serde_json::Value = serde_json::from_str(SCRYPT).unwrap();
        cipher["crypto"]["cipher"] = serde_json::json!("aes-128-cbc");
        let f = KeyFile::from_json(&cipher.to_string()).unwrap();
        assert!(matches!(
            decrypt(&f, PASSWORD),
            Err(KeystoreError::Unsupported { what: "cipher", .. })
        ));
        let mut lie: serde_json::Value = serde_json::from_str(PBKDF2).unwrap();
        lie["address"] = serde_json::json!("00000000000000000000000000000000000000aa");
        let f = KeyFile::from_json(&lie.to_string()).unwrap();
        assert!(matches!(
            decrypt(&f, PASSWORD),
            Err(KeystoreError::AddressMismatch { .. })
        ));
        assert!(matches!(
            KeyFile::from_json("{}"),
            Err(KeystoreError::Malformed(_))
        ));
    }
}
