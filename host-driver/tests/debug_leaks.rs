//! The host side's secret holders print as `<redacted>`: the management key as parsed from
//! hex, and the PIN, PUK, key and password types the driver, the agent and the CLI use.

#[path = "../../testsupport/leaks.rs"]
mod leaks;

use host_driver::MgmtKey;
use leaks::assert_hidden;
use proto::secret::{KeyBytes, KeyHex, Password, Pin, PinBlock, Puk, SecretRef};

const KEY: [u8; 16] = [0xA7, 0x3C, 0x91, 0x5E, 0x08, 0xD2, 0x6B, 0xF4, 0x19, 0xC8, 0x72, 0x3D, 0xE5, 0x0A, 0x96, 0x4F];

#[test]
fn secret_holders_never_show_their_bytes() {
    leaks::self_test();
    let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    let mgmt = MgmtKey::from_hex(&hex, None).unwrap();
    assert_hidden("MgmtKey", &format!("{mgmt:?}"), &KEY);
    assert_hidden("KeyBytes", &format!("{:?}", KeyBytes::from(KEY.to_vec())), &KEY);
    assert_hidden("KeyHex", &format!("{:?}", KeyHex::new(hex.clone())), hex.as_bytes());
    assert_hidden("SecretRef", &format!("{:?}", SecretRef(&KEY)), &KEY);
    assert_hidden("Pin", &format!("{:?}", Pin::new("739184")), b"739184");
    assert_hidden("Puk", &format!("{:?}", Puk::new("58204617")), b"58204617");
    assert_hidden("Password", &format!("{:?}", Password::new("Passw0rd-739")), b"Passw0rd-739");
    let block = PinBlock::pad(b"739184").unwrap();
    assert_hidden("PinBlock", &format!("{block:?}"), b"739184");
    assert_hidden("PinBlock", &format!("{block:?}"), block.as_bytes());
    // What a request body deserializes into is just as quiet.
    let pin: Pin = serde_json::from_str("\"739184\"").unwrap();
    assert_hidden("Pin from JSON", &format!("{pin:?}"), b"739184");
}
