//! What pcscd sends through vpcd, as one byte stream: frames read (length prefix, payload),
//! parsed into requests (controls or APDUs) and answered by a key, as a session does.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proto::clock::FixedClock;
use token_sim::frontends::vpcd::{answer, encode, read_frame, Request};
use token_sim::{KeySpec, VirtualKey};

fuzz_target!(|data: &[u8]| {
    static STATE: OnceLock<token_sim::piv::PersistentState> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let spec = KeySpec { seed: Some(1), ..KeySpec::default() };
        VirtualKey::in_memory(&spec, &FixedClock(1_790_000_000)).unwrap().card().state().clone()
    });
    let mut key = VirtualKey::in_memory_from(state.clone(), Some(1), 1);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut stream = data;
    rt.block_on(async {
        while let Ok(payload) = read_frame(&mut stream, |_| {}).await {
            if let Ok(request) = Request::parse(&payload) {
                let is_apdu = matches!(request, Request::Apdu(_));
                if let Some(reply) = answer(&mut key, request) {
                    assert!(!is_apdu || reply.len() >= 2, "an APDU answer carries a status word");
                    assert_eq!(encode(&reply).len(), reply.len() + 2);
                }
            }
        }
    });
});
