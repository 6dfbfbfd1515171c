//! What a check needs before it may go on, and the verdict when it may not (skipped, with
//! why): the given secrets' rules, the management key fitting the key.

use crate::catalog::Verdict;

/// The verdict when the key refuses (6A86) every algorithm the given management key fits.
pub fn other_algorithm(len: usize) -> Verdict {
    let fits = match len {
        24 => "3DES and AES-192",
        16 => "AES-128",
        _ => "AES-256",
    };
    Verdict::Skipped(format!(
        "the key refuses {fits} for its management key (6A86): it has a key of another algorithm; pass --mgmt-key"
    ))
}
