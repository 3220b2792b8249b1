//! Storing a channel core's records (`entente_channel::Record`) and loading what restores it.

use entente_channel::{Life, Persisted, Record};
use entente_types::{Address, B256};

use crate::{Batch, ChannelRecord, ChannelStatus, MachineSource, Store, StoreError};

impl Batch<'_> {
    /// Adds a channel core's record for channel `channel` of participant `me`, whose machine is
    /// `machine`.
    pub fn record(
        &mut self,
        channel: B256,
        me: Address,
        machine: &MachineSource,
        record: Record,
    ) -> &mut Self {
        match record {
            Record::Life(life) => self
                .put_life(channel, life.encode())
                .put_machine(channel, machine),
            Record::Court(bytes) => self.put_court(channel, bytes),
            Record::Spec(spec) => self.put_channel(ChannelRecord {
                spec: *spec,
                me,
                machine: machine.clone(),
                status: ChannelStatus::Open,
            }),
            Record::Fork(fork, state) => self.put_fork(channel, fork, state),
            Record::Protocol(record) => self.persist(channel, record),
        }
    }
}

/// One stored channel, ready for `entente_channel::Channel::restore`.
#[derive(Debug)]
pub struct StoredChannel {
    /// Its id.
    pub channel_id: B256,
    /// Its machine, as given when it was proposed or accepted (known once it went live); one
    /// copy for every channel that runs it.
    pub machine: Option<std::sync::Arc<MachineSource>>,
    /// The stored participant (known once it went live).
    pub me: Option<Address>,
    /// What it restores from.
    pub persisted: Persisted,
}

impl Store {
    /// Every channel stored by a channel core, with what restores it: its life, the dispute
    /// handler's view, and for a channel that went live the protocol core's snapshot. A channel
    /// stored before lives were (a live or closed channel of an older data directory) gets a life
    /// rebuilt from its spec.
    pub fn stored_channels(&self) -> Result<Vec<StoredChannel>, StoreError> {
        let mut out = Vec::new();
        let lives = self.lives()?;
        let mut seen = std::collections::BTreeSet::new();
        for crate::store::StoredLife {
            channel_id,
            life,
            court,
            machine,
        } in lives
        {
            seen.insert(channel_id);
            let life = Life::decode(&life).map_err(|reason| StoreError::Corrupt {
                path: self.path().to_path_buf(),
                reason: format!("channel {channel_id} life: {reason}"),
            })?;
            let me = self.channel_owner(&channel_id)?;
            let snapshot = match me {
                Some(_) => Some(self.snapshot(&channel_id)?),
                None => None,
            };
            let machine = match (machine, me) {
                (Some(m), _) => Some(m),
                (None, Some(_)) => self.channel(&channel_id)?.map(|r| std::sync::Arc::new(r.machine)),
                (None, None) => None,
            };
            out.push(StoredChannel {
                channel_id,
                machine,
                me,
                persisted: Persisted {
                    life,
                    court,
                    snapshot,
                },
            });
        }
        for record in self.channels()? {
            let channel_id = record.spec.channel_id;
            if seen.contains(&channel_id) {
                continue;
            }
            let snapshot = self.snapshot(&channel_id)?;
            let life = Life::from_spec(&record.spec, 0, record.status == ChannelStatus::Closed);
            out.push(StoredChannel {
                channel_id,
                machine: Some(std::sync::Arc::new(record.machine.clone())),
                me: Some(record.me),
                persisted: Persisted {
                    life,
                    court: None,
                    snapshot: Some(snapshot),
                },
            });
        }
        Ok(out)
    }
}
