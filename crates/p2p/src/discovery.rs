//! Kademlia keys and record checks for finding a channel's participants.
//!
//! Two kinds of records are published:
//! - a provider record under [`channel_key`] for each channel a node is in: "I am in this
//!   channel" (the provider is the publishing PeerId itself, which Kademlia enforces);
//! - a value record under [`peer_record_key`]`(address)` holding the PeerId of that address.
//!
//! Neither is trusted: a PeerId is accepted for an address only if its embedded secp256k1 key
//! hashes to that address ([`eth_address_of`]), and a provider only if its address is a
//! participant of the channel. Nobody can therefore claim another participant's address.

use entente_types::{Address, B256};
use libp2p::PeerId;
use libp2p::kad::{ProviderRecord, Record, RecordKey};

use crate::identity::eth_address_of;

const CHANNEL_PREFIX: &[u8] = b"/entente/channel/";
const PEER_PREFIX: &[u8] = b"/entente/peer/";

/// The Kademlia key under which the participants of a channel announce themselves.
pub fn channel_key(channel_id: &B256) -> RecordKey {
    RecordKey::new(&[CHANNEL_PREFIX, channel_id.as_slice()].concat())
}

/// The Kademlia key of the record mapping an address to its PeerId.
pub fn peer_record_key(address: &Address) -> RecordKey {
    RecordKey::new(&[PEER_PREFIX, address.as_slice()].concat())
}

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("record key is not an entente peer key")]
    NotAPeerKey,
    #[error("record value is not a PeerId")]
    BadValue,
    #[error("PeerId {peer} has no secp256k1 key")]
    NotSecp256k1 { peer: PeerId },
    #[error("PeerId {peer} belongs to {actual}, not to {claimed}")]
    WrongAddress {
        peer: PeerId,
        claimed: Address,
        actual: Address,
    },
    #[error("record published by {publisher}, not by the PeerId it names")]
    WrongPublisher { publisher: PeerId },
}

/// Checks a peer record: the key names an address, the value is a PeerId whose key hashes to
/// it, and (when known) the publisher is that PeerId. Returns the verified pair.
pub(crate) fn verify_peer_record(record: &Record) -> Result<(Address, PeerId), RecordError> {
    let key = record.key.as_ref();
    let claimed = key
        .strip_prefix(PEER_PREFIX)
        .filter(|rest| rest.len() == 20)
        .map(Address::from_slice)
        .ok_or(RecordError::NotAPeerKey)?;
    let peer = PeerId::from_bytes(&record.value).map_err(|_| RecordError::BadValue)?;
    let actual = eth_address_of(&peer).ok_or(RecordError::NotSecp256k1 { peer })?;
    if actual != claimed {
        return Err(RecordError::WrongAddress {
            peer,
            claimed,
            actual,
        });
    }
    if let Some(publisher) = record.publisher
        && publisher != peer
    {
        return Err(RecordError::WrongPublisher { publisher });
    }
    Ok((actual, peer))
}

/// Checks a provider record before storing it for others: only entente keys and secp256k1
/// providers (whether the provider is a participant is checked by whoever looks it up).
pub(crate) fn verify_provider_record(record: &ProviderRecord) -> Result<Address, RecordError> {
    if !record.key.as_ref().starts_with(CHANNEL_PREFIX) {
        return Err(RecordError::NotAPeerKey);
    }
    eth_address_of(&record.provider).ok_or(RecordError::NotSecp256k1 {
        peer: record.provider,
    })
}
