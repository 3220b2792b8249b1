//! Conversions between the shared [`entente_types::Transaction`] and the bindings' `Transaction`
//! structs: the same EIP-712 struct, field by field.

use crate::{IStateChannelEvents, IStateChannelManager};

macro_rules! transaction_conversions {
    ($binding:ty) => {
        impl From<entente_types::Transaction> for $binding {
            fn from(t: entente_types::Transaction) -> Self {
                Self {
                    channelId: t.channelId,
                    forkCnt: t.forkCnt,
                    height: t.height,
                    participant: t.participant,
                    timestamp: t.timestamp,
                    prevStateHash: t.prevStateHash,
                    stateHash: t.stateHash,
                    data: t.data,
                }
            }
        }

        impl From<$binding> for entente_types::Transaction {
            fn from(t: $binding) -> Self {
                Self {
                    channelId: t.channelId,
                    forkCnt: t.forkCnt,
                    height: t.height,
                    participant: t.participant,
                    timestamp: t.timestamp,
                    prevStateHash: t.prevStateHash,
                    stateHash: t.stateHash,
                    data: t.data,
                }
            }
        }
    };
}

transaction_conversions!(IStateChannelManager::Transaction);
transaction_conversions!(IStateChannelEvents::Transaction);

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, B256, Bytes};
    use alloy_sol_types::SolValue;

    use super::*;

    fn sample() -> entente_types::Transaction {
        entente_types::Transaction {
            channelId: B256::repeat_byte(1),
            forkCnt: 2,
            height: 3,
            participant: Address::repeat_byte(4),
            timestamp: 5,
            prevStateHash: B256::repeat_byte(6),
            stateHash: B256::repeat_byte(7),
            data: Bytes::from_static(&[8, 9]),
        }
    }

    #[test]
    fn round_trip_and_same_encoding() {
        let t = sample();
        let m = IStateChannelManager::Transaction::from(t.clone());
        let e = IStateChannelEvents::Transaction::from(t.clone());
        assert_eq!(m.abi_encode(), t.abi_encode());
        assert_eq!(e.abi_encode(), t.abi_encode());
        assert_eq!(entente_types::Transaction::from(m), t);
        assert_eq!(entente_types::Transaction::from(e), t);
    }
}
