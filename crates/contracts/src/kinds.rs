//! The Solidity enums of `ChannelTypes.sol` as Rust enums. A JSON ABI records an enum as `uint8`,
//! so the bindings carry these values as `u8` (`Channel::status`, `StateProof::kind`,
//! `DisputeRecord::kind`, ...): convert with `as u8` / `u8::from` and `TryFrom<u8>`.

use crate::ContractsError;

macro_rules! sol_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)+
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value as u8
            }
        }

        impl TryFrom<u8> for $name {
            type Error = ContractsError;

            fn try_from(value: u8) -> Result<Self, ContractsError> {
                match value {
                    $($value => Ok(Self::$variant),)+
                    _ => Err(ContractsError::UnknownEnumValue { name: stringify!($name), value }),
                }
            }
        }
    };
}

sol_enum!(
    /// Life cycle of a channel in the manager (`Channel.status`).
    ChannelStatus {
        /// No such channel.
        None = 0,
        /// Opened, waiting for deposits.
        Funding = 1,
        /// Live.
        Open = 2,
        /// A dispute runs.
        Disputed = 3,
        /// Settled: exits are claimed with `withdraw`.
        Closed = 4,
        /// Funding failed: deposits are reclaimed.
        Cancelled = 5,
    }
);

sol_enum!(
    /// How a `StateProof` proves its state (`StateProof.kind`).
    ProofKind {
        /// The current fork's genesis.
        Genesis = 0,
        /// A transaction with the signatures of all current participants.
        Signed = 1,
        /// The fork's head: the state the chain computed from a posted transaction (the state must
        /// hash to the head; the transaction is ignored).
        Posted = 2,
    }
);

sol_enum!(
    /// What a dispute asks the chain to do (`DisputeRecord.kind`, `proveFraud`'s `kind`).
    DisputeKind {
        /// No dispute.
        None = 0,
        /// The next writer missed its deadline.
        Timeout = 1,
        /// A participant forces its exit.
        Exit = 2,
        /// A participant signed two transactions at one height.
        DoubleSign = 3,
        /// A transaction does not follow from its previous state.
        InvalidTransition = 4,
        /// A timestamp below its parent's.
        TimestampOutOfOrder = 5,
        /// No longer a fraud kind: the chain judges a future stamp when a transaction is posted.
        TimestampInFuture = 6,
        /// A transaction built on another state than the final one.
        WrongParent = 7,
        /// No longer used: a fraud proof that does not hold reverts.
        FalseFraudProof = 8,
        /// An agreed leave, carried out after the challenge period unless a later N-signed state
        /// cancels it.
        Leave = 9,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in 0..=u8::MAX {
            if let Ok(k) = DisputeKind::try_from(v) {
                assert_eq!(u8::from(k), v);
            }
        }
        assert_eq!(ChannelStatus::try_from(2), Ok(ChannelStatus::Open));
        assert_eq!(ProofKind::Posted as u8, 2);
        assert_eq!(DisputeKind::FalseFraudProof as u8, 8);
        assert_eq!(DisputeKind::Leave as u8, 9);
        assert!(ChannelStatus::try_from(6).is_err());
    }
}
