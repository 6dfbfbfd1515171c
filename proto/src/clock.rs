//! Time as an injected dependency, so expiry can be tested without waiting.

/// Seconds since the Unix epoch, from whatever source the caller wires in.
pub trait Clock: Send + Sync {
    fn now_unix(&self) -> u64;
}

/// A clock that reads the operating system's time.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// A clock that says what it is told: for tests and scenarios.
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_unix(&self) -> u64 {
        self.0
    }
}
