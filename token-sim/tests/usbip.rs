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
    testsupport::skip(format_args!("{path} (apt install usbip)"));
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

/// An importer that breaks the rules gets errors, and the device goes on working: a control
/// OUT with more data than its wLength stalls (it once wedged endpoint 0), IN URBs beyond the
/// per-endpoint cap are refused with -ENOMEM, and a seqnum submitted while still pending ends
/// the session.
#[test]
fn a_hostile_importer_gets_errors_and_the_device_keeps_working() {
    use std::time::Duration;
    use token_sim::frontends::usbip::server::KeyExports;
    use token_sim::frontends::usbip::session::MAX_PENDING_IN;
    use token_sim::{KeySpec, SharedKey, VirtualKey};
    use wire::{UrbCommand, UrbHeader, UrbReply};

    let key = VirtualKey::in_memory(&KeySpec::default(), &proto::clock::FixedClock(1_790_000_000)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let exports = Arc::new(KeyExports::new(vec![SharedKey::new(key)]));
    std::thread::spawn(move || server::serve(listener, exports, server::Policy::default()));

    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&wire::OpRequest::Import { busid: "1-1".into() }.encode()).unwrap();
    let mut buf = Vec::new();
    let used = loop {
        match wire::parse_import(&buf) {
            Ok((Some(_), used)) => break used,
            Ok((None, _)) => panic!("import refused"),
            Err(_) => {
                let mut more = [0u8; 512];
                let n = c.read(&mut more).expect("the import reply in time");
                assert!(n > 0, "closed during import");
                buf.extend_from_slice(&more[..n]);
            }
        }
    };
    buf.drain(..used);
    let submit = |c: &mut TcpStream, seqnum: u32, direction: u32, ep: u32, len: u32, setup: [u8; 8], data: &[u8]| {
        let header = UrbHeader { seqnum, devid: 0x10001, direction, ep };
        let cmd = UrbCommand::Submit {
            header,
            transfer_flags: 0,
            transfer_buffer_length: len,
            interval: 0,
            setup,
            data: data.to_vec(),
        };
        c.write_all(&cmd.encode()).unwrap();
    };
    // Replies in order; `ins` are the seqnums of IN URBs (their replies carry data).
    let next = |c: &mut TcpStream, buf: &mut Vec<u8>, ins: &dyn Fn(u32) -> bool| -> Option<UrbReply> {
        loop {
            match UrbReply::parse(buf, ins) {
                Ok((r, used)) => {
                    buf.drain(..used);
                    return Some(r);
                }
                Err(_) => {
                    let mut more = [0u8; 4096];
                    match c.read(&mut more) {
                        Ok(0) => return None,
                        Ok(n) => buf.extend_from_slice(&more[..n]),
                        Err(e) => panic!("no reply within 10 s (a wedged device?): {e}"),
                    }
                }
            }
        }
    };

    // A class request (ABORT) announcing no data but carrying 100 bytes: a stall.
    submit(&mut c, 1, 0, 0, 100, [0x21, 0x01, 0, 0, 0, 0, 0, 0], &[0xAA; 100]);
    match next(&mut c, &mut buf, &|_| false) {
        Some(UrbReply::Submit { seqnum: 1, status, .. }) => assert_eq!(status, -32, "EPIPE"),
        other => panic!("{other:?}"),
    }
    // Endpoint 0 still answers: GET_DESCRIPTOR(device), 18 bytes.
    submit(&mut c, 2, 1, 0, 18, [0x80, 6, 0, 1, 0, 0, 18, 0], &[]);
    match next(&mut c, &mut buf, &|s| s == 2) {
        Some(UrbReply::Submit { seqnum: 2, status: 0, data, .. }) => assert_eq!((data.len(), data[1]), (18, 1)),
        other => panic!("{other:?}"),
    }

    // The interrupt endpoint (IN 2) sends its slot-change notification once, then holds URBs.
    submit(&mut c, 3, 1, 2, 8, [0; 8], &[]);
    assert!(matches!(next(&mut c, &mut buf, &|s| s == 3), Some(UrbReply::Submit { seqnum: 3, status: 0, .. })));
    let extra = 5;
    for i in 0..(MAX_PENDING_IN as u32 + extra) {
        submit(&mut c, 100 + i, 1, 2, 8, [0; 8], &[]);
    }
    for _ in 0..extra {
        match next(&mut c, &mut buf, &|s| s >= 100) {
            Some(UrbReply::Submit { seqnum, status, .. }) => {
                assert!(seqnum >= 100 + MAX_PENDING_IN as u32, "a queued URB was refused: {seqnum}");
                assert_eq!(status, -12, "ENOMEM");
            }
            other => panic!("{other:?}"),
        }
    }
    // A seqnum still pending, submitted again: the session ends.
    submit(&mut c, 100, 1, 2, 8, [0; 8], &[]);
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        UrbReply::parse(&rest, |_| true).is_err(),
        "nothing answers the duplicate; the connection closes (read {} bytes)",
        rest.len()
    );
    // The key is free again for the next importer (the connection closed only after the
    // key was released).
    let mut again = TcpStream::connect(addr).unwrap();
    again.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    again.write_all(&wire::OpRequest::Import { busid: "1-1".into() }.encode()).unwrap();
    let mut reply = vec![0u8; 512];
    let n = again.read(&mut reply).unwrap();
    assert!(matches!(wire::parse_import(&reply[..n]), Ok((Some(_), _))), "imported again");
}
