//! The state file on disk: private from its first byte, every value validated on load
//! (whatever the bytes, an error naming the file and never a panic), and deterministic keys
//! whose challenges never repeat across restarts.

mod common;
use common::*;

use std::path::Path;

use ciborium::Value;
use proto::clock::FixedClock;
use proto::piv::Algorithm;
use proto::Sw;
use sha2::{Digest, Sha256};
use token_sim::store::{format, StoreError, STATE_FILE};
use token_sim::virtual_key::KeyError;
use token_sim::VirtualKey;

fn make_key(dir: &Path, seed: u64) {
    drop(VirtualKey::create(dir, &spec(seed), &FixedClock(NOW)).unwrap());
}

/// The file's CBOR payload as a value tree.
fn payload(file: &Path) -> Value {
    let bytes = std::fs::read(file).unwrap();
    let (version, payload) = format::check_frame(&bytes).unwrap();
    assert_eq!(version, format::FORMAT_VERSION);
    ciborium::from_reader(payload).unwrap()
}

/// Write `value` back as a well-framed file with a correct checksum.
fn write_payload(file: &Path, value: &Value) {
    let mut payload = Vec::new();
    ciborium::into_writer(value, &mut payload).unwrap();
    let mut bytes = b"UKEYCARD".to_vec();
    bytes.extend(format::FORMAT_VERSION.to_be_bytes());
    bytes.extend((payload.len() as u32).to_be_bytes());
    bytes.extend(&payload);
    bytes.extend(Sha256::digest(&payload));
    std::fs::write(file, bytes).unwrap();
}

fn field<'a>(v: &'a mut Value, name: &str) -> &'a mut Value {
    let Value::Map(entries) = v else { panic!("not a map: {v:?}") };
    &mut entries.iter_mut().find(|(k, _)| k.as_text() == Some(name)).unwrap_or_else(|| panic!("no field {name}")).1
}

fn open_err(dir: &Path) -> String {
    match VirtualKey::open(dir) {
        Ok(_) => panic!("an invalid state opened"),
        Err(KeyError::Store(e @ StoreError::Corrupt { .. })) => e.to_string(),
        Err(e) => panic!("not reported as a damaged file: {e}"),
    }
}

#[test]
fn values_no_command_could_produce_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    make_key(&key, 30);
    let file = key.join(STATE_FILE);
    let good = payload(&file);
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 12] = [
        (
            "PIN remaining above its limit",
            |v| *field(field(field(v, "pin"), "counter"), "remaining") = 9.into(),
            "PIN counter 9 of 3",
        ),
        ("PIN limit 0", |v| *field(field(field(v, "pin"), "counter"), "limit") = 0.into(), "PIN counter"),
        (
            "PUK limit 16",
            |v| {
                let c = field(field(v, "puk"), "counter");
                *field(c, "limit") = 16.into();
                *field(c, "remaining") = 16.into();
            },
            "PUK counter 16 of 16",
        ),
        (
            "3DES key of 16 bytes",
            |v| *field(field(v, "mgmt"), "key") = Value::Array(vec![1.into(); 16]),
            "management key of 16 bytes",
        ),
        (
            "AES-128 key of 24 bytes",
            |v| *field(field(v, "mgmt"), "alg") = (Algorithm::Aes128 as u8).into(),
            "management key of 24 bytes",
        ),
        ("an ECC algorithm as management key", |v| *field(field(v, "mgmt"), "alg") = 0x11.into(), "management key"),
        (
            "attestation scalar zero",
            |v| {
                let Value::Array(slots) = field(v, "keys") else { panic!() };
                *field(&mut slots[24], "scalar") = Value::Array(vec![0.into(); 32]);
            },
            "slot F9 holds no valid P-256 private key",
        ),
        (
            "attestation scalar above the group order",
            |v| {
                let Value::Array(slots) = field(v, "keys") else { panic!() };
                *field(&mut slots[24], "scalar") = Value::Array(vec![0xFF.into(); 32]);
            },
            "slot F9 holds no valid P-256 private key",
        ),
        (
            "PIN policy 7",
            |v| {
                let Value::Array(slots) = field(v, "keys") else { panic!() };
                *field(&mut slots[24], "pin_policy") = 7.into();
            },
            "slot F9 has PIN policy 7",
        ),
        (
            "object past the pool",
            |v| {
                let Value::Array(index) = field(field(v, "objects"), "index") else { panic!() };
                let Value::Array(entry) = &mut index[0] else { panic!() };
                entry[1] = 60000.into();
            },
            "outside the",
        ),
        (
            "two objects on the same bytes",
            |v| {
                let Value::Array(index) = field(field(v, "objects"), "index") else { panic!() };
                let first = index[0].clone();
                let Value::Array(entry) = &mut index[1] else { panic!() };
                let Value::Array(f) = first else { panic!() };
                entry[1] = f[1].clone();
            },
            "object",
        ),
        (
            "an object under a tag no PIV card stores",
            |v| {
                let Value::Array(index) = field(field(v, "objects"), "index") else { panic!() };
                let Value::Array(entry) = &mut index[0] else { panic!() };
                entry[0] = 0x7E.into();
            },
            "object 00007E is not a PIV data object",
        ),
    ];
    for (what, edit, reason) in cases {
        let mut v = good.clone();
        edit(field(&mut v, "card"));
        write_payload(&file, &v);
        let err = open_err(&key);
        assert!(err.contains(reason), "{what}: {err}");
        assert!(err.contains(&file.display().to_string()), "{what}: the message names the file: {err}");
    }
    // A field this build does not know is refused, not dropped on the next write.
    let mut v = good.clone();
    let Value::Map(card) = field(&mut v, "card") else { panic!() };
    card.push(("pin_policy_v3".into(), 1.into()));
    write_payload(&file, &v);
    let err = open_err(&key);
    assert!(err.contains("unknown field") && err.contains("pin_policy_v3"), "{err}");
    write_payload(&file, &good);
    VirtualKey::open(&key).expect("the untouched payload still opens");
}

/// Flip, drop and insert bytes all over a real payload, fix the checksum, and open it:
/// an error or a valid key, never a panic. (The fuzz target `state_decode` goes further.)
#[test]
fn any_payload_with_a_right_checksum_opens_or_is_refused_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    make_key(&key, 31);
    let bytes = std::fs::read(key.join(STATE_FILE)).unwrap();
    let (_, payload) = format::check_frame(&bytes).unwrap();
    let payload = payload.to_vec();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut refused, mut opened) = (0, 0);
    for round in 0..3000 {
        let mut p = payload.clone();
        for _ in 0..1 + round % 4 {
            let at = next() as usize % p.len();
            match next() % 3 {
                0 => p[at] ^= 1 << (next() % 8),
                1 => {
                    p.remove(at);
                }
                _ => p.insert(at, next() as u8),
            }
        }
        match format::decode_payload(format::FORMAT_VERSION, &p) {
            Ok((_, state)) => {
                state.validate().expect("what decodes is valid");
                opened += 1;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 1000, "most damage is noticed ({refused} refused, {opened} opened)");
}

#[test]
fn key_directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a/b/key");
    make_key(&key, 32);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o700, "key directory");
    assert_eq!(mode(&key.join(STATE_FILE)), 0o600, "state file");
    assert_eq!(mode(&key.join("lock")), 0o600, "lock file");
    // An empty directory someone made 0755 for the key is made private too.
    let pre = dir.path().join("premade");
    std::fs::create_dir(&pre).unwrap();
    std::fs::set_permissions(&pre, std::fs::Permissions::from_mode(0o755)).unwrap();
    make_key(&pre, 33);
    assert_eq!(mode(&pre), 0o700);
    // A directory with other things in it is not taken (nor made private).
    let busy = dir.path().join("project");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), b"mine").unwrap();
    std::fs::set_permissions(&busy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = VirtualKey::create(&busy, &spec(36), &FixedClock(NOW)).unwrap_err();
    assert!(matches!(err, KeyError::Store(StoreError::NotEmpty { .. })), "{err}");
    assert_eq!(mode(&busy), 0o755, "left as it was");
    assert!(!busy.join("lock").exists(), "nothing written into it");
    // A temporary file left by a crash with loose permissions is not reused as it is.
    let mut k = VirtualKey::open(&pre).unwrap();
    let tmp = pre.join("card.ukey.tmp");
    std::fs::write(&tmp, b"left over").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(verify(k.card_mut(), b"000000"), Sw(0x63C2));
    assert_eq!(mode(&pre.join(STATE_FILE)), 0o600, "the state written through the old temp file's name");
    assert!(!tmp.exists());
}

/// A recorded management-key authentication must not replay after a restart: the seeded
/// RNG of each open runs on a stream no earlier open used.
#[test]
fn recorded_management_key_answer_does_not_replay_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    make_key(&key, 34);
    let challenge = |k: &mut VirtualKey| {
        let (data, s) = tx(k.card_mut(), &apdu(0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x81, 0x00]));
        assert_eq!(s, Sw::OK);
        data[4..].to_vec()
    };
    let answer = |k: &mut VirtualKey, response: &[u8]| {
        let mut msg = vec![0x7C, 0x0A, 0x82, 0x08];
        msg.extend(response);
        sw(k.card_mut(), &apdu(0x87, 0x03, 0x9B, &msg))
    };
    let mut k = VirtualKey::open(&key).unwrap();
    let c1 = challenge(&mut k);
    let mut recorded = c1.clone();
    proto::mgmt::crypt_block(Algorithm::Tdes, &MGMT, &mut recorded, true).unwrap();
    assert_eq!(answer(&mut k, &recorded), Sw::OK, "the honest answer");
    drop(k);
    let mut seen = vec![c1];
    for restart in 0..5 {
        let mut k = VirtualKey::open(&key).unwrap();
        let c = challenge(&mut k);
        assert!(!seen.contains(&c), "restart {restart}: a challenge came back");
        assert_eq!(answer(&mut k, &recorded), Sw::SECURITY_STATUS_NOT_SATISFIED, "restart {restart}: replay");
        seen.push(c);
    }
}

/// The open count is a value from the file like any other: at its end the key is refused,
/// never wrapped back to the creation run's stream (nor a panic).
#[test]
fn an_exhausted_open_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    make_key(&key, 37);
    let file = key.join(STATE_FILE);
    let mut v = payload(&file);
    *field(field(&mut v, "meta"), "boots") = u64::MAX.into();
    write_payload(&file, &v);
    let err = open_err(&key);
    assert!(err.contains("opened 2^64 times"), "{err}");
}

#[test]
fn deterministic_runs_repeat_byte_for_byte_and_the_serial_hides_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let key = dir.path().join(name);
        make_key(&key, 35);
        let mut out = Vec::new();
        for _ in 0..3 {
            let mut k = VirtualKey::open(&key).unwrap();
            out.push(tx(k.card_mut(), &apdu(0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x81, 0x00])).0);
        }
        (out, std::fs::read(key.join(STATE_FILE)).unwrap())
    };
    assert_eq!(run("a"), run("b"), "same seed, same run: same challenges, same file");
    let serials: Vec<u32> =
        (1..=4).map(|seed| VirtualKey::in_memory(&spec(seed), &FixedClock(NOW)).unwrap().serial()).collect();
    for (seed, serial) in (1u64..).zip(&serials) {
        assert!(!serial.to_string().contains(&format!("{}", 10_000_000 + seed)), "serial {serial} shows seed {seed}");
    }
    assert!(
        serials.windows(2).all(|w| w[1].abs_diff(w[0]) > 1000),
        "neighbouring seeds give unrelated serials: {serials:?}"
    );
}
