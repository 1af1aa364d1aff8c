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
    /// The address it counts for; `None` while a trusted proxy's connection has
    /// not said whose it is (its PROXY header).
    ip: Option<IpAddr>,
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
            ip: Some(ip),
        })
    }

    /// Takes a slot for a connection whose client address is not known yet (a
    /// trusted proxy's, before its PROXY header): it counts in all only until
    /// [`Slot::assign`] gives it an address.
    ///
    /// # Errors
    ///
    /// Every slot is taken.
    pub fn take_unassigned(self: &Arc<Self>) -> Result<Slot, Refused> {
        let mut c = self.lock();
        if c.total >= self.max_total {
            return Err(Refused::Full(c.total));
        }
        c.total += 1;
        Ok(Slot {
            slots: self.clone(),
            ip: None,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

impl Slot {
    /// Counts an unassigned slot ([`ConnectionSlots::take_unassigned`]) for
    /// `ip` from now on. A slot that has an address keeps it.
    ///
    /// # Errors
    ///
    /// Every slot of that address is taken (the slot still counts in all until
    /// dropped).
    pub fn assign(&mut self, ip: IpAddr) -> Result<(), Refused> {
        if self.ip.is_some() {
            return Ok(());
        }
        let ip = ip.to_canonical();
        let mut c = self.slots.lock();
        let of_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if of_ip >= self.slots.max_per_address {
            return Err(Refused::AddressFull(of_ip));
        }
        *c.per_ip.entry(ip).or_insert(0) += 1;
        self.ip = Some(ip);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.lock();
        c.total = c.total.saturating_sub(1);
        let Some(ip) = self.ip else { return };
        if let Some(n) = c.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_ip.remove(&ip);
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

    /// A trusted proxy's connection counts in all at once, and for the
    /// address its PROXY header carries once that is read.
    #[test]
    fn an_unassigned_slot_counts_for_the_address_it_is_given() {
        let slots = ConnectionSlots::new(4, 1);
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let mut pending = slots.take_unassigned().expect("pending");
        let _other = slots.take_unassigned().expect("another pending");
        assert_eq!(slots.open(), 2);
        pending.assign(client).expect("the client's first");
        assert_eq!(slots.take(client).err(), Some(Refused::AddressFull(1)));
        let mut second = slots.take_unassigned().expect("pending");
        assert_eq!(second.assign(client), Err(Refused::AddressFull(1)));
        assert_eq!(slots.open(), 3, "a refused one counts until dropped");
        drop(second);
        drop(pending);
        let _again = slots.take(client).expect("the address's slot came back");
        let _third = slots.take_unassigned().expect("the third");
        let _fourth = slots.take_unassigned().expect("the fourth");
        assert_eq!(slots.take_unassigned().err(), Some(Refused::Full(4)));
    }
}
