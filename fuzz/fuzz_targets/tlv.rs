//! The BER-TLV and APDU parsers shared by card and host: no panic, and what parses re-encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = proto::CommandApdu::parse(data);
    for item in proto::tlv::iter(data) {
        if let Ok(t) = item {
            let again = proto::tlv::to_vec(t.tag, t.value);
            assert_eq!(proto::tlv::parse(&again).unwrap().0, t);
        }
    }
});
