//! `ukey sim serve --usbip` under abuse by its own user's programs (other users are refused
//! outright: host-driver/tests/other_user.rs): idle connections beyond its file descriptors
//! never stop it, and URB floods never grow its memory without bound.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ok;
use proto::usbip::{OpRequest, UrbCommand, UrbHeader};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ukey sim serve --usbip 127.0.0.1:0 EXTRA.. KEY`, optionally with at most `nofile` open
/// files; the server and its address.
fn serve(home: &std::path::Path, key: &std::path::Path, nofile: Option<u32>, extra: &[&str]) -> (Kill, String) {
    let ukey = env!("CARGO_BIN_EXE_ukey");
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(ukey);
            c
        }
        None => Command::new(ukey),
    };
    let mut child = cmd
        .env("UKEY_HOME", home)
        .env("RUST_LOG", "warn")
        .args(["sim", "serve", "--usbip", "127.0.0.1:0"])
        .args(extra)
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) and ukey run");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // Drain the rest so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let addr = first.split("on usbip ").nth(1).and_then(|r| r.split(' ').next()).unwrap().to_string();
    (Kill(child), addr)
}

/// Raise this process's open-file limit to its hard limit (the test holds many sockets).
fn more_files() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// Import 1-1, select PIV and verify the PIN: what a real client does.
fn real_client(addr: &str) -> Result<(), String> {
    let link = host_driver::usbip::UsbipLink::import(addr, "1-1").map_err(|e| e.to_string())?;
    let mut piv = host_driver::Piv::new(host_driver::ccid::CcidTransport::open(link).map_err(|e| e.to_string())?);
    piv.select().map_err(|e| e.to_string())?;
    match piv.verify_pin(&"123456".into()) {
        Ok(host_driver::PinOutcome::Ok) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn idle_connections_beyond_its_file_descriptors_never_stop_the_server() {
    more_files();
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    ok(home.path(), &["sim", "new", key.to_str().unwrap(), "--seed", "21"]);
    // 256 files: room for 48 connections; the 1,200 are far more.
    let (mut server, addr) = serve(home.path(), &key, Some(256), &["--usbip-idle", "2"]);
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..1200 {
        match TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(100)) {
            Ok(s) => idle.push(s),
            Err(_) => refused += 1,
        }
    }
    eprintln!("{} idle connections open, {refused} not accepted by the kernel's queue", idle.len());
    assert!(idle.len() >= 200, "the test needs many idle connections: {}", idle.len());
    assert!(server.0.try_wait().unwrap().is_none(), "the server is still running");
    // The idle ones are dropped (after 2 s each) and a real client gets through, with them
    // all still open on this side.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        match real_client(&addr) {
            Ok(()) => {
                assert!(server.0.try_wait().unwrap().is_none());
                return;
            }
            Err(e) => last = e,
        }
        assert!(server.0.try_wait().unwrap().is_none(), "the server ended: {last}");
    }
    panic!("no real client got through in 90 s: {last}");
}

/// The server's peak resident memory, from /proc (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn urb_floods_keep_the_servers_memory_bounded() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k");
    ok(home.path(), &["sim", "new", key.to_str().unwrap(), "--seed", "22"]);
    let (server, addr) = serve(home.path(), &key, None, &[]);
    let pid = server.0.id();
    real_client(&addr).unwrap();
    let before = peak_kib(pid);

    // The real client's import ends when the server has seen it leave: until then the key is
    // attached and another import is refused (8 bytes, status 1).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(&OpRequest::Import { busid: "1-1".into() }.encode()).unwrap();
        let mut reply = [0u8; 320];
        if c.read_exact(&mut reply).is_ok() && reply[4..8] == [0, 0, 0, 0] {
            break c;
        }
        assert!(Instant::now() < deadline, "the key never came free for the flood's import");
    };
    // Replies drained (not parsed) on their own thread, as fast as they come.
    let mut rx = c.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 16];
        while rx.read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    let submit = |seqnum: u32, direction: u32, ep: u32, data: Vec<u8>, len: u32| UrbCommand::Submit {
        header: UrbHeader { seqnum, devid: 0x10001, direction, ep },
        transfer_flags: 0,
        transfer_buffer_length: len,
        interval: 0,
        setup: [0; 8],
        data,
    };
    let mut seq = 1000;
    // 256 MiB of bulk OUT (1 MiB each, the largest transfer), as fast as TCP takes them.
    let mib = vec![0x6F; 1 << 20];
    for _ in 0..256 {
        seq += 1;
        c.write_all(&submit(seq, 0, 1, mib.clone(), mib.len() as u32).encode()).unwrap();
    }
    // 20,000 IN URBs on the interrupt endpoint, which answers none of them.
    let mut batch = Vec::new();
    for _ in 0..20_000 {
        seq += 1;
        batch.extend(submit(seq, 1, 2, Vec::new(), 8).encode());
    }
    c.write_all(&batch).unwrap();
    // The flood's importer leaves; the key is free once the server has taken all of it.
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let flooded = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Err(e) = real_client(&addr) {
        assert!(Instant::now() < deadline, "the key never came free after the floods: {e}");
    }
    eprintln!("the server took the rest of the floods in {:?}", flooded.elapsed());
    let grown = peak_kib(pid).saturating_sub(before);
    eprintln!("peak resident memory grew {grown} KiB during the floods");
    assert!(grown < 48 * 1024, "the floods grew the server by {grown} KiB (bound: 48 MiB)");
}
