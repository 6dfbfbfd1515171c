//! Row ids: random, or ordered by time where rows list in the order they were made.

/// A random 128-bit id, hex.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// An id that sorts by time of creation (nanoseconds, then random), so messages sent within
/// one second still list in the order they were sent.
pub(super) fn time_ordered_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:032x}{}", &new_id()[..8])
}
