//! `ukey portal` (the business system) and `ukey agent` (the local bridge between portal pages
//! and the keys on this machine), as long-running services.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use host_driver::agent::AgentConfig;
use portal::config::Config;
use portal::password::Cost;
use portal::store::Store;
use portal::Portal;
use proto::clock::SystemClock;
use proto::Clock;

/// A tokio runtime whose blocking threads have room for a card's state.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(8 << 20).build().context("async runtime")
}

#[derive(Subcommand, Debug)]
pub enum PortalCommand {
    /// Run the portal's HTTP/JSON API until Ctrl-C
    Serve(Box<PortalServeArgs>),
    /// Add the demo enterprise, user and accounts (示例科技有限公司 / zhangsan / 财务账号, 申报账号)
    Seed(PortalSeedArgs),
}

#[derive(Args, Debug)]
pub struct DbArgs {
    /// Database: sqlite:PATH (default $UKEY_HOME/portal.db) or postgres://user:pass@host/db
    #[arg(long, value_name = "URL", env = "UKEY_PORTAL_DB")]
    pub db: Option<String>,
}

impl DbArgs {
    fn url(&self) -> Result<String> {
        match &self.db {
            Some(url) => Ok(url.clone()),
            None => Ok(format!("sqlite:{}", keys::home::required()?.join("portal.db").display())),
        }
    }
}

#[derive(Args, Debug)]
pub struct PortalServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The portal's origin as browsers see it (what keys sign for); default http://LISTEN
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,
    /// The issuing CA whose certificates may log in (default $UKEY_HOME/ca, created if missing)
    #[arg(long, value_name = "DIR")]
    pub ca: Option<PathBuf>,
    /// Remind at login when the certificate expires within this many days
    #[arg(long, default_value_t = 30)]
    pub expiry_warning_days: i64,
    /// Test mode: serve the simulated payment provider and the SMS/email outbox under
    /// /api/sandbox (never on a portal real users reach: the outbox shows SMS codes)
    #[arg(long)]
    pub sandbox: bool,
    /// Secret shared with the payment provider, which signs its notifications with it. Give
    /// every instance behind one load balancer the same (default: random per start)
    #[arg(long, env = "UKEY_PAYMENT_SECRET", hide_env_values = true)]
    pub payment_secret: Option<String>,
    /// Validity of certificates issued for approved applications, in days
    #[arg(long, default_value_t = 365)]
    pub cert_days: u64,
    /// Requests per minute one session (or logged-in user) may make to password login,
    /// challenge, key login, bind and new applications. On PostgreSQL the count is kept in the database, so instances
    /// behind one load balancer share it; on SQLite this process counts
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,
    /// The same actions per minute from one client address, all its sessions together (one
    /// address may be a whole office behind NAT)
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_address: u32,
    /// New sessions per minute from one client address ("fresh session, challenge, repeat"
    /// meets a 429)
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub sessions_per_address: u32,
    /// A reverse proxy (address or CIDR, repeatable) whose X-Forwarded-For names the client.
    /// Requests from anywhere else count under their own peer address, whatever they claim
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_net)]
    pub trusted_proxies: Vec<portal::client::IpNet>,
    /// PEM file of the token manufacturers' CA certificates: an application is confirmed only
    /// with an attestation of the key pair that chains to one of them (default: this machine's
    /// virtual-key factory, $UKEY_HOME/factory, see `ukey sim factory`). For real YubiKeys add
    /// Yubico's PIV attestation root and intermediates (see README)
    #[arg(long, value_name = "PEM")]
    pub attestation_roots: Option<PathBuf>,
    /// Where the login page finds the certificate application environment (`ukey agent`) on
    /// the user's computer: a loopback URL
    #[arg(long, value_name = "URL", default_value = portal::config::DEFAULT_AGENT_URL, value_parser = parse_agent_url)]
    pub agent_url: String,
    /// Serve https with this PEM certificate chain (leaf first; rustls, no system library).
    /// Browsers let pages reach the local agent only from a secure context: a portal users
    /// reach by name needs https (http://127.0.0.1 is secure only on the same machine)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key (PKCS#8, SEC1 or PKCS#1)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// The agent answers only on loopback, so the pages may look for it nowhere else.
fn parse_agent_url(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let host_only = host.map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h));
    match host_only {
        Some("127.0.0.1" | "localhost" | "[::1]") => Ok(s.trim_end_matches('/').to_string()),
        _ => Err(format!("{s:?}: the agent's URL is http(s)://127.0.0.1:PORT (or localhost, [::1]), where it listens")),
    }
}

/// The manufacturers whose attestations the portal trusts: the PEM file given, else the local
/// factory (made on first use, like the CA).
fn attestation_roots(pem: Option<&Path>) -> Result<ca::attestation::Roots> {
    match pem {
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("reading --attestation-roots {}", path.display()))?;
            ca::attestation::Roots::from_pem(&text).with_context(|| format!("--attestation-roots {}", path.display()))
        }
        None => {
            let mut roots = ca::attestation::Roots::default();
            roots.add_der(&keys::factory::factory(None)?.certificate_der())?;
            Ok(roots)
        }
    }
}

/// An address (a /32 or /128) or a CIDR network.
fn parse_net(s: &str) -> Result<portal::client::IpNet, String> {
    s.parse::<portal::client::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(portal::client::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an address nor a CIDR network (e.g. 10.0.0.0/8)"))
}

#[derive(Args, Debug)]
pub struct PortalSeedArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Password of the demo user zhangsan
    #[arg(long, env = "UKEY_PORTAL_PASSWORD", hide_env_values = true)]
    pub password: proto::secret::Password,
    /// Also add the staff member lisi (reviews certificate applications) with this password
    #[arg(long, env = "UKEY_PORTAL_STAFF_PASSWORD", hide_env_values = true)]
    pub staff_password: Option<proto::secret::Password>,
}

pub fn portal(cmd: PortalCommand) -> Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            PortalCommand::Serve(a) => portal_serve(*a).await,
            PortalCommand::Seed(a) => portal_seed(a).await,
        }
    })
}

async fn portal_serve(a: PortalServeArgs) -> Result<ExitCode> {
    let url = a.db.url()?;
    let store = Store::open(&url).await.with_context(|| format!("opening the portal database {url}"))?;
    let ca_dir = a.ca.clone().map_or_else(keys::home::ca_dir, Ok)?;
    let ca = ca::Ca::open_or_create(&ca_dir, "CN=ukey test CA,O=ukey", 3650, &SystemClock)
        .with_context(|| format!("CA in {}", ca_dir.display()))?;
    let listener =
        tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("listening on {}", a.listen))?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(portal::tls::server_config(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let origin = a.origin.clone().unwrap_or_else(|| format!("{scheme}://{}", a.listen));
    let mut config = Config::new(&origin);
    config.expiry_warning_days = a.expiry_warning_days;
    config.sandbox = a.sandbox;
    config.agent_url = a.agent_url.clone();
    config.enroll.cert_days = a.cert_days;
    config.rate_per_minute = a.rate_limit;
    config.rate_per_address_per_minute = a.rate_limit_per_address;
    config.sessions_per_address_per_minute = a.sessions_per_address;
    config.trusted_proxies = a.trusted_proxies.clone();
    config.attestation_roots = attestation_roots(a.attestation_roots.as_deref())?;
    if let Some(secret) = &a.payment_secret {
        anyhow::ensure!(secret.len() >= 16, "--payment-secret: use at least 16 characters");
        config.payment_secret = secret.as_bytes().to_vec();
    }
    let attested_by = config.attestation_roots.subjects().join("; ");
    let ca = Arc::new(ca.with_crl_url(config.crl_url()));
    let state = Portal::new(store, ca, Arc::new(SystemClock), config);
    println!("portal on {scheme}://{} (origin {origin}, database {url}, CA {})", a.listen, ca_dir.display());
    println!("login page: {origin}/ (finds the agent at {}; start it with `ukey agent`)", a.agent_url);
    println!("certificate applications from keys attested by: {attested_by}");
    match a.trusted_proxies.as_slice() {
        [] => println!("clients counted by peer address (no --trusted-proxy: X-Forwarded-For ignored)"),
        p => println!(
            "clients counted by X-Forwarded-For from {}, else by peer address",
            p.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
    println!(
        "API: GET /api/session, POST /api/login/password, /api/challenge, /api/login/key, /api/bind, /api/unbind,"
    );
    println!(
        "     /api/applications (certificate application), /api/staff/applications (review), /api/payments/notify"
    );
    if a.sandbox {
        println!(
            "SANDBOX: simulated payments at POST /api/sandbox/pay/ID, SMS/email at GET /api/sandbox/outbox?to=..."
        );
    }
    let served = async {
        match tls {
            Some(config) => portal::serve_tls(portal::tls::TlsListener::new(listener, config)?, state).await,
            None => portal::serve(listener, state).await,
        }
    };
    tokio::select! {
        r = served => r.context("portal server")?,
        _ = tokio::signal::ctrl_c() => println!("stopping"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn portal_seed(a: PortalSeedArgs) -> Result<ExitCode> {
    let url = a.db.url()?;
    let store = Store::open(&url).await.with_context(|| format!("opening the portal database {url}"))?;
    let now = SystemClock.now_unix() as i64;
    let staff_password = a.staff_password.as_ref().map(|p| p.expose());
    let s = portal::seed::seed(&store, a.password.expose(), staff_password, Cost::DEFAULT, now).await?;
    let staff = s.staff.map(|u| format!(", staff {}", u.username)).unwrap_or_default();
    let accounts: Vec<&str> = s.accounts.iter().map(|a| a.name.as_str()).collect();
    println!(
        "seeded {url}: enterprise {} ({}), user {}{staff}, accounts {}",
        s.enterprise.name,
        s.enterprise.credit_code,
        s.user.username,
        accounts.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Loopback address to listen on
    #[arg(long, default_value = "127.0.0.1:7781")]
    pub listen: SocketAddr,
    /// Origins whose pages may use the agent, e.g. http://127.0.0.1:8080 (repeatable). None by
    /// default: without it no web page may call the agent (its own 证书助手 page still works).
    /// Only this user's programs are answered, whatever origin they claim
    #[arg(long = "allow-origin", value_name = "URL")]
    pub allow_origin: Vec<String>,
    /// Directories of virtual keys to offer besides the PC/SC readers (default $UKEY_HOME/keys)
    #[arg(long, value_name = "DIR")]
    pub keys: Vec<PathBuf>,
    /// The keys' management key, for certificate applications (generate a key pair, write the
    /// certificate)
    #[command(flatten)]
    pub mgmt: crate::args::MgmtArgs,
}

pub fn agent(a: AgentArgs) -> Result<ExitCode> {
    anyhow::ensure!(a.listen.ip().is_loopback(), "the agent listens on loopback only, not {}", a.listen);
    let origins = a.allow_origin;
    let dirs = if a.keys.is_empty() { vec![keys::home::keys_dir()?] } else { a.keys };
    runtime()?.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("listening on {}", a.listen))?;
        let pages = if origins.is_empty() { "no web page (give --allow-origin URL)".to_string() } else { origins.join(", ") };
        println!(
            "agent on http://{} for {pages}, answering uid {} only; keys: PC/SC readers and {}",
            a.listen,
            localpeer::own_uid(),
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        println!("certificate assistant (证书助手): http://{}/", a.listen);
        let config = AgentConfig {
            management_key: crate::commands::mgmt_key(&a.mgmt)?,
            own_origin: Some(format!("http://{}", a.listen)),
            ..AgentConfig::new(origins)
        };
        tokio::select! {
            r = host_driver::agent::serve(listener, Arc::new(keys::provider::MachineKeys::new(dirs)), config) => r.context("agent server")?,
            _ = tokio::signal::ctrl_c() => println!("stopping"),
        }
        Ok(ExitCode::SUCCESS)
    })
}
