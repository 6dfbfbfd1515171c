//! `UKEY_PKCS11_LOG`: what the module logs, and where. `LEVEL` (error, warn, info, debug,
//! trace) logs to standard error; `LEVEL:FILE` appends to FILE. Unset: warnings to standard
//! error. No PIN is ever logged: the module's own messages name none, and the driver logs
//! only headers and status words.

use std::sync::Once;

pub const LOG_VAR: &str = "UKEY_PKCS11_LOG";

/// Where and how much to log, from the variable's value.
pub fn parse(value: Option<&str>) -> (String, Option<std::path::PathBuf>) {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => ("warn".into(), None),
        Some(v) => match v.split_once(':') {
            Some((level, file)) => (level.to_string(), Some(file.into())),
            None => (v.to_string(), None),
        },
    }
}

/// Set up logging once per process (the host program may have its own subscriber: then it
/// gets the module's events, and this does nothing).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let (level, file) = parse(std::env::var(LOG_VAR).ok().as_deref());
        let filter = tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| "warn".into());
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
        let _ = match file.and_then(|f| std::fs::OpenOptions::new().create(true).append(true).open(f).ok()) {
            Some(f) => builder.with_writer(std::sync::Mutex::new(f)).with_ansi(false).try_init(),
            None => builder
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init(),
        };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_and_file() {
        assert_eq!(parse(None), ("warn".into(), None));
        assert_eq!(parse(Some("debug")), ("debug".into(), None));
        assert_eq!(parse(Some("info:/tmp/p11.log")), ("info".into(), Some("/tmp/p11.log".into())));
    }
}
