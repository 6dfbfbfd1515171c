//! OpenSC's p11test judges the module on a directory key holding keys and certificates in 9A,
//! 9C, 9D and 9E; its log must equal `p11test_ref.json`. What the reference records as failing,
//! and why that is right for this module:
//! - interface_test: p11test asserts the 2.x interface is version 2.20, OpenSC's own; this
//!   module's 2.x function list is 2.40, which it implements.
//! - derive_tests, key 02: 9C's private key has CKA_ALWAYS_AUTHENTICATE, and p11test derives
//!   without the context-specific login (its sign tests do log in), so the module answers
//!   CKR_USER_NOT_LOGGED_IN, as it must.
//! - wait_test is interactive only; pss_oaep_test needs RSA.

mod common;

use common::{key, module, p11test};
use token_sim::scenario::Scenario;

#[test]
fn p11test_on_a_directory_key_matches_the_reference() {
    let Some(bin) = p11test::binary() else { return };
    let root = tempfile::tempdir().unwrap();
    let dir = key(root.path(), "key", Scenario::Full, "p11test user");
    let log = p11test::run(
        &bin,
        &module(),
        "123456",
        &[("UKEY_PKCS11_KEYS", dir.to_str().unwrap()), ("UKEY_PKCS11_READERS", "off")],
        root.path(),
    );
    p11test::assert_matches(&log, "p11test_ref.json");
}
