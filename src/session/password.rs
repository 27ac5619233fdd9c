//! Session ids and passwords, bit-compatible with ZooKeeper's
//! SessionTrackerImpl so sessions can move between Java and Rust servers.

/// XORed into the session id to seed the password generator.
const PASSWORD_SEED_XOR: i64 = 0xB341_5C00;

/// java.util.Random's 48-bit linear congruential generator.
struct JavaRandom {
    state: u64,
}

impl JavaRandom {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn new(seed: i64) -> Self {
        JavaRandom { state: (seed as u64 ^ Self::MULTIPLIER) & Self::MASK }
    }

    /// `next(32)`: state bits 47..16 as an int.
    fn next_int(&mut self) -> i32 {
        self.state = self.state.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB) & Self::MASK;
        (self.state >> 16) as u32 as i32
    }

    /// `nextBytes`: one int per 4 bytes, least-significant byte first.
    fn next_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(4) {
            let word = self.next_int().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The 16-byte password of a session; depends only on the id.
pub fn session_password(session_id: i64) -> [u8; 16] {
    let mut out = [0u8; 16];
    JavaRandom::new(session_id ^ PASSWORD_SEED_XOR).next_bytes(&mut out);
    out
}

/// The first session id a server hands out:
/// `(serverId << 56) | ((monotonicMillis << 24) >>> 8)`, i.e. 40 clock bits
/// in bits 16..55 and the low 16 bits zero.
pub fn initial_session_id(server_id: u8, now_ms: i64) -> i64 {
    let clock_bits = ((now_ms << 24) as u64 >> 8) as i64;
    ((server_id as i64) << 56) | clock_bits
}

/// The newest of `ids` that `server_id` handed out (its top byte), or 0:
/// where that server's allocator must continue after a restore. Other
/// servers' ids in the same table must not count, or it would continue
/// into their range.
pub fn newest_own_session_id(server_id: u8, ids: impl IntoIterator<Item = i64>) -> i64 {
    ids.into_iter().filter(|id| (*id as u64 >> 56) as u8 == server_id).max().unwrap_or(0)
}

/// Hands out consecutive session ids, skipping the container owner marker
/// `0x8000000000000000` and 0 (which means "new session" on the wire).
#[derive(Debug, Clone)]
pub struct SessionIdAllocator {
    next: i64,
}

impl SessionIdAllocator {
    pub fn new(server_id: u8, now_ms: i64) -> Self {
        SessionIdAllocator { next: initial_session_id(server_id, now_ms) }
    }

    /// Continues after a restore so ids never repeat one already in use.
    pub fn starting_at(first: i64) -> Self {
        SessionIdAllocator { next: first }
    }

    pub fn next_id(&mut self) -> i64 {
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            if id != i64::MIN && id != 0 {
                return id;
            }
        }
    }

    /// The id `next_id` would consider next (for persistence/diagnostics).
    pub fn peek(&self) -> i64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_ids_bound_a_restored_allocator() {
        let mine = initial_session_id(3, 1_000) + 5;
        let theirs = initial_session_id(4, 900) + 9;
        assert_eq!(newest_own_session_id(3, [theirs, mine, mine - 2]), mine);
        assert_eq!(newest_own_session_id(3, [theirs]), 0);
        assert_eq!(newest_own_session_id(0, [theirs, mine]), 0);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn password_vectors() {
        assert_eq!(hex(&session_password(0x0000_0100_0000_0000)), "f22acdb797e69dd620a49b6b38eadb49");
        assert_eq!(hex(&session_password(0x1234_5678_90ab_cdef)), "f7721b383fd583ba74d220ede39f7b43");
        assert_eq!(hex(&session_password(1)), "054cc74a37327db215e702e20c73f005");
    }

    #[test]
    fn java_random_known_values() {
        // new java.util.Random(42).nextInt() == -1170105035
        assert_eq!(JavaRandom::new(42).next_int(), -1170105035);
    }

    #[test]
    fn initial_id_layout() {
        let id = initial_session_id(0, 0x12_3456_789A);
        assert_eq!(id, 0x0012_3456_789A_0000);
        let id = initial_session_id(3, 0x12_3456_789A);
        assert_eq!(id as u64 >> 56, 3);
        // clock bits above 40 are dropped
        assert_eq!(initial_session_id(0, 0xFF_0000_0000_0001), 0x0000_0000_0001_0000);
    }

    #[test]
    fn allocator_skips_reserved_ids() {
        let mut a = SessionIdAllocator::starting_at(i64::MAX);
        assert_eq!(a.next_id(), i64::MAX);
        assert_eq!(a.next_id(), i64::MIN + 1);
        let mut b = SessionIdAllocator::starting_at(-1);
        assert_eq!(b.next_id(), -1);
        assert_eq!(b.next_id(), 1);
        let mut c = SessionIdAllocator::new(0, 5);
        let first = c.next_id();
        assert_eq!(c.next_id(), first + 1);
    }
}
