//! A headless Chromium driven through ChromeDriver (WebDriver), for the
//! tests that use a page as a person would: Debian's `chromium` and
//! `chromium-driver` (installed through `host_packages::ensure` when
//! missing), `fantoccini` as the WebDriver client, behind a blocking API
//! so a test can mix it with the blocking cluster helpers.
//!
//! ChromeDriver runs in a process group of its own on a free loopback
//! port; dropping the [`Browser`] (also while a test panics) ends the
//! WebDriver session and then kills that process group by its id, so no
//! browser outlives the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use ha_manager::host_packages::{self, CHROMIUM, CHROMIUM_DRIVER};
use serde_json::{json, Value};

/// Where the browser draws: wide enough for the dashboard's tables.
pub const WINDOW: (u32, u32) = (1400, 900);

/// The ChromeDriver process (its group holds the browsers it starts).
struct Driver {
    child: Child,
    log: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is the driver's pid (it was made the group leader).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session.
pub struct Browser {
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
    // Dropped after the session is closed (field order).
    driver: Driver,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    _shots_tmp: Option<tempfile::TempDir>,
}

/// A port nobody listens on right now (the driver binds it a moment later).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

impl Browser {
    /// Installs the packages if needed, starts ChromeDriver and opens a
    /// session of a fresh headless Chromium profile.
    pub fn start() -> Browser {
        host_packages::ensure(&[CHROMIUM, CHROMIUM_DRIVER]).expect("chromium and chromedriver");
        let profile = tempfile::Builder::new()
            .prefix("habrowser")
            .tempdir()
            .expect("profile dir");
        let port = free_port();
        let log = profile.path().join("chromedriver.log");
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMIUM_DRIVER.provides)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let driver = Driver { child, log };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let data_dir = profile.path().join("chromium");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            // The cluster has its own CA.
            "--ignore-certificate-errors".into(),
            format!("--user-data-dir={}", data_dir.display()),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ];
        let caps = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": { "binary": CHROMIUM.provides, "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = rt.block_on(async {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await
            });
            match attempt {
                Ok(client) => break client,
                // The driver may not listen yet.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!(
                    "no WebDriver session from chromedriver on {url} within 30 s: {e}\n{}",
                    std::fs::read_to_string(&driver.log).unwrap_or_default()
                ),
            }
        };
        let (shots, shots_tmp) = screenshot_dir();
        let browser = Browser {
            client: Some(client),
            rt,
            driver,
            _profile: profile,
            shots,
            _shots_tmp: shots_tmp,
        };
        browser.run(|c| async move { c.set_window_size(WINDOW.0, WINDOW.1).await });
        browser
    }

    fn client(&self) -> Client {
        self.client.clone().expect("an open session")
    }

    /// Runs one WebDriver call to its end.
    fn run<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let client = self.client();
        self.rt
            .block_on(f(client))
            .unwrap_or_else(|e| panic!("WebDriver: {e}"))
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) {
        let url = url.to_string();
        self.run(|c| async move { c.goto(&url).await });
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page
    /// and returns what it returns.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        let script = script.to_string();
        self.run(|c| async move { c.execute(&script, args).await })
    }

    /// Runs `script` in the page and waits for it to call its last
    /// argument (the callback) with the result.
    pub fn js_async(&self, script: &str, args: Vec<Value>) -> Value {
        let script = script.to_string();
        self.run(|c| async move { c.execute_async(&script, args).await })
    }

    /// Number of elements matching `css`.
    pub fn count(&self, css: &str) -> usize {
        let n = self.js(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        );
        usize::try_from(n.as_u64().unwrap_or(0)).unwrap_or(0)
    }

    /// Text of the first element matching `css`, if there is one.
    pub fn text(&self, css: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .as_str()
        .map(str::to_string)
    }

    /// Attribute `name` of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
            vec![json!(css), json!(name)],
        )
        .as_str()
        .map(str::to_string)
    }

    /// Whether the first element matching `css` exists and is shown.
    pub fn displayed(&self, css: &str) -> bool {
        self.js(
            "const e = document.querySelector(arguments[0]); \
             return Boolean(e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden');",
            vec![json!(css)],
        )
        .as_bool()
        .unwrap_or(false)
    }

    /// Clicks the first element matching `css` with WebDriver's pointer
    /// (the element must be shown and not covered, as for a person).
    pub fn click(&self, css: &str) {
        let css = css.to_string();
        self.run(|c| async move {
            let e = c.find(Locator::Css(&css)).await?;
            e.click().await
        });
    }

    /// Types `text` into the input matching `css`, replacing its value.
    pub fn type_text(&self, css: &str, text: &str) {
        let (css, text) = (css.to_string(), text.to_string());
        self.run(|c| async move {
            let e = c.find(Locator::Css(&css)).await?;
            e.clear().await?;
            e.send_keys(&text).await
        });
    }

    /// Picks the option with `value` in the select matching `css`.
    pub fn select(&self, css: &str, value: &str) {
        let (css, value) = (css.to_string(), value.to_string());
        self.run(|c| async move {
            let e = c.find(Locator::Css(&css)).await?;
            e.select_by_value(&value).await
        });
    }

    /// Polls `ready` every 200 ms until it gives a value; after `limit`
    /// panics naming `what`, with the page's visible text.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = ready(self) {
                return v;
            }
            if Instant::now() >= deadline {
                let page = self
                    .js(
                        "return document.body ? document.body.innerText : '';",
                        vec![],
                    )
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(3000)
                    .collect::<String>();
                panic!("timed out after {limit:?} waiting for {what}; the page shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a PNG of the window as `name` in the screenshot directory
    /// and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.run(|c| async move { c.screenshot().await });
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        let path = self.shots.join(name);
        std::fs::write(&path, png).expect("screenshot written");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Where screenshots go.
    pub fn screenshot_dir(&self) -> &Path {
        &self.shots
    }

    /// ChromeDriver's log (for a failure message).
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(&self.driver.log).unwrap_or_default()
    }
}

/// `docs/screenshots` of the repository with `HA_UPDATE_SCREENSHOTS=1`
/// (the README shows them); otherwise a temporary directory, so a normal
/// run leaves the tree clean.
fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var("HA_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        (dir, None)
    } else {
        let tmp = tempfile::Builder::new()
            .prefix("hashots")
            .tempdir()
            .expect("screenshot dir");
        (tmp.path().to_path_buf(), Some(tmp))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (Chromium quits); the driver's drop then kills
        // whatever is left of its process group.
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
    }
}
