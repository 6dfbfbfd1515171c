//! What the module reads and writes on disk near secrets, judged through pkcs11-tool loading
//! the module: a broken pkcs11.toml is reported by file, line and column, never by its text (a
//! mistyped `mgmt_key` line would put the key in a log); a pkcs11.toml with a management key
//! that others may read is refused; the log file is made 0600 and never followed through a
//! symbolic link. Each run is a process of its own, as logging is set up once per process.
//! Under CI=true a missing pkcs11-tool fails the test; elsewhere it says SKIPPED.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{have, module};
use token_sim::scenario::Scenario;

/// The factory management key.
const MGMT_KEY: &str = "010203040506070801020304050607080102030405060708";

/// pkcs11-tool on the module with only `env` of the module's settings (and no
/// `~/.ukey/pkcs11.toml` of this machine): (success, stdout + stderr).
fn tool(home: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut c = Command::new("pkcs11-tool");
    c.arg("--module").arg(module()).args(args).env("UKEY_HOME", home).env("UKEY_PKCS11_READERS", "off");
    for var in ["UKEY_PKCS11_KEYS", "UKEY_PKCS11_MGMT_KEY", "UKEY_PKCS11_CONFIG", "UKEY_PKCS11_LOG"] {
        c.env_remove(var);
    }
    let o = c.envs(env.iter().copied()).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_mistyped_mgmt_key_line_is_reported_by_place_never_by_content() {
    if !have(&["pkcs11-tool"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = common::key(root.path(), "hal", Scenario::Provisioned, "hal");
    let config = root.path().join("pkcs11.toml");
    // The quotes forgotten: not TOML.
    let key = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4";
    write(&config, &format!("keys = [{:?}]\nreaders = false\nmgmt_key = {key}\n", dir.display()), 0o600);
    let (_, out) = tool(root.path(), &[("UKEY_PKCS11_CONFIG", config.to_str().unwrap())], &["-L"]);
    let place = format!("{}:3:", config.display());
    assert!(out.contains(&place) && out.contains("not valid TOML"), "the error names the place:\n{out}");
    assert!(!out.contains("a1b2c3"), "the management key's line was echoed:\n{out}");
}

#[test]
fn a_config_file_with_a_mgmt_key_that_others_may_read_is_refused() {
    if !have(&["pkcs11-tool"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = common::key(root.path(), "ida", Scenario::Fresh, "ida");
    let config = root.path().join("pkcs11.toml");
    let env = [("UKEY_PKCS11_KEYS", dir.to_str().unwrap()), ("UKEY_PKCS11_CONFIG", config.to_str().unwrap())];
    let generate = ["--login", "--pin", "123456", "--keypairgen", "--key-type", "EC:prime256v1", "--id", "03"];
    write(&config, &format!("mgmt_key = \"{MGMT_KEY}\"\n"), 0o644);
    let (ok, out) = tool(root.path(), &env, &generate);
    assert!(!ok && out.contains("CKR_USER_NOT_LOGGED_IN"), "the key of a file others read is not used:\n{out}");
    assert!(out.contains(&format!("chmod 600 {}", config.display())), "the log says what to do:\n{out}");
    // Private, the same file is used.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = tool(root.path(), &env, &generate);
    assert!(ok && out.contains("KEY MAN pubkey"), "{out}");
}

#[test]
fn the_log_file_is_private_and_a_symbolic_link_there_is_refused() {
    if !have(&["pkcs11-tool"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // A key directory that is not there: the module warns about it.
    let missing = root.path().join("no-such-key");
    let keys = ("UKEY_PKCS11_KEYS", missing.to_str().unwrap());
    let log = root.path().join("p11.log");
    let setting = format!("info:{}", log.display());
    let (ok, out) = tool(root.path(), &[keys, ("UKEY_PKCS11_LOG", &setting)], &["-L"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600, "a new log file is 0600");
    assert!(std::fs::read_to_string(&log).unwrap().contains("its slot stays empty"), "the log is written");

    // A link at the log's path, to a file the module must not write.
    let target = root.path().join("someone-elses-file");
    write(&target, "", 0o600);
    let link = root.path().join("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let setting = format!("info:{}", link.display());
    let (ok, out) = tool(root.path(), &[keys, ("UKEY_PKCS11_LOG", &setting)], &["-L"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "", "the link was followed");
    assert!(out.contains("symbolic link") && out.contains(&link.display().to_string()), "a warning says so:\n{out}");
    assert!(out.contains("its slot stays empty"), "the log goes to standard error instead:\n{out}");
}
