//! The card's randomness: ChaCha20, seeded from the OS or, in deterministic mode, from a
//! fixed seed so that tests and CI runs repeat byte for byte. A deterministic key runs each
//! open on its own ChaCha stream (the open count is kept in its state file), so a restart
//! repeats nothing: no challenge comes back in the key's life.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub type SimRng = ChaCha20Rng;

/// A fresh RNG: from `seed` on stream `boot` when given, else from the operating system.
pub fn make_rng(seed: Option<u64>, boot: u64) -> SimRng {
    match seed {
        Some(s) => {
            let mut rng = ChaCha20Rng::seed_from_u64(s);
            rng.set_stream(boot);
            rng
        }
        None => ChaCha20Rng::from_rng(rand_core::OsRng).expect("the OS RNG is available"),
    }
}
