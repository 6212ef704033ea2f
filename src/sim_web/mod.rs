//! `ha-manager sim serve`: the simulator in the browser. A local HTTP
//! server with one page (plain HTML, CSS and JS embedded in the binary, no
//! CDN, no build step) and a small JSON API over one simulator
//! [`Session`]: the same engine and run loop as `sim run`
//! ([`crate::sim::harness::Runner`]), stepped when the page asks.
//!
//! The simulation is not `Send` (the world caches its topology in an
//! `Rc`), so one thread owns the session and runs the requests one at a
//! time, in order; the HTTP handlers hand it closures and await the
//! answers. That is the "one world behind a lock" of the design, without
//! holding a lock across rounds on the async runtime.
//!
//! Routes (every answer is JSON but `/` and `/assets/*`; every POST answers
//! the state like `GET /api/state`, with `?since=N`):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/state?since=N` | time, round, status, nodes, services, violations, pending batches, log lines from N |
//! | `POST /api/step` | one round |
//! | `POST /api/run` `{"rounds": N, "until_done": bool}` | N rounds (stopping early once done with `until_done`); without `rounds` until done |
//! | `POST /api/command` `{"command": "...", "advance": bool}` | one cmdlist line, checked by `sim run`'s parser; queued for the next command slot; `advance` runs rounds until it ran |
//! | `POST /api/reset` | the loaded scenario from the start |
//! | `POST /api/load` `{"dir": "...", "profile": "...", "seed": N}` | a scenario directory on this machine |
//! | `GET /api/save` | the scenario as files `{"files": {name: text}}` |
//! | `POST /api/save` `{"dir": "..."}` | writes those files into a directory |
//!
//! A refused request changes nothing and answers `{"error", "field",
//! "word"}` (400 for bad input, 409 when the run aborted or a save would
//! mix two scenarios). The server listens on 127.0.0.1 unless told
//! otherwise: whoever reaches it can read and write scenario directories
//! as the user running it. On a loopback address it answers only requests
//! whose `Host` is a loopback name (DNS rebinding), and it refuses a POST
//! whose `Origin` is another site's.

pub mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::sim::scenario::CommandError;
use crate::sim::ScenarioError;
pub use session::{RunStatus, Session, StateView};

const INDEX_HTML: &str = include_str!("assets/index.html");
const SIM_JS: &str = include_str!("assets/sim.js");
const SIM_CSS: &str = include_str!("assets/sim.css");
const STYLE_CSS: &str = include_str!("../web/assets/style.css");

/// Largest request body accepted (a command or a path).
const BODY_LIMIT: usize = 64 * 1024;

/// What the session starts with.
#[derive(Debug, Clone)]
pub struct SessionInit {
    /// The scenario directory; the built-in scenario without one.
    pub dir: Option<PathBuf>,
    /// Profile override.
    pub profile: Option<String>,
    /// Seed override.
    pub seed: Option<u64>,
}

impl SessionInit {
    fn build(&self) -> Result<Session, ScenarioError> {
        match &self.dir {
            Some(dir) => Session::from_dir(dir, self.profile.as_deref(), self.seed),
            None => Session::builtin(self.profile.as_deref(), self.seed),
        }
    }
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The handle of the thread that owns the session.
#[derive(Clone)]
pub struct SimHandle {
    jobs: mpsc::Sender<Job>,
}

impl SimHandle {
    /// Starts the session's thread; a scenario that does not load is
    /// reported here and no thread stays behind.
    pub fn start(init: SessionInit) -> Result<SimHandle, ScenarioError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), ScenarioError>>(1);
        let spawned = std::thread::Builder::new()
            .name("sim".into())
            .spawn(move || {
                let mut session = match init.build() {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    // A panic in the engine drops the job's reply (the
                    // request answers 500); the thread goes on serving the
                    // scenario started over, never a half-run round.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut session));
                    if std::panic::catch_unwind(run).is_err() {
                        let reset = std::panic::AssertUnwindSafe(|| session.reset());
                        if std::panic::catch_unwind(reset).is_err() {
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            return Err(ScenarioError {
                file: String::new(),
                line: 0,
                token: String::new(),
                message: format!("cannot start the simulator thread: {e}"),
            });
        }
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(SimHandle { jobs }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ScenarioError {
                file: String::new(),
                line: 0,
                token: String::new(),
                message: "the simulator thread stopped while loading".into(),
            }),
        }
    }

    /// Runs `f` on the session and returns its answer.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> R + Send + 'static,
    ) -> Result<R, SimError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.jobs.send(job).map_err(|_| SimError::stopped())?;
        rx.await.map_err(|_| SimError::stopped())
    }
}

/// The JSON body of a refusal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimErrorBody {
    /// What is wrong, naming the field and the word.
    pub error: String,
    /// The request field at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The word of a command that is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word: Option<String>,
}

/// A refused request.
#[derive(Debug)]
pub struct SimError {
    status: StatusCode,
    body: SimErrorBody,
}

impl SimError {
    fn new(status: StatusCode, field: Option<&str>, error: impl Into<String>) -> SimError {
        SimError {
            status,
            body: SimErrorBody {
                error: error.into(),
                field: field.map(str::to_string),
                word: None,
            },
        }
    }

    fn stopped() -> SimError {
        SimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the simulator failed during this request (a bug) and started the scenario over",
        )
    }

    fn command(e: CommandError) -> SimError {
        let mut err = SimError::new(
            StatusCode::BAD_REQUEST,
            Some("command"),
            format!("field 'command': {e}"),
        );
        err.body.word = Some(e.token);
        err
    }

    fn aborted() -> SimError {
        SimError::new(
            StatusCode::CONFLICT,
            None,
            "the run aborted (simulation time limit exceeded); reset or load a scenario",
        )
    }
}

impl From<ApiError> for SimError {
    fn from(e: ApiError) -> SimError {
        SimError {
            status: e.status,
            body: SimErrorBody {
                error: e.body.error,
                field: e.body.field,
                word: None,
            },
        }
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// `?since=N`: the first log line wanted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Since {
    #[serde(default)]
    since: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    rounds: Option<u64>,
    #[serde(default)]
    until_done: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command: String,
    #[serde(default)]
    advance: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBody {
    dir: String,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    dir: String,
}

/// The answer of `GET /api/save`.
#[derive(Debug, Serialize)]
struct SaveFiles {
    files: std::collections::BTreeMap<String, String>,
}

/// The answer of `POST /api/save`.
#[derive(Debug, Serialize)]
struct Saved {
    dir: String,
    written: Vec<String>,
}

#[derive(Clone)]
struct AppState {
    sim: SimHandle,
    /// Set when listening on a loopback address: the `Host` must then be
    /// a loopback name.
    loopback_only: bool,
}

fn query(q: Result<ApiQuery<Since>, ApiError>) -> Result<usize, SimError> {
    q.map(|ApiQuery(s)| s.since).map_err(SimError::from)
}

fn body<T>(b: Result<ApiJson<T>, ApiError>) -> Result<T, SimError> {
    b.map(|ApiJson(v)| v).map_err(SimError::from)
}

async fn state(
    State(st): State<AppState>,
    q: Result<ApiQuery<Since>, ApiError>,
) -> Result<Json<StateView>, SimError> {
    let since = query(q)?;
    Ok(Json(st.sim.call(move |s| s.state(since)).await?))
}

async fn step(
    State(st): State<AppState>,
    q: Result<ApiQuery<Since>, ApiError>,
) -> Result<Json<StateView>, SimError> {
    let since = query(q)?;
    let view = st
        .sim
        .call(move |s| {
            if s.status() == RunStatus::Aborted {
                return Err(SimError::aborted());
            }
            s.step();
            Ok(s.state(since))
        })
        .await??;
    Ok(Json(view))
}

async fn run(
    State(st): State<AppState>,
    q: Result<ApiQuery<Since>, ApiError>,
    b: Result<ApiJson<RunBody>, ApiError>,
) -> Result<Json<StateView>, SimError> {
    let since = query(q)?;
    let b = body(b)?;
    if b.rounds == Some(0) || b.rounds.is_some_and(|r| r > session::MAX_RUN_ROUNDS) {
        return Err(SimError::new(
            StatusCode::BAD_REQUEST,
            Some("rounds"),
            format!(
                "field 'rounds': must be from 1 to {}",
                session::MAX_RUN_ROUNDS
            ),
        ));
    }
    let view = st
        .sim
        .call(move |s| {
            if s.status() == RunStatus::Aborted {
                return Err(SimError::aborted());
            }
            s.run(b.rounds, b.until_done);
            Ok(s.state(since))
        })
        .await??;
    Ok(Json(view))
}

async fn command(
    State(st): State<AppState>,
    q: Result<ApiQuery<Since>, ApiError>,
    b: Result<ApiJson<CommandBody>, ApiError>,
) -> Result<Json<StateView>, SimError> {
    let since = query(q)?;
    let b = body(b)?;
    let view = st
        .sim
        .call(move |s| {
            if s.status() == RunStatus::Aborted {
                return Err(SimError::aborted());
            }
            s.command(&b.command, b.advance)
                .map_err(SimError::command)?;
            Ok(s.state(since))
        })
        .await??;
    Ok(Json(view))
}

async fn reset(
    State(st): State<AppState>,
    q: Result<ApiQuery<Since>, ApiError>,
) -> Result<Json<StateView>, SimError> {
    let since = query(q)?;
    let view = st
        .sim
        .call(move |s| {
            s.reset();
            s.state(since)
        })
        .await?;
    Ok(Json(view))
}

async fn load(
    State(st): State<AppState>,
    q: Result<ApiQuery<Since>, ApiError>,
    b: Result<ApiJson<LoadBody>, ApiError>,
) -> Result<Json<StateView>, SimError> {
    let since = query(q)?;
    let b = body(b)?;
    if let Some(p) = &b.profile {
        if !matches!(p.as_str(), "pve" | "default" | "fast") {
            return Err(SimError::new(
                StatusCode::BAD_REQUEST,
                Some("profile"),
                format!("field 'profile': unknown profile '{p}' (expected pve, default or fast)"),
            ));
        }
    }
    if b.dir.trim().is_empty() {
        return Err(SimError::new(
            StatusCode::BAD_REQUEST,
            Some("dir"),
            "field 'dir': a scenario directory is required",
        ));
    }
    let view = st
        .sim
        .call(move |s| {
            let dir = PathBuf::from(&b.dir);
            match Session::from_dir(&dir, b.profile.as_deref(), b.seed) {
                Ok(new) => {
                    *s = new;
                    Ok(s.state(since))
                }
                Err(e) => Err(SimError::new(
                    StatusCode::BAD_REQUEST,
                    Some("dir"),
                    format!("field 'dir': {}: {e}", dir.display()),
                )),
            }
        })
        .await??;
    Ok(Json(view))
}

async fn save_get(State(st): State<AppState>) -> Result<Json<SaveFiles>, SimError> {
    let files = st.sim.call(|s| s.save_files()).await?;
    Ok(Json(SaveFiles { files }))
}

async fn save_post(
    State(st): State<AppState>,
    b: Result<ApiJson<SaveBody>, ApiError>,
) -> Result<Json<Saved>, SimError> {
    let b = body(b)?;
    if b.dir.trim().is_empty() {
        return Err(SimError::new(
            StatusCode::BAD_REQUEST,
            Some("dir"),
            "field 'dir': a directory is required",
        ));
    }
    let saved = st
        .sim
        .call(move |s| {
            let dir = PathBuf::from(&b.dir);
            s.save_to(&dir)
                .map(|written| Saved {
                    dir: dir.display().to_string(),
                    written,
                })
                .map_err(|e| {
                    let status = match e {
                        session::SaveError::ForeignFile { .. } => StatusCode::CONFLICT,
                        session::SaveError::Io { .. } => StatusCode::BAD_REQUEST,
                    };
                    SimError::new(status, Some("dir"), format!("field 'dir': {e}"))
                })
        })
        .await??;
    Ok(Json(saved))
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

/// Whether `host` (a `Host` header value) names a loopback address.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:port
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// DNS rebinding and cross-site requests: on a loopback listener the
/// `Host` must be a loopback name; a POST whose `Origin` names another
/// host than `Host` is refused (browsers send `Origin` on every POST).
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let headers: &HeaderMap = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if st.loopback_only && !loopback_host(host) {
        return SimError::new(
            StatusCode::FORBIDDEN,
            Some("host"),
            "this local simulator answers only requests for a loopback host name",
        )
        .into_response();
    }
    if req.method() == axum::http::Method::POST {
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let origin_host = origin
                .split_once("://")
                .map_or(origin, |(_, rest)| rest)
                .trim_end_matches('/');
            if !origin_host.eq_ignore_ascii_case(host) {
                return SimError::new(
                    StatusCode::FORBIDDEN,
                    Some("origin"),
                    "cross-site request refused",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// The router of the page and its API.
pub fn router(sim: SimHandle, loopback_only: bool) -> Router {
    let app = AppState { sim, loopback_only };
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/assets/sim.css",
            get(|| async { asset("text/css; charset=utf-8", SIM_CSS) }),
        )
        .route(
            "/assets/sim.js",
            get(|| async { asset("text/javascript; charset=utf-8", SIM_JS) }),
        )
        .route("/api/state", get(state))
        .route("/api/step", post(step))
        .route("/api/run", post(run))
        .route("/api/command", post(command))
        .route("/api/reset", post(reset))
        .route("/api/load", post(load))
        .route("/api/save", get(save_get).post(save_post))
        .fallback(|| async { SimError::new(StatusCode::NOT_FOUND, None, "no such page or route") })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Serves the simulator on a bound listener until the future is dropped
/// or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, sim: SimHandle) -> std::io::Result<()> {
    let loopback_only = listener.local_addr()?.ip().is_loopback();
    axum::serve(listener, router(sim, loopback_only)).await
}

/// `ha-manager sim serve`: loads the scenario (a bad one: exit 2), binds
/// `listen`, prints the URL and serves until interrupted.
pub fn run_cli(init: SessionInit, listen: SocketAddr) -> i32 {
    let sim = match SimHandle::start(init.clone()) {
        Ok(h) => h,
        Err(e) => {
            match &init.dir {
                Some(dir) => eprintln!("ha-manager: {}: {e}", dir.display()),
                None => eprintln!("ha-manager: {e}"),
            }
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ha-manager: cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ha-manager: cannot listen on {listen}: {e}");
                return 1;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ha-manager: cannot read the listening address: {e}");
                return 1;
            }
        };
        if !addr.ip().is_loopback() {
            eprintln!(
                "ha-manager: warning: listening on {addr}: whoever reaches it can load and save scenario directories as this user"
            );
        }
        let line = format!("simulator on http://{addr}/\n");
        if crate::cli::stdout::write(&line).is_err() {
            // Nobody reads stdout; the server still serves.
        }
        tokio::select! {
            r = serve(listener, sim) => match r {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ha-manager: server failed: {e}");
                    1
                }
            },
            _ = tokio::signal::ctrl_c() => 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_host_names_pass() {
        for host in [
            "127.0.0.1:8070",
            "127.0.0.1",
            "localhost:1",
            "LOCALHOST",
            "[::1]:8070",
            "127.1.2.3:80",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "",
            "attacker.example",
            "attacker.example:8070",
            "10.0.0.1:8070",
            "localhost.attacker.example:8070",
            "[::2]:80",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }
}
