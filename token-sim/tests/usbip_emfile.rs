//! The USB/IP server out of file descriptors: its accept fails with EMFILE, and it waits that
//! out instead of ending. A test binary of its own, because it fills the whole process's
//! descriptor table (the client here and the server share it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use token_sim::frontends::usbip::server::{self, KeyExports, Policy};
use token_sim::frontends::usbip::wire;
use token_sim::{KeySpec, SharedKey, VirtualKey};

/// The server's log, for waiting on a line of it.
#[derive(Clone, Default)]
struct Log(Arc<(Mutex<String>, Condvar)>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 .0.lock().unwrap().push_str(&String::from_utf8_lossy(buf));
        self.0 .1.notify_all();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

impl Log {
    /// Wait until the log holds `text`, at most `limit`.
    fn wait_for(&self, text: &str, limit: Duration) -> bool {
        let (lock, cv) = &*self.0;
        let g = lock.lock().unwrap();
        let (g, _) = cv.wait_timeout_while(g, limit, |s| !s.contains(text)).unwrap();
        g.contains(text)
    }
}

#[test]
fn a_server_out_of_file_descriptors_waits_and_serves_again() {
    let log = Log::default();
    tracing_subscriber::fmt().with_writer(log.clone()).with_ansi(false).init();
    let key = VirtualKey::in_memory(&KeySpec::default(), &proto::clock::FixedClock(1_790_000_000)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let exports = Arc::new(KeyExports::new(vec![SharedKey::new(key)]));
    // A client waits in the listen queue before the server runs...
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(&wire::OpRequest::DevList.encode()).unwrap();
    // ...and every descriptor is taken when it starts.
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
        assert!(filler.len() < 1 << 20, "no open-file limit to reach");
    }
    // No connection budget of its own: the accept itself must run out.
    let policy = Policy { max_connections: 100_000, ..Policy::default() };
    std::thread::spawn(move || server::serve(listener, exports, policy));
    let met = log.wait_for("accepting a connection failed", Duration::from_secs(10));
    // Descriptors come back: the waiting connection is answered.
    drop(filler);
    assert!(met, "the server met EMFILE and said so: {}", log.0 .0.lock().unwrap());
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = Vec::new();
    let _ = c.read_to_end(&mut reply);
    assert_eq!(wire::parse_devlist(&reply).map(|d| d.len()), Ok(1), "answered after the shortage");
}
