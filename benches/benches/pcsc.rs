//! What a reader costs: one APDU (PIN status) and one signature through PC/SC to a virtual key
//! served on vpcd, against the same through the in-process transport, in one run.
//!
//! Needs pcscd with vsmartcard-vpcd and an empty "Virtual PCD 00 00"; without them it says
//! so and measures nothing.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use host_driver::pcsc::{Pcsc, PcscTransport};
use host_driver::{MgmtKey, Piv};
use proto::clock::FixedClock;
use proto::piv::Slot;
use proto::Transport;
use token_sim::frontends::vpcd::{self, Control, LinkState};
use token_sim::{KeySpec, SharedKey, VirtualKey};
use tokio::sync::watch;

const READER: &str = "Virtual PCD 00 00";

fn key() -> VirtualKey {
    let spec = KeySpec { seed: Some(1), ..KeySpec::default() };
    VirtualKey::in_memory(&spec, &FixedClock(1_790_000_000)).unwrap()
}

fn prepare<T: Transport>(piv: &mut Piv<T>) {
    piv.select().unwrap();
    piv.authenticate(&MgmtKey::default()).unwrap();
    piv.generate(Slot::Authentication, None, None).unwrap();
    piv.verify_pin(&"123456".into()).unwrap();
}

/// Serve a key on vpcd's first reader from a thread; the senders stop it when dropped.
fn serve() -> Option<(watch::Sender<bool>, std::thread::JoinHandle<()>)> {
    let pcsc = Pcsc::establish().ok()?;
    let empty = pcsc.reader_states().ok()?.iter().any(|r| r.name == READER && !r.card_present);
    if !empty {
        return None;
    }
    let (inserted_tx, inserted) = watch::channel(true);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let k = SharedKey::new(key());
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (state, _) = watch::channel(LinkState::Connecting);
        let _keep = inserted_tx;
        rt.block_on(vpcd::serve(k, format!("127.0.0.1:{}", vpcd::DEFAULT_PORT), Control { inserted, shutdown }, state));
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pcsc.reader_states().ok()?.iter().any(|r| r.name == READER && r.card_present) {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((shutdown_tx, t))
}

fn reader_vs_in_process(c: &mut Criterion) {
    let digest = [0x5Au8; 32];
    let mut g = c.benchmark_group("transport");
    let mut local = Piv::new(key());
    prepare(&mut local);
    g.bench_function(BenchmarkId::new("in_process", "pin_status"), |b| b.iter(|| local.pin_status().unwrap()));
    g.bench_function(BenchmarkId::new("in_process", "sign"), |b| {
        b.iter(|| local.sign_digest(Slot::Authentication, &digest).unwrap())
    });
    let Some((stop, thread)) = serve() else {
        eprintln!("SKIPPED transport/pcsc_*: no pcscd with an empty {READER:?}");
        return;
    };
    let mut remote = Piv::new(PcscTransport::connect(READER).unwrap());
    prepare(&mut remote);
    g.bench_function(BenchmarkId::new("pcsc_vpcd", "pin_status"), |b| b.iter(|| remote.pin_status().unwrap()));
    g.bench_function(BenchmarkId::new("pcsc_vpcd", "sign"), |b| {
        b.iter(|| remote.sign_digest(Slot::Authentication, &digest).unwrap())
    });
    g.finish();
    drop(remote);
    stop.send_replace(true);
    thread.join().unwrap();
}

criterion_group!(benches, reader_vs_in_process);
criterion_main!(benches);
