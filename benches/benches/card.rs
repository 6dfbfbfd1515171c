//! What the card layer costs: a P-256 signature through the whole stack (host driver ->
//! APDU -> card parse -> execute -> response) against the bare p256 signature it wraps, and
//! what persisting the PIN counter costs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use host_driver::{MgmtKey, Piv};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use proto::clock::FixedClock;
use proto::piv::Slot;
use token_sim::{KeySpec, VirtualKey};

const NOW: u64 = 1_790_000_000;

fn provisioned(dir: Option<&std::path::Path>) -> Piv<VirtualKey> {
    let spec = KeySpec { seed: Some(1), ..KeySpec::default() };
    let vk = match dir {
        Some(d) => VirtualKey::create(d, &spec, &FixedClock(NOW)).unwrap(),
        None => VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap(),
    };
    let mut piv = Piv::new(vk);
    piv.authenticate(&MgmtKey::default()).unwrap();
    piv.generate(Slot::Authentication, None, None).unwrap();
    assert_eq!(piv.verify_pin(&"123456".into()).unwrap(), host_driver::PinOutcome::Ok);
    piv
}

fn sign(c: &mut Criterion) {
    let digest = [0x5Au8; 32];
    let mut g = c.benchmark_group("p256_sign");
    let raw = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    g.bench_function(BenchmarkId::new("raw_p256", "prehash"), |b| {
        b.iter(|| {
            let s: p256::ecdsa::Signature = raw.sign_prehash(&digest).unwrap();
            s
        })
    });
    let mut piv = provisioned(None);
    g.bench_function(BenchmarkId::new("through_card", "driver+apdu+card"), |b| {
        b.iter(|| piv.sign_digest(Slot::Authentication, &digest).unwrap())
    });
    g.finish();
}

fn pin(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify_pin");
    let mut mem = provisioned(None);
    g.bench_function("in_memory", |b| b.iter(|| mem.verify_pin(&"123456".into()).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let mut file = provisioned(Some(&dir.path().join("k")));
    // Two fsynced writes per VERIFY: the decrement before the compare, the restore after.
    g.sample_size(20);
    g.bench_function("file_store_fsync", |b| b.iter(|| file.verify_pin(&"123456".into()).unwrap()));
    g.finish();
}

criterion_group!(benches, sign, pin);
criterion_main!(benches);
