//! Blocking HTTPS client of the local daemon's API. It trusts only the
//! cluster CA (`<data_dir>/tls/ca.crt`) and authenticates with the node's
//! certificate (root-only `node.key`), or with the API token in
//! `HA_MANAGER_TOKEN` when that is set (a read-only token then acts
//! read-only).

use std::time::Duration;

use anyhow::{bail, Context};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::error::ErrorBody;
use crate::daemon::config::NodeConfig;
use crate::daemon::credentials::Credentials;
use crate::daemon::tls_files::TlsFiles;

/// What a path segment keeps as it is: RFC 3986 unreserved characters and
/// `:` and `@` (legal in a segment, common in SIDs). Everything else,
/// `/ ? # %` above all, is percent-encoded, so a name stays one segment.
const SEGMENT_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// `name` as one URL path segment. `.` and `..` (in any encoding) are
/// dot-segments that URL parsers resolve away, so they are refused: no
/// SID, node name or id can be one.
pub fn segment(name: &str) -> anyhow::Result<String> {
    if name.is_empty() || name == "." || name == ".." {
        bail!("invalid name '{name}': not a SID, node name or id");
    }
    Ok(utf8_percent_encode(name, SEGMENT_KEEP).to_string())
}

/// A client bound to one daemon.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    /// A client of the daemon configured in `config` (wildcard listen
    /// addresses are reached over loopback).
    pub fn for_node(config: &NodeConfig) -> anyhow::Result<Self> {
        // The credentials say whether this node is in a cluster at all.
        Credentials::load(&config.credentials_path())?;
        let addr = match config.listen.rsplit_once(':') {
            Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
            Some(("[::]", port)) => format!("[::1]:{port}"),
            _ => config.listen.clone(),
        };
        let files = TlsFiles::of(config);
        let ca = files
            .ca_pem()
            .context("the cluster CA certificate (is this node in a cluster? run as root)")?;
        let token = std::env::var("HA_MANAGER_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        // With a token, no certificate: the token alone says who calls.
        let identity = match token {
            Some(_) => None,
            None => Some(
                files
                    .node_pem()
                    .context("the node certificate (run as root, or set HA_MANAGER_TOKEN)")?,
            ),
        };
        Self::new(&addr, &ca, identity, token)
    }

    /// A client of the daemon at `addr` trusting the CAs of `ca_pem`,
    /// presenting `identity` (certificate, key PEM) and/or `token`.
    pub fn new(
        addr: &str,
        ca_pem: &str,
        identity: Option<(String, String)>,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let tls = raft::tls::config::cli_client_config(
            ca_pem,
            identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        )?;
        Ok(ApiClient {
            base: format!("https://{addr}/api/v1"),
            token,
            http: reqwest::blocking::Client::builder()
                .use_preconfigured_tls(tls)
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// A request with the token, if there is one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Turns a reply into the decoded body or an error with the daemon's
    /// message (which names the field).
    fn finish(
        &self,
        what: &str,
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> anyhow::Result<reqwest::blocking::Response> {
        let r = r.map_err(|e| {
            anyhow::anyhow!(
                "{what}: cannot reach the daemon at {}: {}",
                self.base,
                crate::daemon::lifecycle::error_chain(&e)
            )
        })?;
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
        let r = self.request(reqwest::Method::GET, path).send();
        Ok(self.finish(path, r)?.json()?)
    }

    /// Sends `body` as JSON with `method` to `path`; errors as [`Self::finish`].
    fn send_json<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<reqwest::blocking::Response> {
        let r = self.request(method, path).json(body).send();
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
        let r = self.request(reqwest::Method::DELETE, path).send();
        Ok(self.finish(path, r)?.json()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_segment() {
        assert_eq!(
            segment("exec:zz/../../rules/db-strict").unwrap(),
            "exec:zz%2F..%2F..%2Frules%2Fdb-strict"
        );
        assert_eq!(segment("exec:a#x").unwrap(), "exec:a%23x");
        assert_eq!(segment("exec:a?x=1%").unwrap(), "exec:a%3Fx%3D1%25");
        assert_eq!(segment("vm:101").unwrap(), "vm:101");
        assert_eq!(segment("é").unwrap(), "%C3%A9");
        for bad in ["", ".", ".."] {
            assert!(segment(bad).is_err(), "{bad}");
        }
    }
}
