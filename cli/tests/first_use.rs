//! Services and commands started together on a fresh `$UKEY_HOME`, as systemd or a CI job
//! starting them at once would: every one comes up. The first-use files (the test CA, the
//! manufacturer CA, the SQLite database) are created once, whole, by one of them; the others
//! wait and open what it made (a reader once saw "PEM preamble contains invalid data (NUL
//! byte)" in a CA another process was still writing).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

fn start(home: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ukey"))
        .env("UKEY_HOME", home)
        .env_remove("UKEY_KEY")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ukey runs")
}

/// Whether `child` came up: a server printed its first line, a command exited 0. Servers are
/// stopped then. The error output otherwise.
fn came_up(mut child: Child, server: bool) -> Result<(), String> {
    let stderr = |c: &mut Child| {
        let mut e = String::new();
        if let Some(mut s) = c.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut s, &mut e);
        }
        e
    };
    if server {
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if line.is_empty() {
            return Err(format!("{status}: {}", stderr(&mut child)));
        }
        Ok(())
    } else {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)))
        }
    }
}

#[test]
fn eight_processes_started_at_once_on_a_fresh_home_all_come_up() {
    for round in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let h = home.as_path();
        let k = |n: u32| home.join("keys").join(format!("k{n}")).display().to_string();
        let (k1, k2, k3) = (k(1), k(2), k(3));
        // All started before any is waited on.
        let started = [
            (start(h, &["portal", "serve", "--listen", "127.0.0.1:0"]), true),
            (start(h, &["sim", "new", &k1]), false),
            (start(h, &["portal", "serve", "--listen", "127.0.0.1:0"]), true),
            (start(h, &["sim", "new", &k2, "--scenario", "provisioned"]), false),
            (start(h, &["portal", "seed", "--password", "Passw0rd-739"]), false),
            (start(h, &["sim", "new", &k3]), false),
            (start(h, &["agent", "--listen", "127.0.0.1:0", "--keys", &home.join("keys").display().to_string()]), true),
            (start(h, &["portal", "serve", "--listen", "127.0.0.1:0"]), true),
        ];
        let failed: Vec<String> = started
            .into_iter()
            .enumerate()
            .filter_map(|(i, (child, server))| came_up(child, server).err().map(|e| format!("process {i}: {e}")))
            .collect();
        assert!(failed.is_empty(), "round {round}: {}", failed.join("\n"));
    }
}
