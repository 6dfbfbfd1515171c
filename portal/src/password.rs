//! Password hashes: argon2id in PHC string form, random salt per password. Verification of an
//! unknown user still spends one hash, so timing does not tell which usernames exist.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Cost of a hash. `Cost::DEFAULT` follows OWASP's argon2id minimum (19 MiB, 2 passes);
/// tests and benchmarks may choose `Cost::FAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub passes: u32,
}

impl Cost {
    pub const DEFAULT: Cost = Cost { memory_kib: 19 * 1024, passes: 2 };
    pub const FAST: Cost = Cost { memory_kib: 1024, passes: 1 };

    fn argon2(self) -> Argon2<'static> {
        let params = Params::new(self.memory_kib, self.passes, 1, None).expect("valid argon2 parameters");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Hash a new password.
pub fn hash(password: &str, cost: Cost) -> String {
    let salt = SaltString::generate(&mut OsRng);
    cost.argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing cannot fail with valid parameters")
        .to_string()
}

/// Check a password against a stored hash (its own parameters apply).
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Spend what a verification costs, for a username that does not exist.
pub fn verify_nobody(password: &str, cost: Cost) {
    static DUMMY: std::sync::OnceLock<(Cost, String)> = std::sync::OnceLock::new();
    let (c, h) = DUMMY.get_or_init(|| (cost, hash("no such user", cost)));
    let h = if *c == cost { h.clone() } else { hash("no such user", cost) };
    let _ = verify(password, &h);
}

/// Password hashing off the async workers: each hash (19 MiB, tens of milliseconds of one
/// core) runs on tokio's blocking pool, at most `slots` at once, so a flood of password
/// logins queues here while key logins, which hash nothing, go on.
#[derive(Debug)]
pub struct Hasher {
    slots: tokio::sync::Semaphore,
    /// Cost of new hashes and of the dummy one for unknown usernames.
    pub cost: Cost,
    wait: std::time::Duration,
}

/// Every hashing slot stayed taken for the whole wait: the portal is overloaded.
#[derive(Debug, thiserror::Error)]
#[error("every password-hashing slot is busy")]
pub struct Busy;

impl Hasher {
    /// At most `slots` hashes at once; a request waits at most `wait` for one.
    pub fn new(slots: usize, cost: Cost, wait: std::time::Duration) -> Hasher {
        Hasher { slots: tokio::sync::Semaphore::new(slots.max(1)), cost, wait }
    }

    /// Check `password` against `stored`, or — `None`, an unknown username — spend what a
    /// check costs and answer `false`.
    pub async fn verify(&self, password: &proto::secret::Password, stored: Option<&str>) -> Result<bool, Busy> {
        let _slot = tokio::time::timeout(self.wait, self.slots.acquire()).await.map_err(|_| Busy)?.map_err(|_| Busy)?;
        let password = password.clone();
        let stored = stored.map(str::to_string);
        let cost = self.cost;
        tokio::task::spawn_blocking(move || match stored {
            Some(h) => verify(password.expose(), &h),
            None => {
                verify_nobody(password.expose(), cost);
                false
            }
        })
        .await
        .map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("correct horse", Cost::FAST);
        let b = hash("correct horse", Cost::FAST);
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse", &a));
        assert!(!verify("correct horsE", &a));
        assert!(!verify("correct horse", "not a hash"));
        assert!(hash("x", Cost::DEFAULT).contains("m=19456,t=2,p=1"));
    }
}
