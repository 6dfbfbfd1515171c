//! `ukey`: the virtual USB-Key, its host driver and tools.

mod args;
mod bench;
mod commands;
mod conformance;
mod control;
mod demo;
mod demo_web;
mod flows;
mod output;
mod secrets;
mod serve;
mod services;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use args::{KeyArgs, KeysArgs, SignArgs};
use secrets::PinArgs;

/// ukey — a software USB-Key (PIV, P-256) and the tools to drive and test it.
///
/// Make a virtual key, then use it like a hardware token:
///
///   ukey sim new ./alice --scenario provisioned
///   ukey keys ./alice
///   ukey pin verify --key ./alice --pin 123456
///   ukey sign --key ./alice --slot 9a --pin 123456 --in doc.txt --out doc.sig
///
/// Run `ukey demo` for the whole story in a few seconds, `ukey demo --web` to see it in a browser.
#[derive(Parser, Debug)]
#[command(name = "ukey", version, verbatim_doc_comment, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create and inspect virtual keys
    #[command(subcommand)]
    Sim(SimCommand),
    /// List keys: virtual keys in directories (default: $UKEY_HOME/keys) and keys in PC/SC readers
    Keys(KeysArgs),
    /// Verify, change, unblock the PIN; read its retry counter
    #[command(subcommand)]
    Pin(PinCommand),
    /// Generate key pairs on the key
    #[command(subcommand)]
    Key(KeyCommand),
    /// Certificates on the key: request (CSR), import, export
    #[command(subcommand)]
    Cert(CertCommand),
    /// Sign a file with a key on the token (ECDSA P-256 over SHA-256, DER output)
    Sign(SignArgs),
    /// A local certificate authority for tests
    #[command(subcommand)]
    Ca(CaCommand),
    /// The whole story: provision, wrong PIN, lockout, unblock, sign, verify
    Demo(demo::DemoArgs),
    /// The reference business system: password login, bind, key login, unbind (HTTP/JSON)
    #[command(subcommand)]
    Portal(services::PortalCommand),
    /// The local agent: lets portal pages list the keys here, sign logins and take part in
    /// certificate applications (loopback only)
    Agent(services::AgentArgs),
    /// Run every flow headless — certificate application, password login, bind, key login and
    /// its outcomes, unbind — on a portal, agent and virtual keys of its own, or validate a
    /// deployment (--portal/--agent/--reader)
    Flows(flows::FlowsArgs),
    /// Judge a PIV key against the standard, check by check (SP 800-73-4, ISO 7816-4, Yubico)
    Conformance(conformance::ConformanceArgs),
    /// Measure: full key logins per second against bare P-256 sign+verify
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Make a new virtual key in DIR, in a ready-made state
    New(Box<commands::SimNewArgs>),
    /// Serve virtual keys to the OS smart-card stack (pcscd with vsmartcard-vpcd) until Ctrl-C
    ///
    /// Every PC/SC program (opensc-tool, pkcs11-tool, yubico-piv-tool, browsers) then sees the
    /// key in a reader named "Virtual PCD 00 00" (the second key: "... 00 01"). Needs pcscd and
    /// the vsmartcard-vpcd driver: `apt-get install pcscd vsmartcard-vpcd`.
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// Pull a served key out of its reader (PC/SC programs see the card removed)
    Remove {
        /// Directory of a key that `ukey sim serve` is serving
        dir: PathBuf,
    },
    /// Plug a served key back into its reader
    Insert {
        /// Directory of a key that `ukey sim serve` is serving
        dir: PathBuf,
    },
    /// Whether a served key is in its reader and connected to pcscd
    Status {
        /// Directory of a key that `ukey sim serve` is serving
        dir: PathBuf,
    },
    /// List the defect profiles: keys that depart from the standard in one named way, for
    /// testing hosts and `ukey conformance --sim --defect NAME`
    Defects {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show what is on a virtual key
    Info {
        #[command(flatten)]
        key: KeyArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the manufacturer CA's certificate (PEM): the attestation root a portal on another
    /// machine needs (`ukey portal serve --attestation-roots FILE`) to accept this machine's keys
    Factory {
        /// The manufacturer CA (created if missing; default $UKEY_HOME/factory)
        #[arg(long, value_name = "DIR")]
        factory: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum PinCommand {
    /// Check the PIN (exit 0 only when it is right; prints the tries left)
    Verify {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        pin: PinArgs,
        #[arg(long)]
        json: bool,
    },
    /// Change the PIN (or with --puk-mode, the PUK)
    Change {
        #[command(flatten)]
        key: KeyArgs,
        /// Current PIN
        #[command(flatten)]
        pin: PinArgs,
        /// New PIN (6 to 8 characters)
        #[arg(long, env = "UKEY_NEW_PIN", hide_env_values = true)]
        new_pin: Option<proto::secret::Pin>,
        /// Change the PUK instead: --pin is the current PUK, --new-pin the new PUK
        #[arg(long)]
        puk_mode: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set a new PIN with the PUK (after the PIN was blocked)
    Unblock {
        #[command(flatten)]
        key: KeyArgs,
        /// The PUK
        #[arg(long, env = "UKEY_PUK", hide_env_values = true)]
        puk: Option<proto::secret::Puk>,
        /// The new PIN
        #[arg(long, env = "UKEY_NEW_PIN", hide_env_values = true)]
        new_pin: Option<proto::secret::Pin>,
        #[arg(long)]
        json: bool,
    },
    /// PIN tries left, without spending one
    Retries {
        #[command(flatten)]
        key: KeyArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Generate a P-256 key pair in a slot; prints the public key (PEM)
    ///
    /// Keep the public key: a card without the Yubico GET METADATA extension cannot tell it
    /// again, and `ukey cert request --pubkey FILE` needs it there. A certificate left in the
    /// slot for the key pair it replaces is removed.
    Generate(commands::GenerateArgs),
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// Make a certificate request (PKCS#10, PEM) signed by the key in the slot
    ///
    /// The request names the slot's public key: --pubkey FILE (checked against the card's
    /// metadata when it has them), else the card's metadata (Yubico), else the slot's
    /// certificate. A card without metadata and without a certificate in the slot needs
    /// --pubkey. The card's signature must verify with the key named, or nothing is written.
    Request(commands::RequestArgs),
    /// Store a certificate (PEM or DER) in a slot
    Import(commands::ImportArgs),
    /// Print the certificate in a slot as PEM
    Export(commands::ExportArgs),
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Create a CA in DIR
    Init(commands::CaInitArgs),
    /// Issue a certificate from a CSR
    Issue(commands::CaIssueArgs),
}

/// A reader that goes away (`ukey sim info --json | head`) ends the program quietly, as it
/// does any Unix tool, rather than as a panic in the middle of printing: Rust ignores SIGPIPE
/// by default.
fn default_sigpipe() {
    // SAFETY: restores a signal's default disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = Cli::parse();
    // Logs (key inserted, pcscd lost, ...) go to stderr; RUST_LOG=debug shows more. Commands
    // that run the services in-process to print a report keep the services' news to warnings.
    let quiet = matches!(cli.command, Command::Flows(_) | Command::Demo(_) | Command::Bench(_));
    let default_filter = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into())
        // The flows' HTTP client keeps cookies with cookie_store, which logs every Set-Cookie
        // (session tokens, of a deployment too with `flows --portal`) at debug: never below warn.
        .add_directive("cookie_store=warn".parse().expect("a valid directive"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    let result = match cli.command {
        Command::Sim(SimCommand::New(a)) => commands::sim_new(*a),
        Command::Sim(SimCommand::Info { key, json }) => commands::sim_info(&key, json),
        Command::Sim(SimCommand::Defects { json }) => conformance::list_defects(json),
        Command::Sim(SimCommand::Serve(a)) => serve::run(a),
        Command::Sim(SimCommand::Factory { factory }) => {
            keys::factory::factory(factory.as_deref()).map_err(anyhow::Error::from).map(|f| {
                print!("{}", f.certificate_pem());
                ExitCode::SUCCESS
            })
        }
        Command::Sim(SimCommand::Remove { dir }) => serve::send(&dir, keys::served::ControlCommand::Remove),
        Command::Sim(SimCommand::Insert { dir }) => serve::send(&dir, keys::served::ControlCommand::Insert),
        Command::Sim(SimCommand::Status { dir }) => serve::send(&dir, keys::served::ControlCommand::Status),
        Command::Keys(a) => commands::keys(a),
        Command::Pin(PinCommand::Verify { key, pin, json }) => commands::pin_verify(&key, &pin, json),
        Command::Pin(PinCommand::Change { key, pin, new_pin, puk_mode, json }) => {
            commands::pin_change(&key, &pin, new_pin, puk_mode, json)
        }
        Command::Pin(PinCommand::Unblock { key, puk, new_pin, json }) => {
            commands::pin_unblock(&key, puk, new_pin, json)
        }
        Command::Pin(PinCommand::Retries { key, json }) => commands::pin_retries(&key, json),
        Command::Key(KeyCommand::Generate(a)) => commands::key_generate(a),
        Command::Cert(CertCommand::Request(a)) => commands::cert_request(a),
        Command::Cert(CertCommand::Import(a)) => commands::cert_import(a),
        Command::Cert(CertCommand::Export(a)) => commands::cert_export(a),
        Command::Sign(a) => commands::sign(a),
        Command::Ca(CaCommand::Init(a)) => commands::ca_init(a),
        Command::Ca(CaCommand::Issue(a)) => commands::ca_issue(a),
        Command::Demo(a) => demo::run(a),
        Command::Portal(c) => services::portal(c),
        Command::Agent(a) => services::agent(a),
        Command::Flows(a) => flows::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Conformance(a) => conformance::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[path = "../../testsupport/leaks.rs"]
mod leaks;

#[cfg(test)]
mod tests {
    use super::*;

    /// The parsed command line (clap keeps every argument) prints no PIN, PUK, management
    /// key or password, whatever command carried it.
    #[test]
    fn parsed_arguments_never_show_secrets() {
        let pin = "739184";
        let new_pin = "264958";
        let puk = "58204617";
        let mgmt = "a73c915e08d26bf419c8723de50a964fb12e8357ca641df9";
        let password = "Passw0rd-739";
        let lines: [&[&str]; 9] = [
            &["pin", "verify", "--key", "k", "--pin", pin],
            &["pin", "change", "--key", "k", "--pin", pin, "--new-pin", new_pin],
            &["pin", "unblock", "--key", "k", "--puk", puk, "--new-pin", new_pin],
            &["sim", "new", "k", "--pin", pin, "--puk", puk, "--mgmt-key", mgmt],
            &["key", "generate", "--key", "k", "--slot", "9a", "--mgmt-key", mgmt],
            &["sign", "--key", "k", "--slot", "9a", "--pin", pin, "--in", "f", "--out", "g"],
            &["agent", "--mgmt-key", mgmt],
            &["portal", "seed", "--password", password, "--staff-password", password],
            &["flows", "--portal", "http://127.0.0.1:1", "--password", password, "--pin", pin],
        ];
        crate::leaks::self_test();
        for args in lines {
            let cli = Cli::try_parse_from([&["ukey"][..], args].concat()).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let shown = format!("{cli:?}");
            for secret in [pin, new_pin, puk, mgmt, password] {
                crate::leaks::assert_hidden(&format!("ukey {}", args[..2].join(" ")), &shown, secret.as_bytes());
            }
        }
    }
}
