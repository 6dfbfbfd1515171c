//! Secrets are wiped before their memory goes back to the allocator: a global allocator for
//! this test binary scans every block it gets back for a marker the secrets were made of.
//! Catches a missing `Drop`, a wipe skipped on clear or truncate, and a buffer that lets
//! `Vec` grow by itself (which frees the old block unwiped).
#![cfg(feature = "std")]

extern crate std;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use proto::piv::{Algorithm, PinPolicy, TouchPolicy};

use super::buf::Buf;
use super::state::{pad_pin, KeySlot, MgmtKey, Origin, Secret};

/// 16 bytes no other test puts on the heap. Also a valid P-256 scalar when doubled.
static MARKER: [u8; 16] = *b"\x5Awipe-me-tokens\xA5";

static ARMED: AtomicBool = AtomicBool::new(false);
static UNWIPED: AtomicUsize = AtomicUsize::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Scanning;

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }
    // No `realloc`: the default moves through `alloc` + `dealloc`, so every old block is seen.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            let block = core::slice::from_raw_parts(ptr, layout.size());
            if block.windows(MARKER.len()).any(|w| w == MARKER) {
                UNWIPED.fetch_add(1, Ordering::SeqCst);
            }
        }
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// How many blocks still holding the marker `f` gave back to the allocator.
fn unwiped_by(f: impl FnOnce()) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    UNWIPED.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    UNWIPED.load(Ordering::SeqCst)
}

fn doubled() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(&MARKER);
    k[16..].copy_from_slice(&MARKER);
    k
}

#[test]
fn the_scanner_sees_an_unwiped_block() {
    // Without this, a broken scanner would pass every test below.
    assert_eq!(unwiped_by(|| drop(std::boxed::Box::new(MARKER))), 1);
}

#[test]
fn key_slots_management_keys_and_pin_hashes_are_wiped_on_drop() {
    use core::mem::ManuallyDrop;
    use std::boxed::Box;
    let sk = p256::SecretKey::from_slice(&doubled()).expect("valid scalar");
    // Controls: the same values freed without their Drop hold the marker, so the checks
    // below can fail.
    let slot = || KeySlot::new(&sk, PinPolicy::Once, TouchPolicy::Never, Origin::Imported);
    assert_eq!(unwiped_by(|| drop(Box::new(ManuallyDrop::new(slot())))), 1, "KeySlot control");
    let mgmt = || MgmtKey::new(Algorithm::Aes256, &doubled()).unwrap();
    assert_eq!(unwiped_by(|| drop(Box::new(ManuallyDrop::new(mgmt())))), 1, "MgmtKey control");
    let pin = pad_pin(b"123456").unwrap();
    assert_eq!(unwiped_by(|| drop(Box::new(ManuallyDrop::new(Secret::new(&pin, MARKER))))), 1, "Secret control");
    assert_eq!(
        unwiped_by(|| drop(std::boxed::Box::new(KeySlot::new(
            &sk,
            PinPolicy::Once,
            TouchPolicy::Never,
            Origin::Imported
        )))),
        0,
        "KeySlot"
    );
    assert_eq!(
        unwiped_by(|| drop(std::boxed::Box::new(MgmtKey::new(Algorithm::Aes256, &doubled()).unwrap()))),
        0,
        "MgmtKey"
    );
    let pin = pad_pin(b"123456").unwrap();
    assert_eq!(unwiped_by(|| drop(std::boxed::Box::new(Secret::new(&pin, MARKER)))), 0, "Secret (salt)");
}

#[test]
fn buffers_wipe_on_growth_clear_truncate_and_drop() {
    assert_eq!(
        unwiped_by(|| {
            let mut b = Buf::<4096>::new();
            b.extend_from_slice(&MARKER).unwrap();
            // One byte at a time past each capacity: where Vec would grow by itself.
            for i in 0..600 {
                b.extend_from_slice(&[i as u8]).unwrap();
                if i % 50 == 0 {
                    b.extend_from_slice(&MARKER).unwrap();
                }
            }
            drop(b);
        }),
        0,
        "growth and drop"
    );
    assert_eq!(
        unwiped_by(|| {
            let mut b = Buf::<4096>::new();
            for _ in 0..64 {
                b.extend_from_slice(&MARKER).unwrap();
            }
            b.clear(); // over the size a buffer keeps: its block goes back
            b.extend_from_slice(&MARKER).unwrap();
            b.truncate(0);
            b.clear();
        }),
        0,
        "clear and truncate"
    );
}
