//! Crash test: a key served by a separate process is killed with SIGKILL at random moments
//! while wrong PINs arrive, a few hundred times. Whenever the host saw an answer, the try it
//! spent is on disk; the state file always reads back whole; the counter never rises.
//!
//! One binary, two roles (harness = false): with `UKEY_CRASH_CHILD=DIR` it is the child, a key
//! on a pipe (u16 length + APDU in, u16 length + answer out, like vpcd); otherwise the parent.
//! `UKEY_CRASH_ROUNDS` sets the rounds (default 300), `UKEY_CRASH_SEED` replays a run.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proto::clock::FixedClock;
use token_sim::store::{read_state, STATE_FILE};
use token_sim::{KeySpec, VirtualKey};

const LIMIT: u8 = 15;
const WRONG_PIN: &[u8] = b"\x00\x20\x00\x80\x08000000\xFF\xFF";
const RIGHT_PIN: &[u8] = b"\x00\x20\x00\x80\x08123456\xFF\xFF";

fn child(dir: &Path) {
    let mut key = VirtualKey::open(dir).expect("the child opens the key");
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    output.write_all(b"R").and_then(|()| output.flush()).unwrap();
    loop {
        let mut len = [0u8; 2];
        if input.read_exact(&mut len).is_err() {
            return;
        }
        let mut apdu = vec![0u8; u16::from_be_bytes(len) as usize];
        input.read_exact(&mut apdu).unwrap();
        let reply = key.exchange(&apdu);
        output.write_all(&(reply.len() as u16).to_be_bytes()).unwrap();
        output.write_all(&reply).and_then(|()| output.flush()).unwrap();
    }
}

fn on_disk(dir: &Path) -> u8 {
    let (_, state) = read_state(&dir.join(STATE_FILE)).expect("the state file always reads back whole");
    state.pin.counter.remaining
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    if let Some(dir) = std::env::var_os("UKEY_CRASH_CHILD") {
        return child(Path::new(&dir));
    }
    let rounds: usize = std::env::var("UKEY_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(300);
    let seed = std::env::var("UKEY_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let mut rng = Xorshift(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("key");
    let spec = KeySpec { pin_retries: LIMIT, ..KeySpec::default() };
    drop(VirtualKey::create(&dir, &spec, &FixedClock(1_790_000_000)).unwrap());
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let (mut mid_command, mut answered_total, mut restores) = (0, 0, 0);
    let mut before = on_disk(&dir);
    for round in 0..rounds {
        let context = format!("round {round} (replay with UKEY_CRASH_SEED={seed})");
        if before <= 2 {
            // The right PIN, in this process while no child runs: the one way up besides the PUK.
            let mut key = VirtualKey::open(&dir).unwrap();
            assert_eq!(key.exchange(RIGHT_PIN), [0x90, 0x00]);
            drop(key);
            before = on_disk(&dir);
            assert_eq!(before, LIMIT);
            restores += 1;
        }
        let mut child = Command::new(&exe)
            .env("UKEY_CRASH_CHILD", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (mut to_child, mut from_child) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let mut ready = [0u8; 1];
        from_child.read_exact(&mut ready).unwrap();
        let kill_after = Duration::from_micros(rng.next() % 6000);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            child.kill().unwrap(); // SIGKILL: no destructor, no flush, no goodbye
            child.wait().unwrap()
        });
        let tries = (before - 1).min(3);
        let (mut seen, mut in_flight) = (None, false);
        for _ in 0..tries {
            let mut frame = (WRONG_PIN.len() as u16).to_be_bytes().to_vec();
            frame.extend(WRONG_PIN);
            if to_child.write_all(&frame).is_err() {
                break;
            }
            in_flight = true;
            let mut len = [0u8; 2];
            if from_child.read_exact(&mut len).is_err() {
                break;
            }
            let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
            if from_child.read_exact(&mut reply).is_err() {
                break;
            }
            in_flight = false;
            let expect = seen.unwrap_or(before) - 1;
            assert_eq!(reply, [0x63, 0xC0 | expect], "{context}: the answer counts down by one");
            seen = Some(expect);
            answered_total += 1;
        }
        drop((to_child, from_child));
        let status = killer.join().unwrap();
        let after = on_disk(&dir);
        let last = seen.unwrap_or(before);
        assert!(after <= last, "{context}: the host saw {last} tries left but the disk says {after}");
        let lowest = if in_flight { last - 1 } else { last };
        assert!(after >= lowest, "{context}: {after} on disk, more tries spent than were sent");
        if in_flight && status.code().is_none() {
            mid_command += 1;
        }
        before = after;
    }
    println!(
        "crash: {rounds} SIGKILLs in {:.1?} ({mid_command} with a command in flight, {answered_total} wrong PINs \
         answered, {restores} restores by the right PIN); every answered try was on disk, the counter never rose",
        started.elapsed()
    );
}
