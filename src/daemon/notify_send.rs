//! Sends one event to one notification target: an HTTP(S) POST (webhook)
//! or a process (exec hook). No decisions beyond reading the answer
//! ([`crate::notify::plan::http_outcome`]); retries and order are the
//! planner's.
//!
//! Webhook request: `POST <url>`, body = the event as JSON, headers
//! `Content-Type: application/json`, `X-HA-Event-Id` (the seq: drop a
//! duplicate by it), `X-HA-Event-Kind`, `X-HA-Target`, and with a secret
//! `X-HA-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. Redirects
//! are not followed. TLS trusts the Mozilla roots (webpki-roots) and the
//! target's CA file.
//!
//! Exec hook: the path is run with an empty environment but `PATH` and
//! the `HA_EVENT_*` variables ([`crate::notify::event::hook_env`]), no
//! stdin, in its own process group, which is killed at the time limit.
//! Exit 0 = delivered. Its stdout and stderr are logged (first 4 KiB).

use std::sync::Arc;
use std::time::Duration;

use crate::notify::config::{Sink, Target};
use crate::notify::event::{event_id, hook_env, kind_of, Notice};
use crate::notify::plan::{http_outcome, Attempt};

/// Header carrying the event seq.
pub const EVENT_ID_HEADER: &str = "x-ha-event-id";
/// Header carrying the event kind.
pub const EVENT_KIND_HEADER: &str = "x-ha-event-kind";
/// Header carrying the target name.
pub const TARGET_HEADER: &str = "x-ha-target";
/// Header carrying the name of the node that sent the request.
pub const SENDER_HEADER: &str = "x-ha-sender";
/// Header carrying the HMAC-SHA256 of the body (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-ha-signature-256";
/// How much of a hook's stdout and stderr is logged.
const HOOK_OUTPUT_LOGGED: usize = 4096;
/// `PATH` of a hook.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Why a webhook client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file of the target.
    #[error("the target's CA file: {0}")]
    Ca(String),
    /// rustls or reqwest refused the configuration.
    #[error("TLS client: {0}")]
    Tls(String),
}

/// The HTTP client of a webhook: Mozilla roots plus `ca_pem`, no
/// redirects, `timeout` per request.
pub fn webhook_client(
    ca_pem: Option<&str>,
    timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let certs = raft::tls::config::certs_from_pem("CA file", pem)
            .map_err(|e| ClientError::Ca(e.to_string()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ClientError::Ca(e.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::Tls(crate::daemon::lifecycle::error_chain(&e)))
}

/// Sends `ev` to target `name` once from node `sender`; the caller
/// decides what comes next.
pub async fn deliver(name: &str, target: &Target, ev: &Notice, sender: &str) -> Attempt {
    let timeout = Duration::from_secs(target.timeout_secs);
    match &target.sink {
        Sink::Webhook {
            url,
            secret,
            ca_pem,
        } => {
            let request = WebhookRequest {
                name,
                url,
                secret: secret.as_deref(),
                ca_pem: ca_pem.as_deref(),
                timeout,
                sender,
            };
            webhook(&request, ev).await
        }
        Sink::Exec { path } => exec(name, path, timeout, ev, sender).await,
    }
}

/// Where and how a webhook request goes.
struct WebhookRequest<'a> {
    name: &'a str,
    url: &'a str,
    secret: Option<&'a str>,
    ca_pem: Option<&'a str>,
    timeout: Duration,
    sender: &'a str,
}

async fn webhook(w: &WebhookRequest<'_>, ev: &Notice) -> Attempt {
    let body = match serde_json::to_vec(ev) {
        Ok(b) => b,
        Err(e) => return Attempt::Rejected(format!("the event cannot be encoded: {e}")),
    };
    // A bad CA file is the operator's to fix: the events wait meanwhile.
    let client = match webhook_client(w.ca_pem, w.timeout) {
        Ok(c) => c,
        Err(e) => return Attempt::Retry(e.to_string()),
    };
    let mut request = client
        .post(w.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, event_id(ev))
        .header(EVENT_KIND_HEADER, kind_of(ev))
        .header(TARGET_HEADER, w.name)
        .header(SENDER_HEADER, w.sender);
    if let Some(secret) = w.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret.as_bytes(), &body));
    }
    match request.body(body).send().await {
        Ok(response) => http_outcome(response.status().as_u16()),
        Err(e) => Attempt::Retry(crate::daemon::lifecycle::error_chain(&e)),
    }
}

/// The first [`HOOK_OUTPUT_LOGGED`] bytes of a hook's output, as text.
fn shown_output(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(HOOK_OUTPUT_LOGGED)];
    let mut text = String::from_utf8_lossy(cut).trim_end().to_string();
    if bytes.len() > HOOK_OUTPUT_LOGGED {
        text.push_str(" [...]");
    }
    text
}

async fn exec(name: &str, path: &str, timeout: Duration, ev: &Notice, sender: &str) -> Attempt {
    let json = match serde_json::to_string(ev) {
        Ok(j) => j,
        Err(e) => return Attempt::Rejected(format!("the event cannot be encoded: {e}")),
    };
    let mut command = tokio::process::Command::new(path);
    command
        .env_clear()
        .env("PATH", HOOK_PATH)
        .envs(hook_env(ev, name, &json))
        .env("HA_EVENT_SENDER", sender)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return Attempt::Retry(format!("cannot run {path}: {e}")),
    };
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let stdout = shown_output(&out.stdout);
            let stderr = shown_output(&out.stderr);
            if !stdout.is_empty() || !stderr.is_empty() {
                tracing::info!(target: "notify", target_name = name, seq = ev.seq, %stdout, %stderr, "hook output");
            }
            if out.status.success() {
                Attempt::Delivered
            } else {
                Attempt::Retry(format!("{path} exited with {}", out.status))
            }
        }
        Ok(Err(e)) => Attempt::Retry(format!("waiting for {path}: {e}")),
        Err(_) => {
            // The hook's whole process group: a shell script's children too.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Attempt::Retry(format!(
                "{path} did not finish within {} s: killed",
                timeout.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_client_takes_the_mozilla_roots_and_refuses_a_bad_ca_file() {
        assert!(webhook_client(None, Duration::from_secs(1)).is_ok());
        assert!(matches!(
            webhook_client(Some("not pem"), Duration::from_secs(1)),
            Err(ClientError::Ca(_))
        ));
    }

    fn exec_target(path: &str, timeout_secs: u64) -> Target {
        Target {
            sink: Sink::Exec { path: path.into() },
            events: crate::notify::config::EventClass::ALL.to_vec(),
            timeout_secs,
            start_after: 0,
        }
    }

    #[test]
    fn a_hook_gets_the_event_and_a_slow_one_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let hook = dir.path().join("hook.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho hello\nenv > {}\n[ \"$HA_EVENT_KIND\" = slow ] && sleep 30\nexit 0\n",
                out.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut ev = crate::notify::event::test_event(7, "node1", "admin");
        let target = exec_target(hook.to_str().unwrap(), 2);
        assert_eq!(
            rt.block_on(deliver("pager", &target, &ev, "node1")),
            Attempt::Delivered
        );
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("HA_EVENT_KIND=test"), "{env}");
        assert!(env.contains("HA_EVENT_TARGET=pager"), "{env}");
        ev.kind = "slow".into();
        let started = std::time::Instant::now();
        let result = rt.block_on(deliver("pager", &target, &ev, "node1"));
        assert!(
            matches!(result, Attempt::Retry(ref m) if m.contains("killed")),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        let missing = exec_target("/nonexistent/hook", 2);
        assert!(matches!(
            rt.block_on(deliver("pager", &missing, &ev, "node1")),
            Attempt::Retry(_)
        ));
    }
}
