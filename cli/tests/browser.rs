//! The portal's pages in a real browser: Debian's Chromium driven by its chromedriver over
//! WebDriver, against a real `ukey portal serve`, a real `ukey agent` and a virtual key served
//! on a vpcd reader (`ukey sim serve`, pcscd; removed and inserted with `ukey sim remove /
//! insert`). One
//! browser and one set of services for the whole binary; the tests take turns. Every page a
//! test visits is checked by axe-core (no serious or critical violation) and for console
//! errors; each step leaves a screenshot under target/screenshots/TEST/.
//!
//! Without chromium, chromedriver, axe-core or pcscd with vpcd the tests say SKIPPED, except
//! under CI=true, where they fail (scripts/test.sh installs and starts them).

#[path = "../../testsupport/vpcd.rs"]
mod vpcd_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "Passw0rd-123";
/// The seeded user's key: 张三 of the seeded enterprise.
const SUBJECT: &str = "CN=张三,organizationIdentifier=91350100M000100Y43,O=示例科技有限公司";

/// A `ukey` or chromedriver process in a process group of its own, killed with its group
/// (Chromium goes with its chromedriver) when dropped, and at the latest when the test binary
/// exits: the world lives in a static, which Rust never drops.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        kill_group(self.0.id());
        let _ = self.0.wait();
    }
}

static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn kill_group(pgid: u32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(pgid as i32), libc::SIGKILL);
    }
}

extern "C" fn kill_all_groups() {
    if let Ok(groups) = GROUPS.lock() {
        for g in groups.iter() {
            kill_group(*g);
        }
    }
}

/// Start `cmd` in a new process group that dies with this binary.
fn start(cmd: &mut Command) -> Proc {
    use std::os::unix::process::CommandExt;
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function; it only locks a mutex and calls kill.
        unsafe {
            libc::atexit(kill_all_groups);
        }
    });
    let child = cmd.process_group(0).spawn().unwrap();
    GROUPS.lock().unwrap_or_else(|p| p.into_inner()).push(child.id());
    Proc(child)
}

struct World {
    _home: tempfile::TempDir,
    home: PathBuf,
    portal: String,
    agent: String,
    /// An empty directory of directory keys: the agent finds the key in its reader.
    keys: PathBuf,
    /// The key's directory, served on the first vpcd reader.
    key_dir: PathBuf,
    _serve: Proc,
    agent_proc: Option<Proc>,
    _portal_proc: Proc,
    _driver: Proc,
    driver_url: String,
    axe: String,
    rt: tokio::runtime::Runtime,
    browser: Client,
}

fn ukey(home: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ukey")).args(args).env("UKEY_HOME", home).output().unwrap();
    assert!(out.status.success(), "ukey {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn spawn(home: &Path, log: &str, args: &[&str]) -> Proc {
    let log = std::fs::File::create(home.join(log)).unwrap();
    start(
        Command::new(env!("CARGO_BIN_EXE_ukey"))
            .args(args)
            .env("UKEY_HOME", home)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log)),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Until something listens on `addr`, or 20 s.
fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never answered");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// axe-core's script: $UKEY_AXE_JS, or where scripts/test.sh installs it.
fn axe_script() -> Option<String> {
    let path = std::env::var_os("UKEY_AXE_JS").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/axe/node_modules/axe-core/axe.min.js")
    });
    std::fs::read_to_string(path).ok()
}

fn start_agent(w_home: &Path, agent: &str, portal: &str, keys: &Path) -> Proc {
    let p = spawn(
        w_home,
        "agent.log",
        &["agent", "--listen", &agent[7..], "--allow-origin", portal, "--keys", keys.to_str().unwrap()],
    );
    wait_listening(&agent[7..]);
    p
}

fn world() -> Option<MutexGuard<'static, World>> {
    static WORLD: OnceLock<Option<Mutex<World>>> = OnceLock::new();
    let w = WORLD.get_or_init(|| {
        let missing: Vec<&str> =
            [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect::<Vec<_>>();
        let axe = axe_script();
        if !missing.is_empty() || axe.is_none() {
            let why =
                format!("missing {missing:?}{}", if axe.is_none() { " and axe-core (scripts/test.sh)" } else { "" });
            testsupport::skip(format_args!("Chromium, chromedriver and axe-core: {why}"));
            return None;
        }
        // The vpcd readers are this binary's until it exits (the guard is never let go).
        let vpcd = vpcd_support::begin()?;
        std::mem::forget(vpcd);
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_path_buf();
        ukey(&home, &["portal", "seed", "--password", PASSWORD, "--staff-password", "Review-Pass1"]);
        let keys = home.join("no-directory-keys");
        std::fs::create_dir_all(&keys).unwrap();
        // A key from the CA the portal trusts ($UKEY_HOME/ca), not bound yet, in a reader.
        let key = home.join("zhangsan");
        ukey(
            &home,
            &["sim", "new", key.to_str().unwrap(), "--scenario", "provisioned", "--seed", "71", "--subject", SUBJECT],
        );
        let (pp, ap, dp) = (free_port(), free_port(), free_port());
        let portal = format!("http://127.0.0.1:{pp}");
        let agent = format!("http://127.0.0.1:{ap}");
        let serve = spawn(&home, "serve.log", &["sim", "serve", key.to_str().unwrap()]);
        vpcd_support::wait_card(vpcd_support::READER[0], true);
        let portal_proc = spawn(
            &home,
            "portal.log",
            &["portal", "serve", "--sandbox", "--listen", &portal[7..], "--agent-url", &agent],
        );
        let agent_proc = start_agent(&home, &agent, &portal, &keys);
        wait_listening(&portal[7..]);
        let driver =
            start(Command::new(CHROMEDRIVER).arg(format!("--port={dp}")).stdout(Stdio::null()).stderr(Stdio::null()));
        let driver_url = format!("http://127.0.0.1:{dp}");
        wait_listening(&driver_url[7..]);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let browser = rt.block_on(open_browser(&driver_url, &home));
        Some(Mutex::new(World {
            _home: dir,
            home,
            portal,
            agent,
            keys,
            key_dir: key,
            _serve: serve,
            agent_proc: Some(agent_proc),
            _portal_proc: portal_proc,
            _driver: driver,
            driver_url,
            axe: axe.unwrap(),
            rt,
            browser,
        }))
    });
    let mut g = w.as_ref()?.lock().unwrap_or_else(|p| p.into_inner());
    // A test that stopped the agent and failed before starting it again.
    if g.agent_proc.is_none() {
        let (home, agent, portal, keys) = (g.home.clone(), g.agent.clone(), g.portal.clone(), g.keys.clone());
        g.agent_proc = Some(start_agent(&home, &agent, &portal, &keys));
    }
    Some(g)
}

async fn open_browser(driver: &str, home: &Path) -> Client {
    let profile = home.join("chromium-profile");
    let caps = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display()),
            ],
            // navigator.language and Accept-Language come from this pref, not from --lang.
            "prefs": {"intl.accept_languages": "zh-CN,zh"},
        },
    });
    let caps: serde_json::Map<String, Value> = serde_json::from_value(caps).unwrap();
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("chromedriver starts a Chromium session")
}

/// One test's steps: screenshots numbered in order, and the page checks.
struct Steps<'a> {
    w: &'a World,
    dir: PathBuf,
    n: usize,
}

impl<'a> Steps<'a> {
    fn new(w: &'a World, test: &str) -> Steps<'a> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("screenshots of {test}: {}", dir.display());
        Steps { w, dir, n: 0 }
    }

    fn c(&self) -> &Client {
        &self.w.browser
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.w.rt.block_on(f)
    }

    fn goto(&mut self, path: &str) {
        let url = format!("{}{path}", self.w.portal);
        self.goto_url(&url);
    }

    fn goto_url(&mut self, url: &str) {
        // Through a blank page: going to the same URL with another #fragment would not load it.
        self.run(self.c().goto("about:blank")).unwrap();
        self.run(self.c().goto(url)).unwrap();
        self.console_errors(); // start each page with an empty log
    }

    /// The screenshot of this step, at the window's size.
    fn shot(&mut self, name: &str) {
        self.n += 1;
        let png = self.run(self.c().screenshot()).unwrap();
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.n)), png).unwrap();
    }

    /// The same step at 1280x800 and at a 390x844 phone.
    fn shots(&mut self, name: &str) {
        self.size(1280, 800);
        self.shot(&format!("{name}-1280"));
        self.size(390, 844);
        self.shot(&format!("{name}-390"));
        self.size(1280, 800);
    }

    fn size(&self, w: u32, h: u32) {
        self.run(self.c().set_window_size(w, h)).unwrap();
    }

    /// Console errors since the last call (chromedriver's log endpoint).
    fn console_errors(&self) -> Vec<String> {
        let session = self.run(self.c().session_id()).unwrap().expect("a session");
        let url = format!("{}/session/{session}/se/log", self.w.driver_url);
        let v: Value = self.run(async { reqwest_post(&url, json!({"type": "browser"})).await });
        v["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    // Chromium logs every 4xx answer ("Failed to load resource: ... status of
                    // 401"): the API's refusals (wrong password, wrong PIN) are answers the page
                    // shows, not errors of the page. Script errors and 5xx still count.
                    // Only for calls of the API and the agent: a page, script or style sheet
                    // that fails to load is an error of the page.
                    .filter(|e| {
                        let m = e["message"].as_str().unwrap_or("");
                        let call = ["/api/", "/sign ", "/assistant/", "/enroll/"].iter().any(|p| m.contains(p));
                        !(call && m.contains("Failed to load resource: the server responded with a status of 4"))
                    })
                    // A stopped agent refuses connections: the page shows that state (the
                    // agent-missing test), and Chromium logs each attempt to reach it.
                    .filter(|e| {
                        let m = e["message"].as_str().unwrap_or("");
                        !(m.contains(&self.w.agent.replacen("http", "ws", 1)) && m.contains("ERR_CONNECTION_REFUSED"))
                    })
                    .map(|e| e["message"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// axe-core on the page as it is now: no serious or critical violation, no console error.
    fn check_page(&self, what: &str) {
        let result = self
            .run(self.c().execute_async(
                &format!(
                    "{}\nconst done = arguments[arguments.length - 1];\
                     axe.run(document, {{resultTypes: ['violations']}}).then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify([{{id: 'axe-failed', impact: 'critical', help: String(e)}}])));",
                    self.w.axe
                ),
                vec![],
            ))
            .unwrap();
        let violations: Vec<Value> = serde_json::from_str(result.as_str().unwrap()).unwrap();
        let bad: Vec<String> = violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| format!("{} ({}): {} at {}", v["id"], v["impact"], v["help"], v["nodes"][0]["target"]))
            .collect();
        assert!(bad.is_empty(), "{what}: axe-core found {bad:#?}");
        let errors = self.console_errors();
        assert!(errors.is_empty(), "{what}: console errors {errors:#?}");
    }

    /// The element's text; empty while there is no such element (yet).
    fn text_of(&self, css: &str) -> String {
        let found = self.run(async { self.c().find(Locator::Css(css)).await?.text().await });
        match found {
            Ok(t) => t,
            Err(e) if gone(&e) => String::new(),
            Err(e) => panic!("{css}: {e}"),
        }
    }

    /// Whether the element is there and shown (false while it is absent).
    fn visible(&self, css: &str) -> bool {
        match self.run(async { self.c().find(Locator::Css(css)).await?.is_displayed().await }) {
            Ok(shown) => shown,
            Err(e) if gone(&e) => false,
            Err(e) => panic!("{css}: {e}"),
        }
    }

    fn value_of(&self, css: &str) -> String {
        match self.run(async { self.c().find(Locator::Css(css)).await?.prop("value").await }) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) if gone(&e) => String::new(),
            Err(e) => panic!("{css}: {e}"),
        }
    }

    fn path(&self) -> String {
        self.run(self.c().current_url()).unwrap().path().to_string()
    }

    /// (account, state) of each row of the accounts table.
    fn row_states(&self) -> Vec<(String, String)> {
        self.run(async {
            let mut out = Vec::new();
            for row in self.c().find_all(Locator::Css("table.accounts tbody tr")).await? {
                let cells = row.find_all(Locator::Css("td")).await?;
                out.push((cells[1].text().await?, cells[2].text().await?));
            }
            Ok::<_, fantoccini::error::CmdError>(out)
        })
        .unwrap()
    }

    fn click(&self, css: &str) {
        self.run(async { self.c().find(Locator::Css(css)).await?.click().await }).unwrap();
    }

    fn type_into(&self, css: &str, text: &str) {
        self.run(async {
            let e = self.c().find(Locator::Css(css)).await?;
            e.clear().await?;
            e.send_keys(text).await
        })
        .unwrap();
    }

    /// Whether `cond` comes to hold within `secs`.
    fn wait_or(&self, secs: u64, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Until `cond` holds (polled every 25 ms), at most `secs`; the failure says what.
    fn wait(&self, secs: u64, what: &str, cond: impl FnMut(&Self) -> bool) -> Duration {
        let start = Instant::now();
        if !self.wait_or(secs, cond) {
            // What the page showed when the wait ran out.
            if let Ok(png) = self.run(self.c().screenshot()) {
                let _ = std::fs::write(self.dir.join("failed.png"), png);
            }
            panic!("waited {secs} s for {what} (the page then: failed.png in {})", self.dir.display());
        }
        start.elapsed()
    }
}

/// The element went away between finding and reading it (the page reloaded): absent for now.
fn gone(e: &fantoccini::error::CmdError) -> bool {
    let text = e.to_string();
    e.is_no_such_element()
        || e.is_stale_element_reference()
        || text.contains("does not belong to the document")
        // chromedriver's answer to a read that a navigation overtook: the page is changing,
        // so the element is not there (yet); the callers poll.
        || text.contains("aborted by navigation")
}

async fn reqwest_post(url: &str, body: Value) -> Value {
    let client = reqwest::Client::new();
    match client.post(url).json(&body).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Pull the key out of its reader (`ukey sim remove`), or plug it back in.
fn remove_key(w: &World) {
    ukey(&w.home, &["sim", "remove", w.key_dir.to_str().unwrap()]);
}
fn insert_key(w: &World) {
    ukey(&w.home, &["sim", "insert", w.key_dir.to_str().unwrap()]);
}

/// Plugs the key back in when a test ends, passed or not, so the next test finds it.
struct KeyBack(PathBuf, PathBuf);
impl Drop for KeyBack {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_ukey"))
            .args(["sim", "insert", self.1.to_str().unwrap()])
            .env("UKEY_HOME", &self.0)
            .output();
        // In the reader again before the next test looks.
        if !std::thread::panicking() {
            vpcd_support::wait_card(vpcd_support::READER[0], true);
        }
    }
}

#[test]
fn login_page_has_both_tabs_in_chinese_and_passes_axe() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "login_page");
    s.goto("/");
    assert_eq!(s.run(s.c().title()).unwrap(), "登录 · ukey 业务系统");
    assert_eq!(s.text_of("#tab-password"), "账号密码登录");
    assert_eq!(s.text_of("#tab-ca"), "CA数字证书登录");
    assert!(s.visible("#username") && !s.visible("#pin"), "the password tab first");
    s.check_page("login, password tab");
    s.shots("password-tab");
    s.click("#tab-ca");
    assert!(s.visible("#pin") && !s.visible("#username"));
    s.wait(5, "the key's holder", |s| s.value_of("#ca-account") == "张三");
    s.check_page("login, CA tab");
    s.shots("ca-tab");
}

#[test]
fn inserted_key_shows_its_holder_within_a_second_and_vanishes_when_removed() {
    let Some(w) = world() else { return };
    let _back = KeyBack(w.home.clone(), w.key_dir.clone());
    let mut s = Steps::new(&w, "key_presence");
    s.goto("/#ca");
    s.wait(5, "the key's holder", |s| s.value_of("#ca-account") == "张三");
    s.shot("inserted");
    remove_key(&w);
    let gone = s.wait(5, "the holder to go", |s| s.value_of("#ca-account").is_empty());
    s.wait(5, "the insert-your-key prompt", |s| s.text_of("#agent-status") == "请将USB-Key插入电脑USB口");
    assert!(s.run(async { s.c().find(Locator::Css("#ca-submit")).await?.attr("disabled").await }).unwrap().is_some());
    s.shot("removed");
    insert_key(&w);
    let t = Instant::now();
    if !s.wait_or(5, |s| s.value_of("#ca-account") == "张三") {
        let keys = s.run(async {
            reqwest::Client::new()
                .get(format!("{}/keys", w.agent))
                .header("origin", &w.portal)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        panic!("the holder did not come back: status {:?}; the agent lists {keys}", s.text_of("#agent-status"));
    }
    let back = t.elapsed();
    s.shot("inserted-again");
    assert!(
        gone < Duration::from_secs(1) && back < Duration::from_secs(1),
        "removal seen in {gone:?}, insertion in {back:?}"
    );
}

#[test]
fn wrong_pin_says_how_many_tries_the_key_has_left_and_an_unbound_key_is_told_to_bind() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "key_login_outcomes");
    s.goto("/#ca");
    s.wait(5, "the key's holder", |s| s.value_of("#ca-account") == "张三");
    s.type_into("#pin", "000000");
    s.click("#ca-submit");
    s.wait(10, "the wrong-PIN message", |s| s.visible("#outcome"));
    let said = s.text_of("#outcome");
    assert_eq!(said, "USB-Key密码校验失败，还有2次机会", "the key's own count");
    s.check_page("wrong PIN");
    s.shots("wrong-pin");
    // The right PIN restores the count; the key is not bound to any account yet.
    s.type_into("#pin", "123456");
    s.click("#ca-submit");
    s.wait(10, "the not-bound message", |s| s.text_of("#outcome").contains("绑定"));
    assert_eq!(s.text_of("#outcome"), "该USB-Key尚未绑定账号，请先使用账号密码登录系统进行绑定，再使用CA账户登录");
    s.check_page("not bound");
    s.shot("not-bound");
    let tries = ukey(&w.home, &["pin", "retries", "--reader", vpcd_support::READER[0], "--json"]);
    let v: Value = serde_json::from_slice(&tries.stdout).unwrap();
    assert_eq!(v["retries_left"], 3, "the right PIN reset the counter: {v}");
}

#[test]
fn password_login_checks_fields_and_logs_in() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "password_login");
    s.goto("/");
    s.click("#password-submit");
    assert_eq!(s.text_of("#username-error"), "请输入用户名");
    let focused = s.run(s.c().active_element()).unwrap();
    assert_eq!(s.run(focused.attr("id")).unwrap().as_deref(), Some("username"), "focus on the missing field");
    s.check_page("empty form");
    s.shot("empty-form");
    s.type_into("#username", "zhangsan");
    s.type_into("#password", "wrong-password");
    s.click("#password-submit");
    s.wait(15, "the wrong-password message", |s| s.visible("#outcome"));
    let wrong = s.text_of("#outcome");
    assert!(wrong.contains("密码"), "{wrong}");
    s.shot("wrong-password");
    s.type_into("#password", PASSWORD);
    s.click("#password-submit");
    s.wait(15, "the accounts page", |s| s.path() == "/accounts");
    s.check_page("logged in");
    s.shot("logged-in");
}

#[test]
fn bind_dialog_after_password_login_then_choose_account_at_key_login_then_unbind() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "bind_choose_unbind");
    s.goto("/");
    s.type_into("#username", "zhangsan");
    s.type_into("#password", PASSWORD);
    s.click("#password-submit");
    // Nothing bound yet: the accounts page opens with the manual's prompt.
    s.wait(15, "the bind-first prompt", |s| s.path() == "/accounts" && s.visible("#welcome"));
    assert!(s.text_of("#welcome").contains("系统检测到您尚未将账号与CA数字证书进行绑定，请先绑定CA账号"));
    s.check_page("bind-first prompt");
    s.shots("bind-first-prompt");
    s.click("#welcome-bind");
    let unbound = vec![("申报账号".to_string(), "未绑定".to_string()), ("财务账号".to_string(), "未绑定".to_string())];
    let bound = vec![("申报账号".to_string(), "已绑定".to_string()), ("财务账号".to_string(), "已绑定".to_string())];
    assert_eq!(s.row_states(), unbound);
    // Binding nothing is refused next to the table.
    s.click("#bind-open");
    assert_eq!(s.text_of("#accounts-error"), "请至少勾选一个账号");
    s.click("#acc-1");
    s.click("#acc-2");
    s.click("#bind-open");
    s.wait(5, "the bind dialog with the key", |s| s.visible("#bind-dialog") && s.value_of("#bind-key") == "张三");
    s.check_page("bind dialog");
    s.shot("bind-dialog");
    s.type_into("#bind-pin", "123456");
    s.click("#bind-submit");
    s.wait(10, "the bind result", |s| s.visible("#outcome"));
    assert_eq!(s.text_of("#outcome"), "绑定成功（2个账号）");
    assert_eq!(s.row_states(), bound);
    s.check_page("bound");
    s.shot("bound");
    // The list as the server renders it says the same.
    s.goto("/accounts");
    assert_eq!(s.row_states(), bound);
    assert!(!s.visible("#welcome"), "no prompt once bound");

    // Key login with a key bound to two accounts: choose one.
    s.goto("/#ca");
    s.wait(5, "the key's holder", |s| s.value_of("#ca-account") == "张三");
    s.type_into("#pin", "123456");
    s.click("#ca-submit");
    s.wait(10, "the account choice", |s| s.visible("#choose-account"));
    assert!(s.text_of("#choose-account").contains("该USB-Key绑定了多个账号，请选择要登录的账号"));
    s.check_page("choose account");
    s.shot("choose-account");
    s.run(async { s.c().find(Locator::Css("#choose-account input[type=radio]:not(:checked)")).await?.click().await })
        .unwrap();
    s.click("#ca-submit");
    s.wait(10, "the system page", |s| s.path() == "/home");
    assert_eq!(s.text_of("#home-account"), "财务账号");
    assert_eq!(s.text_of("#reminder"), "登录成功");
    s.check_page("home");
    s.shots("home");

    // Unbind both (password login again: the key login's session has no user).
    s.goto("/");
    s.type_into("#username", "zhangsan");
    s.type_into("#password", PASSWORD);
    s.click("#password-submit");
    s.wait(15, "the accounts page", |s| s.path() == "/accounts");
    s.click("#to-unbind");
    s.wait(5, "the unbind page", |s| s.path() == "/accounts/unbind");
    assert_eq!(s.row_states(), bound);
    s.check_page("unbind page");
    s.shot("unbind-page");
    s.click("#acc-1");
    s.click("#acc-2");
    s.click("#unbind-submit");
    s.wait(10, "the unbind result", |s| s.visible("#outcome"));
    assert_eq!(s.text_of("#outcome"), "解除绑定成功（2个账号）");
    assert!(s.row_states().is_empty(), "unbound accounts leave the unbind list");
    s.shot("unbound");
    s.goto("/accounts");
    assert_eq!(s.row_states(), unbound);
}

#[test]
fn without_the_agent_the_ca_tab_says_so_and_links_to_the_install_page() {
    let Some(mut w) = world() else { return };
    let stopped = w.agent_proc.take();
    drop(stopped);
    {
        let mut s = Steps::new(&w, "agent_missing");
        s.goto("/#ca");
        s.wait(5, "the missing-agent notice", |s| s.visible("#agent-missing"));
        assert!(s.text_of("#agent-missing").contains("未检测到证书应用环境"));
        s.check_page("agent missing");
        s.shots("agent-missing");
        s.click("#agent-download");
        s.wait(5, "the install page", |s| s.path() == "/help/agent");
        assert_eq!(s.text_of("h1"), "证书应用环境安装部署");
        assert!(s.text_of("main").contains("systemctl --user enable --now ukey-agent.service"));
        s.check_page("install page");
        s.shot("install-page");
    }
    // Started again, the tab finds it by itself.
    let (home, agent, portal, keys) = (w.home.clone(), w.agent.clone(), w.portal.clone(), w.keys.clone());
    w.agent_proc = Some(start_agent(&home, &agent, &portal, &keys));
    let mut s = Steps::new(&w, "agent_back");
    s.goto("/#ca");
    s.wait(5, "the key's holder", |s| s.value_of("#ca-account") == "张三");
    s.shot("agent-back");
}

#[test]
fn the_english_switch_is_remembered_and_errors_are_pages() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "english_and_errors");
    s.goto("/");
    s.click("#lang-switch");
    s.wait(5, "the English page", |s| s.text_of("#tab-ca") == "USB-Key (CA) login");
    assert_eq!(s.run(s.c().title()).unwrap(), "Log in · ukey business system");
    s.check_page("English login");
    s.shots("english");
    s.goto("/no/such/page");
    assert_eq!(s.text_of("#error-message"), "This page does not exist");
    s.check_page("error page");
    s.shot("not-found");
    // Back to Chinese for the other tests.
    s.goto("/");
    s.click("#lang-switch");
    s.wait(5, "the Chinese page", |s| s.text_of("#tab-ca") == "CA数字证书登录");
}

#[test]
fn certificate_application_form_keeps_what_was_typed_then_order_review_edit_and_confirm() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "application_form");
    s.goto("/");
    s.type_into("#username", "zhangsan");
    s.type_into("#password", PASSWORD);
    s.click("#password-submit");
    s.wait(15, "the accounts page", |s| s.path() == "/accounts");
    // Nothing bound yet: the bind-first prompt comes first; later.
    s.wait(5, "the bind-first prompt", |s| s.visible("#welcome"));
    s.click("#welcome-later");
    s.click("#to-apply");
    s.wait(5, "the application form", |s| s.path() == "/apply");
    // The enterprise's name and credit code come from its record, not from typing.
    assert_eq!(s.value_of("#organisation"), "示例科技有限公司");
    assert_eq!(s.value_of("#credit_code"), "91350100M000100Y43");
    let readonly = s.run(async { s.c().find(Locator::Css("#credit_code")).await?.attr("readonly").await }).unwrap();
    assert!(readonly.is_some(), "the credit code cannot be typed over");
    s.check_page("application form");
    s.shots("form");
    // Everything empty: an error next to each required field.
    s.click("#apply-next");
    s.wait(10, "the field errors", |s| s.visible("#handler_name-error"));
    for f in ["handler_name", "id_number", "mobile", "email"] {
        assert!(!s.text_of(&format!("#{f}-error")).is_empty(), "{f} has its error");
    }
    s.check_page("form errors");
    s.shot("form-errors");
    // One wrong field: only it is marked, and what was typed stays.
    s.type_into("#handler_name", "张三");
    s.type_into("#id_number", "110105194912310021");
    s.type_into("#mobile", "13800138000");
    s.type_into("#email", "zhangsan@example.com");
    s.click("#apply-next");
    s.wait(10, "the ID number's error alone", |s| {
        s.visible("#id_number-error") && !s.visible("#handler_name-error") && !s.visible("#email-error")
    });
    assert_eq!(s.value_of("#handler_name"), "张三", "what was typed is kept");
    assert_eq!(s.value_of("#email"), "zhangsan@example.com");
    s.shot("id-number-wrong");
    s.type_into("#id_number", "11010519491231002X");
    s.click("#apply-next");
    s.wait(10, "the order review", |s| s.path().starts_with("/apply/") && s.visible("#order-confirm"));
    assert_eq!(s.text_of("#order-stage"), "订单审核");
    assert_eq!(s.text_of("#order-email"), "zhangsan@example.com");
    assert!(!s.text_of("#order-amount").is_empty());
    s.check_page("order review");
    s.shots("order-review");
    // 返回修改: the form again, filled in; a change shows in the review.
    s.click("#order-back");
    s.wait(5, "the form, filled in", |s| s.path().ends_with("/edit") && s.value_of("#handler_name") == "张三");
    s.type_into("#email", "zs@example.com");
    s.click("#apply-next");
    s.wait(10, "the review again", |s| s.visible("#order-confirm") && s.text_of("#order-email") == "zs@example.com");
    // The language switch comes back to this very page.
    let here = s.path();
    s.click("#lang-switch");
    s.wait(5, "the English review", |s| s.text_of("#show-title") == "Order review");
    assert_eq!(s.path(), here, "back to the same application");
    s.click("#lang-switch");
    s.wait(5, "the Chinese review", |s| s.text_of("#show-title") == "订单审核");
    // 确认订单: the application moves on to the photos.
    s.click("#order-confirm");
    s.wait(10, "the next stage", |s| s.text_of("#order-stage") == "上传证件照片");
    assert!(!s.visible("#order-confirm"), "no confirming twice");
    s.check_page("confirmed");
    s.shot("confirmed");
    // The ID photos: a real JPEG is taken, a text file is refused by its bytes.
    let photo = w.home.join("id-front.jpg");
    std::fs::write(&photo, portal::photo::sample(portal::photo::PhotoType::Jpeg, 640, 400, 7)).unwrap();
    let not_photo = w.home.join("id-back.jpg");
    std::fs::write(&not_photo, b"this is not a picture at all, just text dressed as a JPEG").unwrap();
    s.type_into("#photo-front", photo.to_str().unwrap());
    s.wait(10, "the front photo taken", |s| s.text_of("#photo-front-state") == "已上传");
    assert_eq!(s.text_of("#outcome"), "证件照片上传成功");
    s.type_into("#photo-back", not_photo.to_str().unwrap());
    s.wait(10, "the text file refused", |s| s.text_of("#outcome") != "证件照片上传成功");
    assert_eq!(s.text_of("#photo-back-state"), "未上传");
    s.check_page("photos");
    s.shot("photos");
    // The server's page says the same after a reload.
    s.run(s.c().refresh()).unwrap();
    s.wait(5, "the photo states", |s| s.text_of("#photo-front-state") == "已上传");
    assert_eq!(s.text_of("#photo-back-state"), "未上传");
}

#[test]
fn the_certificate_assistant_shows_the_key_and_changes_its_pin() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "assistant");
    s.goto_url(&format!("{}/", w.agent));
    let shown = s.wait_or(5, |s| s.text_of("#key-0") == "张三");
    if !shown {
        s.shot("no-key");
        panic!("the assistant shows no key: status {:?}, console {:?}", s.text_of("#status"), s.console_errors());
    }
    let details = s.text_of("#keys");
    for shown in ["ukey test CA", "3 / 3", "剩余天数", "证书序列号"] {
        assert!(details.contains(shown), "{shown} in {details}");
    }
    s.check_page("assistant");
    s.shots("assistant");
    let change = |s: &Steps, old: &str, new: &str| {
        s.type_into("#change-0-old", old);
        s.type_into("#change-0-new", new);
        s.type_into("#change-0-repeat", new);
        s.click("#change-0-submit");
    };
    change(&s, "000000", "24681357");
    s.wait(10, "the wrong-PIN answer", |s| s.text_of("#change-0-result").contains("次机会"));
    assert_eq!(s.text_of("#change-0-result"), "USB-Key密码校验失败，还有2次机会");
    s.wait(5, "the tries to show 2", |s| s.text_of("#tries-0") == "2 / 3");
    s.shot("wrong-old-pin");
    change(&s, "123456", "24681357");
    s.wait(10, "the change", |s| s.text_of("#change-0-result") == "USB-Key密码修改成功");
    s.wait(5, "the tries back at 3", |s| s.text_of("#tries-0") == "3 / 3");
    s.check_page("pin changed");
    s.shot("pin-changed");
    // Back to the PIN the other tests use.
    change(&s, "24681357", "123456");
    s.wait(10, "the change back", |s| s.text_of("#change-0-result") == "USB-Key密码修改成功");
    // The assistant follows the key out of its reader and back, without a reload.
    let _back = KeyBack(w.home.clone(), w.key_dir.clone());
    remove_key(&w);
    s.wait(5, "the key gone from the assistant", |s| s.text_of("#key-0").is_empty());
    insert_key(&w);
    s.wait(5, "the key back in the assistant", |s| s.text_of("#key-0") == "张三");
}

/// `ukey demo --web` for a newcomer: one command serves the login page, the agent and two
/// keys; a `kill` stops everything it started.
#[test]
fn demo_web_serves_portal_agent_and_two_keys_and_stops_them_all() {
    // The other tests' world holds the first vpcd reader: the demo, finding no two free
    // readers, serves its keys as directories (and cannot take the world's reader away).
    let _world = world();
    let dir = tempfile::tempdir().unwrap();
    let (pp, ap) = (free_port(), free_port());
    let (portal, agent) = (format!("127.0.0.1:{pp}"), format!("127.0.0.1:{ap}"));
    let demo = dir.path().join("demo");
    let out = std::fs::File::create(dir.path().join("demo.out")).unwrap();
    let mut demo_proc = start(
        Command::new(env!("CARGO_BIN_EXE_ukey"))
            .args(["demo", "--web", "--dir", demo.to_str().unwrap(), "--listen", &portal, "--agent-listen", &agent])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out)),
    );
    let child = &mut demo_proc.0;
    let printed = || std::fs::read_to_string(dir.path().join("demo.out")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !printed().contains("Ctrl-C stops everything") {
        assert!(child.try_wait().unwrap().is_none(), "demo --web stopped: {}", printed());
        assert!(Instant::now() < deadline, "demo --web did not come up: {}", printed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let said = printed();
    assert!(said.contains(&format!("open http://{portal}/")) && said.contains("zhangsan / Demo-Pass1"), "{said}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (page, keys) = rt.block_on(async {
        let page = reqwest::get(format!("http://{portal}/")).await.unwrap().text().await.unwrap();
        let keys: Value = reqwest::Client::new()
            .get(format!("http://{agent}/keys"))
            .header("origin", format!("http://{portal}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (page, keys)
    });
    assert!(page.contains("CA数字证书登录"), "the login page");
    let holders: Vec<String> =
        keys["keys"].as_array().unwrap().iter().filter_map(|k| k["subject"].as_str().map(String::from)).collect();
    // Its two keys (and the other tests' key in a reader, which its agent sees as well).
    for name in ["CN=张三", "CN=李四"] {
        assert!(holders.iter().any(|h| h.starts_with(name)), "{name}: {keys:#}");
    }
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {}", printed());
    assert!(printed().contains("stopped"));
    for addr in [&portal, &agent] {
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still answers after the demo stopped");
    }
}

/// A directory key in the agent's key directory (the agent finds it without a reader), made
/// in `scenario` for `subject`; deleted when the test ends.
struct DirKey(PathBuf);
impl Drop for DirKey {
    fn drop(&mut self) {
        // Out of the agent's sight in one step (the agent may be reading it right now, and a
        // delete racing that can leave half a key behind), then gone.
        let name = format!(".gone-{}", self.0.file_name().unwrap().to_string_lossy());
        if let Some(home) = self.0.parent().and_then(Path::parent) {
            let to = home.join(name);
            let _ = std::fs::remove_dir_all(&to);
            if std::fs::rename(&self.0, &to).is_ok() {
                let _ = std::fs::remove_dir_all(&to);
                return;
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir_key(w: &World, name: &str, scenario: &str, seed: &str, subject: &str) -> DirKey {
    let dir = w.keys.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    ukey(&w.home, &["sim", "new", dir.to_str().unwrap(), "--scenario", scenario, "--seed", seed, "--subject", subject]);
    DirKey(dir)
}

/// Only the directory key `holder` for the test: the world's key leaves its reader (and comes
/// back when the returned guard drops), and the login page shows `holder`.
fn only_key(s: &mut Steps, holder: &str) -> KeyBack {
    let back = KeyBack(s.w.home.clone(), s.w.key_dir.clone());
    remove_key(s.w);
    s.goto("/#ca");
    s.wait(10, &format!("{holder} on the login page"), |s| s.value_of("#ca-account") == holder);
    back
}

impl Steps<'_> {
    /// Password login as `user`, waiting for the page it leads to (`lands` is its path).
    fn password_login(&mut self, user: &str, password: &str, lands: &str) {
        // A fresh session: the cookies of the portal's pages go (the language one too).
        self.goto("/");
        self.run(self.c().delete_all_cookies()).unwrap();
        self.goto("/");
        self.type_into("#username", user);
        self.type_into("#password", password);
        self.click("#password-submit");
        self.wait(15, &format!("{user} logged in at {lands}"), |s| s.path() == lands);
    }

    /// CA login on the login page with the (one) key shown and `pin`; the outcome's text, or
    /// the path of the page it led to.
    fn key_login(&mut self, pin: &str) {
        self.goto("/#ca");
        self.wait(10, "a key on the login page", |s| !s.value_of("#ca-account").is_empty());
        self.type_into("#pin", pin);
        self.click("#ca-submit");
    }

    /// Tick `ids` on the accounts page and bind them to the key with `pin`.
    fn bind(&mut self, ids: &[&str], pin: &str) {
        self.goto("/accounts");
        for id in ids {
            self.click(&format!("#{id}"));
        }
        self.click("#bind-open");
        self.wait(10, "the bind dialog with a key", |s| {
            s.visible("#bind-dialog") && !s.value_of("#bind-key").is_empty()
        });
        self.type_into("#bind-pin", pin);
        self.click("#bind-submit");
        self.wait(10, "the bind result", |s| s.text_of("#outcome").starts_with("绑定成功"));
    }

    /// Unbind every bound account (password login as zhangsan first).
    fn unbind_all(&mut self) {
        self.goto("/accounts/unbind");
        let rows = self.row_states().len();
        if rows == 0 {
            return;
        }
        for i in 0..rows {
            self.run(async {
                self.c().find_all(Locator::Css("table.accounts tbody input[type=checkbox]")).await?[i].click().await
            })
            .unwrap();
        }
        self.click("#unbind-submit");
        self.wait(10, "the unbind result", |s| s.text_of("#outcome").starts_with("解除绑定成功"));
    }

    /// The element's attribute or property `name` (JS).
    fn js(&self, script: &str) -> Value {
        self.run(self.c().execute(script, vec![])).unwrap()
    }

    /// Chromium's emulated CSS media type ("print" to see a page as printed, "" back).
    fn media(&self, media: &str) {
        let session = self.run(self.c().session_id()).unwrap().expect("a session");
        let url = format!("{}/session/{session}/goog/cdp/execute", self.w.driver_url);
        let v = self.run(reqwest_post(&url, json!({"cmd": "Emulation.setEmulatedMedia", "params": {"media": media}})));
        assert!(v["value"].is_object(), "chromedriver emulates print media: {v}");
    }
}

/// The code in the newest SMS of the sandbox outbox page, as the handler reads it off the phone.
fn sms_code_on_page(s: &Steps) -> String {
    let body = s.text_of("#messages li:first-child .body");
    let after = body.split("验证码").nth(1).unwrap_or_else(|| panic!("no code in {body:?}"));
    let code: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    assert_eq!(code.len(), 6, "{body}");
    code
}

#[test]
fn the_whole_certificate_application_to_staff_approval_then_the_new_certificate_logs_in() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "application_to_login");
    // A key that already holds a certificate (of another CA subject): applying replaces it.
    let _key = dir_key(&w, "wangwu", "provisioned", "72", "CN=旧证书,O=示例科技有限公司");
    let _back = only_key(&mut s, "旧证书");
    s.password_login("zhangsan", PASSWORD, "/accounts");
    s.goto("/apply");
    s.type_into("#handler_name", "王五");
    s.type_into("#id_number", "11010519491231002X");
    s.type_into("#mobile", "13900139000");
    s.type_into("#email", "wangwu@example.com");
    s.click("#apply-next");
    s.wait(10, "the order review", |s| s.visible("#order-confirm"));
    s.click("#order-confirm");
    s.wait(10, "the photo step", |s| s.text_of("#order-stage") == "上传证件照片");
    for (side, seed) in [("front", 11), ("back", 12)] {
        let photo = w.home.join(format!("wangwu-{side}.jpg"));
        std::fs::write(&photo, portal::photo::sample(portal::photo::PhotoType::Jpeg, 640, 400, seed)).unwrap();
        s.type_into(&format!("#photo-{side}"), photo.to_str().unwrap());
        s.wait(10, "the photo taken", |s| s.text_of(&format!("#photo-{side}-state")) == "已上传");
    }
    // 确认申请 with the key: it holds a certificate, so the page asks before replacing it.
    s.wait(10, "the key in the choice", |s| s.text_of("#submit-key") == "旧证书");
    s.type_into("#submit-pin", "123456");
    s.click("#submit-application");
    s.wait(20, "the replace question", |s| s.visible("#replace"));
    assert!(s.text_of("#replace-text").contains("原证书将无法再使用"));
    s.check_page("replace question");
    s.shot("replace-question");
    s.click("#replace-confirm");
    s.wait(30, "the SMS step", |s| s.text_of("#order-stage") == "短信验证");
    assert_eq!(s.text_of("#sms-sent"), "验证码已发送至经办人手机 139****9000");
    s.check_page("sms step");
    s.shots("sms");
    // A wrong code first: refused with the tries left; then the code from the outbox page.
    s.type_into("#sms-code", "000000");
    s.click("#sms-submit");
    s.wait(10, "the wrong-code answer", |s| s.visible("#outcome"));
    assert!(s.text_of("#outcome").contains("验证码"), "{}", s.text_of("#outcome"));
    let here = s.path();
    s.click("#sms-outbox");
    s.wait(5, "the sandbox outbox", |s| s.path() == "/sandbox/outbox");
    s.check_page("outbox");
    s.shot("outbox-sms");
    let code = sms_code_on_page(&s);
    s.goto(&here);
    s.type_into("#sms-code", &code);
    s.click("#sms-submit");
    s.wait(10, "the payment step", |s| s.text_of("#order-stage") == "证书支付");
    s.check_page("payment step");
    s.shots("payment");
    s.click("#pay-alipay");
    s.click("#pay-submit");
    s.wait(10, "the sandbox payment page", |s| s.path().starts_with("/sandbox/pay/"));
    assert!(s.text_of("#pay-title").contains("支付宝"));
    s.check_page("sandbox payment");
    s.shot("sandbox-pay");
    s.click("#sandbox-pay");
    s.wait(10, "the success page", |s| s.path() == here && s.visible("#apply-success"));
    assert!(s.text_of("#apply-success").contains("数字证书申请成功"));
    assert_eq!(s.text_of("#order-stage"), "等待审核");
    s.check_page("success");
    s.shots("success");
    // The receipt, on screen and as printed (no header, no buttons).
    s.click("#to-receipt");
    s.wait(5, "the receipt", |s| s.path().ends_with("/receipt"));
    let receipt = s.text_of("#receipt-lines");
    for line in ["申请号", "示例科技有限公司", "王五", "139****9000", "支付宝", "等待审核"] {
        assert!(receipt.contains(line), "{line} on the receipt: {receipt}");
    }
    s.check_page("receipt");
    s.shot("receipt");
    s.media("print");
    assert!(!s.visible(".top") && !s.visible("#receipt-print"), "the printed receipt has no header or buttons");
    assert!(s.visible("#receipt-lines"));
    s.shot("receipt-printed");
    s.media("");
    // The email that says it was filed.
    s.goto("/sandbox/outbox?to=wangwu%40example.com");
    assert!(s.text_of("#messages").contains("数字证书申请已提交"), "{}", s.text_of("#messages"));
    s.shot("outbox-email");
    // The application list says where it stands.
    s.goto("/applications");
    assert!(s.text_of("#applications").contains("等待审核"));
    s.check_page("applications");
    s.shot("applications");

    // Staff: the queue, the photos and the key's attestation, approval.
    s.password_login("lisi", "Review-Pass1", "/staff");
    s.click("#queue tbody a");
    s.wait(5, "the application's detail", |s| s.path().starts_with("/staff/applications/"));
    assert_eq!(s.text_of("#detail-handler"), "王五");
    for side in ["front", "back"] {
        let w_px = s.js(&format!("return document.getElementById('img-{side}').naturalWidth"));
        assert_eq!(w_px, json!(640), "the {side} photo shows");
    }
    assert!(!s.text_of("#key-facts").is_empty(), "the attestation facts");
    s.check_page("staff detail");
    s.shots("staff-detail");
    s.click("#approve");
    s.wait(10, "the approval", |s| s.text_of("#detail-stage") == "已签发");
    assert!(s.visible("#cert") && s.visible("#revoke-form"));
    s.shot("approved");
    let detail = s.path();

    // The applicant writes the certificate to the key, binds it, and logs in with it.
    s.password_login("zhangsan", PASSWORD, "/accounts");
    s.goto(&here);
    // The old certificate went with its key pair: the key shows by its name.
    s.wait(10, "the key for the certificate", |s| s.text_of("#install-key") == "wangwu");
    s.check_page("install step");
    s.shot("install");
    s.type_into("#install-pin", "123456");
    s.click("#install-submit");
    s.wait(20, "the certificate on the key", |s| s.visible("#install-done"));
    assert_eq!(s.text_of("#outcome"), "证书已写入USB-Key");
    s.goto("/#ca");
    s.wait(10, "the new holder on the login page", |s| s.value_of("#ca-account") == "王五");
    s.goto("/accounts");
    s.bind(&["acc-1"], "123456");
    s.key_login("123456");
    s.wait(10, "the system page", |s| s.path() == "/home");
    s.check_page("home with the new certificate");
    s.shot("logged-in-with-new-certificate");

    // Revoked by staff: the key no longer logs in, and the page says why.
    s.password_login("lisi", "Review-Pass1", "/staff");
    s.goto(&detail);
    s.click("#revoke");
    s.wait(10, "the revocation", |s| s.visible("#cert-revoked"));
    s.run(s.c().delete_all_cookies()).unwrap();
    s.key_login("123456");
    s.wait(10, "the refusal", |s| s.visible("#outcome"));
    assert!(s.text_of("#outcome").starts_with("数字证书已被吊销"), "{}", s.text_of("#outcome"));
    s.shot("revoked");
    s.password_login("zhangsan", PASSWORD, "/accounts");
    s.unbind_all();
}

#[test]
fn the_last_try_is_confirmed_before_it_is_spent_and_then_the_key_locks() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "last_try_and_lockout");
    let _key = dir_key(
        &w,
        "lasttry",
        "pin-1-left",
        "73",
        "CN=赵六,organizationIdentifier=91350100M000100Y43,O=示例科技有限公司",
    );
    let _back = only_key(&mut s, "赵六");
    s.key_login("000000");
    s.wait(10, "the last-try question", |s| s.visible("#last-try"));
    assert!(s.text_of("#last-try-text").contains("最后一次机会"), "{}", s.text_of("#last-try-text"));
    s.check_page("last try");
    s.shots("last-try");
    // Cancelled: nothing spent.
    s.click("#last-try-cancel");
    let v: Value = serde_json::from_slice(
        &ukey(&w.home, &["pin", "retries", "--key", w.keys.join("lasttry").to_str().unwrap(), "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(v["retries_left"], 1, "cancelling spent nothing: {v}");
    assert_eq!(s.value_of("#pin"), "", "cancelling forgets the PIN typed");
    s.type_into("#pin", "000000");
    s.click("#ca-submit");
    s.wait(10, "the question again", |s| s.visible("#last-try"));
    s.click("#last-try-confirm");
    s.wait(10, "the lockout", |s| s.text_of("#outcome").contains("锁定"));
    assert!(s.text_of("#outcome").starts_with("USB-Key密码已锁定"), "{}", s.text_of("#outcome"));
    s.check_page("locked");
    s.shot("locked");
    // Locked: even the right PIN is refused.
    s.key_login("123456");
    s.wait(10, "locked again", |s| s.text_of("#outcome").starts_with("USB-Key密码已锁定"));
}

#[test]
fn an_expired_certificate_is_refused_and_an_expiring_one_logs_in_with_a_reminder() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "expiry");
    {
        let _key = dir_key(
            &w,
            "expired",
            "expired",
            "74",
            "CN=过期,organizationIdentifier=91350100M000100Y43,O=示例科技有限公司",
        );
        let _back = only_key(&mut s, "过期");
        s.key_login("123456");
        s.wait(10, "the refusal", |s| s.visible("#outcome"));
        let said = s.text_of("#outcome");
        assert!(said.starts_with("数字证书已于") && said.contains("过期，无法登录"), "{said}");
        s.check_page("expired");
        s.shots("expired");
    }
    let _key = dir_key(
        &w,
        "expiring",
        "expiring",
        "75",
        "CN=将到期,organizationIdentifier=91350100M000100Y43,O=示例科技有限公司",
    );
    let _back = only_key(&mut s, "将到期");
    s.password_login("zhangsan", PASSWORD, "/accounts");
    s.bind(&["acc-1"], "123456");
    s.key_login("123456");
    s.wait(10, "the system page", |s| s.path() == "/home");
    let reminder = s.text_of("#reminder");
    assert!(reminder.starts_with("登录成功。您的数字证书将于") && reminder.contains("剩余7天"), "{reminder}");
    s.check_page("expiring");
    s.shots("expiring");
    s.password_login("zhangsan", PASSWORD, "/accounts");
    s.unbind_all();
}

/// ukey.js, the page-side library: the agent and the portal serve the same file; a page gets
/// the agent's status with its version, and a server that is not an agent is told apart.
#[test]
fn the_page_library_is_the_agents_and_tells_a_running_agent_from_something_else() {
    let Some(w) = world() else { return };
    let get = |url: String, origin: Option<&str>| {
        w.rt.block_on(async {
            let mut r = reqwest::Client::new().get(url);
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            let resp = r.send().await.unwrap();
            let allow = resp.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string());
            (resp.status().as_u16(), allow, resp.text().await.unwrap())
        })
    };
    let (status, _, portal_copy) = get(format!("{}/static/ukey.js", w.portal), None);
    assert_eq!(status, 200);
    let (status, _, agent_copy) = get(format!("{}/ukey.js", w.agent), None);
    assert_eq!(status, 200);
    assert_eq!(agent_copy, portal_copy, "one library, served by both");
    assert!(agent_copy.contains("export class Agent"));
    let (status, allow, _) = get(format!("{}/ukey.js", w.agent), Some(&w.portal));
    assert_eq!((status, allow.as_deref()), (200, Some(w.portal.as_str())), "a portal's page may import it");
    let (status, _, _) = get(format!("{}/ukey.js", w.agent), Some("http://evil.example"));
    assert_eq!(status, 403, "another site's page gets no library from the agent");

    let mut s = Steps::new(&w, "page_library");
    s.goto("/");
    let run = |s: &Steps, call: &str| -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];\
             import('/static/ukey.js').then(m => {call}).then(v => done({{ok: v}}), e => done({{code: e.code, message: e.message}}));"
        );
        s.run(s.c().execute_async(&script, vec![])).unwrap()
    };
    let status = run(&s, &format!("new m.Agent({:?}).status()", w.agent));
    assert_eq!(status["ok"]["running"], true, "{status}");
    assert_eq!(status["ok"]["version"], env!("CARGO_PKG_VERSION"), "{status}");
    assert!(status["ok"]["keys"].is_u64(), "{status}");
    // The portal is no agent: its answer to /keys is a page, not the agent's JSON.
    let other = run(&s, "new m.Agent(location.origin).keys()");
    assert_eq!(other["code"], "version_mismatch", "{other}");
    // Nothing listening: unavailable, and status() says not running rather than failing.
    let port = free_port();
    let down = run(&s, &format!("new m.Agent('http://127.0.0.1:{port}').status()"));
    assert_eq!(down["ok"]["running"], false, "{down}");
}

/// Walk an application from the form to payment with the one key the agent shows (one that
/// holds no certificate yet); the application's path.
fn file_application(s: &mut Steps, key_label: &str, handler: &str, mobile: &str, email: &str) -> String {
    s.goto("/apply");
    s.type_into("#handler_name", handler);
    s.type_into("#id_number", "11010519491231002X");
    s.type_into("#mobile", mobile);
    s.type_into("#email", email);
    s.click("#apply-next");
    s.wait(10, "the order review", |s| s.visible("#order-confirm"));
    s.click("#order-confirm");
    s.wait(10, "the photo step", |s| s.text_of("#order-stage") == "上传证件照片");
    for (side, seed) in [("front", 21), ("back", 22)] {
        let photo = s.w.home.join(format!("{mobile}-{side}.png"));
        std::fs::write(&photo, portal::photo::sample(portal::photo::PhotoType::Png, 600, 380, seed)).unwrap();
        s.type_into(&format!("#photo-{side}"), photo.to_str().unwrap());
        s.wait(10, "the photo taken", |s| s.text_of(&format!("#photo-{side}-state")) == "已上传");
    }
    s.wait(10, "the key in the choice", |s| s.text_of("#submit-key") == key_label);
    s.type_into("#submit-pin", "123456");
    s.click("#submit-application");
    s.wait(30, "the SMS step", |s| s.text_of("#order-stage") == "短信验证");
    let here = s.path();
    s.goto(&format!("/sandbox/outbox?to={mobile}"));
    let code = sms_code_on_page(s);
    s.goto(&here);
    s.type_into("#sms-code", &code);
    s.click("#sms-submit");
    s.wait(10, "the payment step", |s| s.text_of("#order-stage") == "证书支付");
    s.click("#pay-submit");
    s.wait(10, "the sandbox payment page", |s| s.path().starts_with("/sandbox/pay/"));
    assert!(s.text_of("#pay-title").ends_with("· 微信"), "WeChat is the default choice: {}", s.text_of("#pay-title"));
    s.click("#sandbox-pay");
    s.wait(10, "the success page", |s| s.path() == here && s.visible("#apply-success"));
    here
}

#[test]
fn staff_reject_with_a_reason_that_reaches_the_applicant_and_the_pages_work_by_keyboard() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "reject_and_keyboard");
    let _key = dir_key(&w, "zhaoliu", "fresh", "76", "CN=unused");
    let _back = only_key(&mut s, "zhaoliu");
    // Password login by keyboard alone: the skip link first, then the fields, Enter submits;
    // the focused field shows it.
    s.run(s.c().delete_all_cookies()).unwrap();
    s.goto("/");
    let keys = |s: &Steps, k: &str| s.run(async { s.c().active_element().await?.send_keys(k).await }).unwrap();
    let focused = |s: &Steps| s.run(async { s.c().active_element().await?.attr("id").await }).unwrap();
    keys(&s, "\u{E004}"); // Tab
    assert_eq!(s.run(async { s.c().active_element().await?.text().await }).unwrap(), "跳到主要内容");
    s.click("#username");
    keys(&s, "zhangsan");
    keys(&s, "\u{E004}");
    assert_eq!(focused(&s).as_deref(), Some("password"), "Tab goes from the username to the password");
    let outline = s.js("return getComputedStyle(document.activeElement).outlineStyle");
    assert_ne!(outline, json!("none"), "the focused field is outlined");
    keys(&s, PASSWORD);
    s.shot("keyboard-login");
    keys(&s, "\u{E007}"); // Enter
    s.wait(15, "logged in by keyboard", |s| s.path() == "/accounts");
    // A user who is not staff gets an error page, not JSON, at the staff pages.
    s.goto("/staff");
    assert!(!s.text_of("#error-message").is_empty(), "an error page for non-staff");
    s.check_page("staff only");
    s.shot("staff-only");
    let here = file_application(&mut s, "zhaoliu", "赵六", "13700137000", "zhaoliu@example.com");
    // 退出登录 in the top bar ends the session: the application is out of reach.
    s.click("button[data-logout]");
    s.wait(10, "the login page", |s| s.path() == "/");
    s.goto(&here);
    assert_eq!(s.path(), "/", "logged out, the application's page sends to the login");

    s.password_login("lisi", "Review-Pass1", "/staff");
    s.goto("/staff?stage=under_review");
    s.run(async { s.c().find(Locator::XPath("//table[@id='queue']//tr[td[3]='赵六']//a")).await?.click().await })
        .unwrap();
    s.wait(5, "the detail", |s| s.text_of("#detail-handler") == "赵六");
    // No reason: refused next to the field, nothing sent.
    s.click("#reject");
    assert_eq!(s.text_of("#reject-reason-error"), "请填写未通过原因");
    s.type_into("#reject-reason", "身份证照片不清晰");
    s.click("#reject");
    s.wait(10, "the rejection", |s| s.text_of("#detail-stage") == "审核未通过");
    assert_eq!(s.text_of("#detail-reason"), "身份证照片不清晰");
    s.check_page("rejected");
    s.shot("rejected-by-staff");
    s.goto("/staff?stage=rejected");
    assert!(s.text_of("#queue").contains("赵六"), "the rejected tab lists it");

    s.password_login("zhangsan", PASSWORD, "/accounts");
    s.goto(&here);
    assert_eq!(s.text_of("#order-stage"), "审核未通过");
    assert_eq!(s.text_of("#order-reason"), "身份证照片不清晰");
    assert!(s.visible("#apply-again"));
    assert!(s.text_of("#apply-rejected").contains("身份证照片不清晰"), "the reason at the top of the page");
    s.check_page("rejected, applicant");
    s.shots("rejected");
    s.goto("/sandbox/outbox?to=zhaoliu%40example.com");
    let mail = s.text_of("#messages li:first-child");
    assert!(mail.contains("未通过审核") && mail.contains("身份证照片不清晰"), "{mail}");
}

/// Two keys present: the CA tab offers a choice, and the key chosen is the one that answers
/// (the chosen key has one PIN try left, the other three).
#[test]
fn several_keys_give_a_choice_and_the_chosen_key_answers() {
    let Some(w) = world() else { return };
    let mut s = Steps::new(&w, "choose_key");
    let _key = dir_key(
        &w,
        "wanger",
        "pin-1-left",
        "77",
        "CN=王二,organizationIdentifier=91350100M000100Y43,O=示例科技有限公司",
    );
    s.goto("/#ca");
    s.wait(10, "a choice of two keys", |s| {
        s.visible("#ca-choose") && s.text_of("#ca-choose").contains("王二") && s.text_of("#ca-choose").contains("张三")
    });
    assert!(!s.visible("#ca-account"), "the choice replaces the single key's field");
    s.check_page("two keys");
    s.shots("two-keys");
    let choose = |s: &Steps, holder: &str| {
        s.run(async {
            s.c().find(Locator::XPath(&format!("//select[@id='ca-choose']/option[.='{holder}']"))).await?.click().await
        })
        .unwrap()
    };
    choose(&s, "王二");
    s.type_into("#pin", "000000");
    s.click("#ca-submit");
    s.wait(10, "王二's last-try question", |s| s.visible("#last-try"));
    s.click("#last-try-cancel");
    choose(&s, "张三");
    s.type_into("#pin", "000000");
    s.click("#ca-submit");
    s.wait(10, "张三's own count", |s| s.text_of("#outcome") == "USB-Key密码校验失败，还有2次机会");
    s.type_into("#pin", "123456");
    s.click("#ca-submit");
    s.wait(10, "张三's count back", |s| s.text_of("#outcome").contains("绑定"));
}
