//! Arbitrary bytes against the card's whole command surface: the input is cut into APDUs
//! (one length byte before each) and sent in order, after management-key authentication
//! half of the time. Any panic is a bug: the card must answer every byte string with a status word.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::clock::FixedClock;
use proto::Transport;
use token_sim::{KeySpec, VirtualKey};

fuzz_target!(|data: &[u8]| {
    let spec = KeySpec { seed: Some(1), ..KeySpec::default() };
    let mut key = VirtualKey::in_memory(&spec, &FixedClock(1_790_000_000)).unwrap();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (apdu, next) = tail.split_at(n);
        let r = key.transmit(apdu).unwrap();
        assert!(r.len() >= 2);
        rest = next;
    }
});
