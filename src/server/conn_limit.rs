//! maxClientCnxns: connections per client IP across all shards. Touched
//! only at accept and close, never per request, so a mutex is fine here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct ConnectionLimiter {
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

/// Frees its slot when dropped.
pub struct ConnectionSlot {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    /// Takes a slot for `ip`, or None when `limit` (0 = unlimited) is reached.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, limit: u32) -> Option<ConnectionSlot> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(ip).or_insert(0);
        if limit != 0 && *count >= limit {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot { limiter: self.clone(), ip })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self.limiter.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get_mut(&self.ip) {
            *c -= 1;
            if *c == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_per_ip_and_slots_free_on_drop() {
        let l = Arc::new(ConnectionLimiter::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = l.try_acquire(a, 2).unwrap();
        let _s2 = l.try_acquire(a, 2).unwrap();
        assert!(l.try_acquire(a, 2).is_none());
        assert!(l.try_acquire(b, 2).is_some());
        drop(s1);
        assert!(l.try_acquire(a, 2).is_some());
        assert!(l.try_acquire(a, 0).is_some());
    }
}
