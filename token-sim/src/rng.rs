//! The card's randomness: ChaCha20, seeded from the OS or, in deterministic mode, from a
//! fixed seed so that tests and CI runs repeat byte for byte.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub type SimRng = ChaCha20Rng;

/// A fresh RNG: from `seed` when given, else from the operating system.
pub fn make_rng(seed: Option<u64>) -> SimRng {
    match seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_rng(rand_core::OsRng).expect("the OS RNG is available"),
    }
}
