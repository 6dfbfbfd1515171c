//! The state file decoder: any payload, wrapped in a well-formed frame with a right checksum
//! (so the fuzzer reaches the decoders, not the checksum), and any whole file. An error or a
//! state that passes validation, never a panic; a state that decodes can be run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_sim::store::format;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else { return };
    let version = 1 + (which % 2) as u16;
    if let Ok((_, state)) = format::decode_payload(version, payload) {
        state.validate().expect("decoded states are valid");
        // A valid state runs: the card answers a few commands without panicking.
        let mut card = token_sim::piv::Card::new(state, token_sim::piv::NoStorage, token_sim::rng::make_rng(Some(1), 0));
        for apdu in [&b"\x00\x20\x00\x80"[..], b"\x00\xF7\x00\x9A\x00", b"\x00\xCB\x3F\xFF\x05\x5C\x03\x5F\xC1\x05\x00"] {
            assert!(card.transmit(apdu).len() >= 2);
        }
    }
    let _ = format::decode(data);
});
