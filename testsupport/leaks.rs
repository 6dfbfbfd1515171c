//! Does a `{:?}` string give a secret away? In any encoding a Debug impl could use: the bytes
//! as text, hex (either case, with or without separators), or a decimal or hex byte array.

/// Panic, naming `what`, when `debug` shows `secret` in any encoding.
pub fn assert_hidden(what: &str, debug: &str, secret: &[u8]) {
    assert!(secret.len() >= 4, "pick secrets long enough not to match by chance");
    let mut forms: Vec<String> = Vec::new();
    if let Ok(text) = std::str::from_utf8(secret) {
        forms.push(text.to_string());
    }
    let hex: Vec<String> = secret.iter().map(|b| format!("{b:02x}")).collect();
    for sep in ["", " ", ":", ", "] {
        forms.push(hex.join(sep));
        forms.push(hex.join(sep).to_uppercase());
    }
    let dec: Vec<String> = secret.iter().map(u8::to_string).collect();
    forms.push(dec.join(", "));
    forms.push(dec.join(","));
    let prefixed: Vec<String> = secret.iter().map(|b| format!("0x{b:02x}")).collect();
    forms.push(prefixed.join(", "));
    forms.push(prefixed.join(", ").to_uppercase().replace("0X", "0x"));
    for form in forms {
        assert!(!debug.contains(&form), "{what}: {{:?}} shows a secret as {form:?}: {debug}");
    }
}

/// The check must see a secret that is there (a check that cannot fail proves nothing).
#[allow(dead_code)]
pub fn self_test() {
    let secret = b"\x73\x91\x84\xA2";
    for shown in
        [format!("{:?}", secret), format!("{:02X?}", secret), "x7391 84a2".replace(' ', ""), "PIN 0x73, 0x91".into()]
    {
        let shown = if shown.starts_with("PIN") { format!("{shown}, 0x84, 0xa2") } else { shown };
        let caught = std::panic::catch_unwind(|| assert_hidden("self test", &shown, secret)).is_err();
        assert!(caught, "assert_hidden misses {shown}");
    }
}
