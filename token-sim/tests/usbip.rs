//! The USB/IP server judged by Debian's `usbip` (user space; no kernel module needed):
//! `usbip list -r` shows every exported key with pid.codes' VID/PID and the smart-card
//! interface class; an import of a device the server does not offer is refused with USB/IP's
//! error status; a garbage request closes its connection and the server goes on. (Imports
//! that succeed are in host-driver/tests/ccid.rs and cli/tests/cli.rs.)
//! Under CI=true a missing `usbip` fails the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;

use token_sim::frontends::usbip::{device_record, server, wire};

fn usbip() -> Option<&'static str> {
    let path = "/usr/sbin/usbip";
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    assert!(std::env::var_os("CI").is_none(), "under CI the usbip package is needed (scripts/test.sh installs it)");
    eprintln!("SKIPPED: no {path} (apt install usbip)");
    None
}

#[test]
fn usbip_list_shows_every_served_key_and_bad_requests_only_end_their_connection() {
    let Some(usbip) = usbip() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        server::serve(listener, Arc::new(|| vec![device_record(1), device_record(2)]), server::Policy::default())
    });

    // Garbage first: that connection ends, the server stays.
    let mut bad = TcpStream::connect(("127.0.0.1", port)).unwrap();
    bad.write_all(&[0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0]).unwrap();
    let mut rest = Vec::new();
    assert_eq!(bad.read_to_end(&mut rest).unwrap(), 0, "an old protocol version gets no answer");

    let out = Command::new(usbip).args(["--tcp-port", &port.to_string(), "list", "-r", "127.0.0.1"]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for busid in ["1-1", "1-2"] {
        assert!(text.contains(&format!("{busid}: ")) && text.contains("(1209:0001)"), "{busid}:\n{text}");
    }
    assert_eq!(text.matches("Chip/SmartCard").count(), 2, "the interface class 0b/00/00:\n{text}");

    // An import is refused plainly (status 1), not left hanging.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&wire::OpRequest::Import { busid: "1-1".into() }.encode()).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, wire::encode_import(None));
}
