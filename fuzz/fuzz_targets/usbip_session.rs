//! What an importer sends a USB/IP server, as one byte stream after an accepted import: URB
//! submits and unlinks of any shape carried to a key's CCID device on the software bus. The
//! session must end (the stream closes) without a panic, whatever came, and the key must be
//! free for the next importer.
#![no_main]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use proto::clock::FixedClock;
use token_sim::frontends::usbip::conn::Conn;
use token_sim::frontends::usbip::server::{answer, Exports, KeyExports, Policy};
use token_sim::frontends::usbip::wire::OpRequest;
use token_sim::{KeySpec, SharedKey, VirtualKey};

fuzz_target!(|data: &[u8]| {
    static STATE: OnceLock<token_sim::piv::PersistentState> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let spec = KeySpec { seed: Some(1), ..KeySpec::default() };
        VirtualKey::in_memory(&spec, &FixedClock(1_790_000_000)).unwrap().card().state().clone()
    });
    let key = SharedKey::new(VirtualKey::in_memory_from(state.clone(), Some(1), 1));
    let exports = KeyExports::new(vec![key]);
    let (client, server) = UnixStream::pair().unwrap();
    let mut request = OpRequest::Import { busid: "1-1".into() }.encode();
    request.extend_from_slice(data);
    let mut writer = client.try_clone().unwrap();
    let feeding = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let mut reader = client;
    let draining = std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while reader.read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    // Idle: a stream that ends with IN URBs the device never answers still ends the session.
    let policy = Policy { idle: Some(Duration::from_millis(200)), ..Policy::default() };
    let mut conn = Conn::Unix(server);
    let _ = answer(&mut conn, &exports, &policy);
    conn.shutdown();
    drop(conn);
    feeding.join().unwrap();
    draining.join().unwrap();
    assert!(exports.plug("1-1").is_some(), "the key is free again");
});
