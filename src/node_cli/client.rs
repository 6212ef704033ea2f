//! Blocking HTTP client of the local daemon's API, authenticated with the
//! API token from the node's root-only credentials file.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::error::ErrorBody;
use crate::daemon::config::NodeConfig;
use crate::daemon::credentials::Credentials;

/// A client bound to one daemon.
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    /// A client of the daemon configured in `config` (wildcard listen
    /// addresses are reached over loopback).
    pub fn for_node(config: &NodeConfig) -> anyhow::Result<Self> {
        let creds = Credentials::load(&config.credentials_path())?;
        let addr = match config.listen.rsplit_once(':') {
            Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
            Some(("[::]", port)) => format!("[::1]:{port}"),
            _ => config.listen.clone(),
        };
        // Another token (e.g. a read-only one) can be given in the
        // environment; the node's own one is the default.
        let token = std::env::var("HA_MANAGER_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or(creds.api_token);
        Self::new(&addr, &token)
    }

    /// A client of the daemon at `addr` using `token`.
    pub fn new(addr: &str, token: &str) -> anyhow::Result<Self> {
        Ok(ApiClient {
            base: format!("http://{addr}/api/v1"),
            token: token.to_string(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    fn finish(
        &self,
        what: &str,
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> anyhow::Result<reqwest::blocking::Response> {
        let r = r.with_context(|| format!("{what}: cannot reach the daemon at {}", self.base))?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let message = r
            .json::<ErrorBody>()
            .map(|b| b.error)
            .unwrap_or_else(|_| status.to_string());
        bail!("{message}")
    }

    /// GET and decode.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send();
        Ok(self.finish(path, r)?.json()?)
    }

    /// Sends `body` as JSON with `method` to `path`; errors as [`Self::finish`].
    fn send_json<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<reqwest::blocking::Response> {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send();
        self.finish(path, r)
    }

    /// POST JSON and decode.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        Ok(self.send_json(reqwest::Method::POST, path, body)?.json()?)
    }

    /// POST JSON, ignore the body of the answer.
    pub fn post_empty<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        self.send_json(reqwest::Method::POST, path, body)?;
        Ok(())
    }

    /// PUT JSON and decode.
    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        Ok(self.send_json(reqwest::Method::PUT, path, body)?.json()?)
    }

    /// DELETE and decode.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send();
        Ok(self.finish(path, r)?.json()?)
    }
}
