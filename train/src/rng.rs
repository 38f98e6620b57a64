//! The crate's seeded random number generator: a thin wrapper over
//! [`rand_chacha::ChaCha8Rng`] (ChaCha with 8 rounds, from the `rand` project), used through
//! the `rand` 0.8 traits. It drives weight initialization and data shuffling, so a run is
//! fully determined by its seed. No generator is implemented here: the wrapper only fixes how
//! a seed and a stream name select a ChaCha stream and which `rand` samplers are used, so
//! that every draw is reproducible (ChaCha8 is portable: equal seeds give equal streams on
//! every platform). Not for cryptography as used here (the seed is a small integer).

use rand::seq::SliceRandom;
use rand::{Rng as _, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded ChaCha8 generator.
#[derive(Debug, Clone)]
pub struct Rng {
    inner: ChaCha8Rng,
}

impl Rng {
    /// A generator seeded with `seed` (`ChaCha8Rng::seed_from_u64`, stream 0).
    pub fn new(seed: u64) -> Self {
        Self { inner: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// A generator for a named sub-stream of `seed` (e.g. one per layer), so that adding a
    /// layer does not shift the numbers drawn for the others: the key comes from `seed` and
    /// the ChaCha stream number is the 64-bit FNV-1a hash of `stream`.
    pub fn derive(seed: u64, stream: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in stream.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(h);
        Self { inner }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in `[0, 1)` (`rand`'s standard `f64`: 53 bits of resolution).
    pub fn next_f64(&mut self) -> f64 {
        self.inner.gen::<f64>()
    }

    /// Uniform integer in `0..n` (`n > 0`), unbiased (`rand`'s `gen_range`, sampled as `u64`
    /// so the stream does not depend on the width of `usize`).
    pub fn below(&mut self, n: usize) -> usize {
        self.inner.gen_range(0..n as u64) as usize
    }

    /// Standard normal sample (Box-Muller on two uniform draws).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // in (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform random permutation in place (`rand`'s `SliceRandom::shuffle`, Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.inner);
    }
}
