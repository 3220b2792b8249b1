//! One secp256k1 key for both worlds: the participant's Ethereum address and its libp2p PeerId.

use entente_types::{Address, B256, keccak256};
use libp2p::PeerId;
use libp2p::identity::{self, Keypair, PublicKey};

use crate::P2pError;

/// Multihash code of the identity hash: PeerIds of small keys (secp256k1 among them) embed the key.
const IDENTITY_MULTIHASH: u64 = 0x00;

/// Builds the libp2p identity from a participant's 32-byte secp256k1 secret key (the same key
/// as its Ethereum account).
pub fn keypair_from_secret(secret: &B256) -> Result<Keypair, P2pError> {
    let mut bytes = secret.0;
    let secret =
        identity::secp256k1::SecretKey::try_from_bytes(&mut bytes).map_err(|_| P2pError::InvalidKey)?;
    Ok(identity::secp256k1::Keypair::from(secret).into())
}

/// The Ethereum address of a secp256k1 public key: the last 20 bytes of the keccak of its
/// uncompressed encoding (without the `0x04` prefix).
pub fn eth_address_of_key(key: &PublicKey) -> Option<Address> {
    let key = key.clone().try_into_secp256k1().ok()?;
    let uncompressed = key.to_bytes_uncompressed();
    let hash = keccak256(&uncompressed[1..]);
    Some(Address::from_slice(&hash[12..]))
}

/// The Ethereum address behind a PeerId, if the PeerId embeds a secp256k1 key.
///
/// A secp256k1 PeerId carries its public key (identity multihash), and the Noise handshake
/// proves the remote holds the matching secret key: the address of a connected peer is
/// therefore authenticated. Returns `None` for PeerIds of other key types or hashed keys.
pub fn eth_address_of(peer: &PeerId) -> Option<Address> {
    let multihash = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    eth_address_of_key(&key)
}

/// The PeerId a participant's secret key gives (the libp2p identity of [`keypair_from_secret`]).
pub fn peer_id_of_secret(secret: &B256) -> Result<PeerId, P2pError> {
    Ok(keypair_from_secret(secret)?.public().to_peer_id())
}
