//! Where PINs come from: a flag, a file, an environment variable, or a prompt without echo.
//! Held in proto's secret types from the start: never printed, never logged, wiped when dropped.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use proto::secret::Pin;
use zeroize::Zeroizing;

#[derive(Args, Debug, Clone)]
pub struct PinArgs {
    /// The PIN (visible in the process list: prefer --pin-file or UKEY_PIN in shared machines)
    #[arg(long, env = "UKEY_PIN", hide_env_values = true)]
    pub pin: Option<Pin>,
    /// Read the PIN from the first line of this file
    #[arg(long, value_name = "FILE", conflicts_with = "pin")]
    pub pin_file: Option<PathBuf>,
}

impl PinArgs {
    pub fn get(&self, what: &str) -> Result<Pin> {
        resolve(self.pin.as_ref(), self.pin_file.as_ref(), what)
    }
}

/// A secret from a value, a file, or a no-echo prompt when a person is at the terminal.
pub fn resolve<T: Clone + From<String>>(value: Option<&T>, file: Option<&PathBuf>, what: &str) -> Result<T> {
    if let Some(v) = value {
        return Ok(v.clone());
    }
    if let Some(f) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("cannot read the {what} from {}", f.display()))?,
        );
        return Ok(T::from(text.lines().next().unwrap_or("").trim_end_matches('\r').to_string()));
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("{what}: "))
            .map(T::from)
            .with_context(|| format!("cannot read the {what}"));
    }
    bail!("no {what} given: pass it with a flag, a file, or the environment variable (see --help)")
}
