//! Intents: moves signed by their issuer alone, for machines in which anyone may write
//! (`contracts/src/AIntentMachine.sol`). The height's sequencer applies them in one transaction
//! (`applyIntents`); the machine checks each one's channel, signature, nonce and expiry.
//!
//! An intent is not a transaction: its EIP-712 type and domain differ, so an issuer may sign many
//! without ever signing two transactions at one height.

use std::sync::OnceLock;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_sol_types::{Eip712Domain, SolStruct, eip712_domain};
use serde::{Deserialize, Serialize};

use crate::{Signature, Signer, TypesError, recover_signer};

alloy_sol_types::sol! {
    /// The EIP-712 struct `Intent` of `contracts/src/AIntentMachine.sol`, field for field.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Intent {
        bytes32 channelId;
        address issuer;
        uint64 nonce;
        uint64 notAfter;
        bytes data;
    }
}

/// The EIP-712 domain of intents: name "Entente Intent", version "1", nothing else (the channel
/// id inside the intent binds the chain and the manager).
pub fn intent_domain() -> &'static Eip712Domain {
    static DOMAIN: OnceLock<Eip712Domain> = OnceLock::new();
    DOMAIN.get_or_init(|| {
        eip712_domain! {
            name: "Entente Intent",
            version: "1",
        }
    })
}

impl Intent {
    /// The EIP-712 type string.
    pub fn type_string() -> String {
        <Self as SolStruct>::eip712_encode_type().into_owned()
    }

    /// The digest its issuer signs (the machine's `intentDigest`).
    pub fn digest(&self) -> B256 {
        let mut buf = [0u8; 66];
        buf[0] = 0x19;
        buf[1] = 0x01;
        buf[2..34].copy_from_slice(intent_domain().separator().as_slice());
        buf[34..66].copy_from_slice(self.eip712_hash_struct().as_slice());
        keccak256(buf)
    }
}

/// An intent with its issuer's signature, as peers send it and a sequencer applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIntent {
    /// The channel.
    pub channel_id: B256,
    /// Who asks for the move.
    pub issuer: Address,
    /// The issuer's count of applied intents before this one.
    pub nonce: u64,
    /// The last transaction timestamp it may be applied at (seconds).
    pub not_after: u64,
    /// ABI-encoded call of one of the machine's moves.
    pub data: Bytes,
    /// The issuer's signature over [`Intent::digest`].
    pub signature: Signature,
}

impl SignedIntent {
    /// Signs `data` as `signer`'s intent number `nonce` in `channel_id`, valid until `not_after`.
    pub fn sign<S: Signer + ?Sized>(
        signer: &S,
        channel_id: B256,
        nonce: u64,
        not_after: u64,
        data: Bytes,
    ) -> Result<Self, crate::SignError> {
        let issuer = signer.address();
        let intent = Intent {
            channelId: channel_id,
            issuer,
            nonce,
            notAfter: not_after,
            data: data.clone(),
        };
        let signature = signer.try_sign_digest(&intent.digest())?;
        Ok(Self {
            channel_id,
            issuer,
            nonce,
            not_after,
            data,
            signature,
        })
    }

    /// The EIP-712 struct.
    pub fn intent(&self) -> Intent {
        Intent {
            channelId: self.channel_id,
            issuer: self.issuer,
            nonce: self.nonce,
            notAfter: self.not_after,
            data: self.data.clone(),
        }
    }

    /// Checks that the issuer signed it.
    pub fn verify(&self) -> Result<(), TypesError> {
        let signer = recover_signer(&self.intent().digest(), &self.signature)?;
        if signer != self.issuer {
            return Err(TypesError::WrongSigner {
                expected: self.issuer,
                actual: signer,
            });
        }
        Ok(())
    }
}
