//! Connection slots: how many client connections the server holds at once, in
//! all and per client address, so that one address cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Default limit of connections from one address: a busy NVR or a NAT full of
/// players fits, and it is a sixteenth of the total.
pub const DEFAULT_CONNECTIONS_PER_ADDRESS: usize = 256;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0} connections are open, the limit")]
    Full(usize),
    #[error("{0} connections from this address are open, the limit per address")]
    AddressFull(usize),
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The open connections, in all and by client address.
pub struct ConnectionSlots {
    counts: Mutex<Counts>,
    max_total: usize,
    max_per_address: usize,
}

/// One taken slot; dropping it gives the slot back.
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    ip: IpAddr,
}

impl ConnectionSlots {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<ConnectionSlots> {
        Arc::new(ConnectionSlots {
            counts: Mutex::new(Counts::default()),
            max_total,
            max_per_address,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a connection from `ip`.
    ///
    /// # Errors
    ///
    /// Every slot, or every slot of that address, is taken.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = ip.to_canonical();
        let mut c = self.lock();
        if c.total >= self.max_total {
            return Err(Refused::Full(c.total));
        }
        let of_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if of_ip >= self.max_per_address {
            return Err(Refused::AddressFull(of_ip));
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot_and_slots_come_back() {
        let slots = ConnectionSlots::new(5, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = slots.take(a).expect("1");
        let _s2 = slots.take(mapped).expect("2, the same address");
        assert_eq!(slots.take(a).err(), Some(Refused::AddressFull(2)));
        let _b: Vec<Slot> = (0..2).map(|_| slots.take(b).expect("b")).collect();
        assert_eq!(slots.open(), 4);
        drop(s1);
        let _s3 = slots.take(a).expect("a slot came back");
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let _c = slots.take(c).expect("the fifth");
        assert_eq!(
            slots.take("192.0.2.4".parse().unwrap()).err(),
            Some(Refused::Full(5))
        );
    }
}
