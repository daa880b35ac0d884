//! Record values: the same deterministic bytes for every system.

use bytes::Bytes;

/// Distinct start positions in the block; prime, so values do not line up
/// with power-of-two sizes (as in `proglog bench`).
const PATTERN_SHIFTS: usize = 251;

/// Deterministic, incompressible record values of one size: windows into one
/// pseudo-random block, so a value costs no allocation (a `Bytes` slice) and
/// no two neighbours are equal.
#[derive(Debug, Clone)]
pub struct Payload {
    block: Bytes,
    size_bytes: usize,
}

impl Payload {
    /// Values of `size_bytes` bytes.
    pub fn new(size_bytes: usize) -> Self {
        // splitmix64 with a fixed seed: the same bytes on every run.
        let mut state: u64 = 0x5052_4f47_4c4f_4721;
        let mut block = Vec::with_capacity(size_bytes + PATTERN_SHIFTS + 8);
        while block.len() < size_bytes + PATTERN_SHIFTS {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            block.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Self {
            block: Bytes::from(block),
            size_bytes,
        }
    }

    /// Bytes per value.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// The value of record `index`.
    pub fn value(&self, index: u64) -> Bytes {
        let start = usize::try_from(index % PATTERN_SHIFTS as u64).unwrap_or(0);
        self.block.slice(start..start + self.size_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_sized_and_differ_from_their_neighbours() {
        let (a, b) = (Payload::new(100), Payload::new(100));
        for index in [0, 1, 250, 251, 1_000_000] {
            assert_eq!(a.value(index), b.value(index));
            assert_eq!(a.value(index).len(), 100);
        }
        assert_ne!(a.value(0), a.value(1));
    }
}
