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

/// An HTTP method of a [`Route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Verb {
    /// The method as HTTP writes it (and the OpenAPI document, lower-cased).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }

    fn method(self) -> reqwest::Method {
        match self {
            Verb::Get => reqwest::Method::GET,
            Verb::Post => reqwest::Method::POST,
            Verb::Put => reqwest::Method::PUT,
            Verb::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A route of the API that the CLI (or a daemon) calls: a method and a
/// path template relative to `/api/v1`, `{name}` standing for one path
/// segment, as the OpenAPI document writes it. The CLI requests only
/// the routes of [`routes`], and `tests/openapi.rs` checks that each of
/// them is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path template, e.g. `/resources/{sid}`.
    pub template: &'static str,
}

/// Declares the route constants and [`routes::ALL`] from one list, so
/// the table the test reads cannot miss a constant.
macro_rules! route_table {
    ($($(#[$doc:meta])* $name:ident = $verb:ident $template:literal;)*) => {
        $($(#[$doc])* pub const $name: Route = Route { verb: Verb::$verb, template: $template };)*
        /// Every route the CLI and the daemons' API calls use.
        pub const ALL: &[Route] = &[$($name),*];
    };
}

/// The API routes the CLI (and a daemon that joins or leaves) requests.
pub mod routes {
    use super::{Route, Verb};

    route_table! {
        /// Register a joining node (join token).
        CLUSTER_JOIN = Post "/cluster/join";
        /// Admit a registered node as a member.
        CLUSTER_MEMBERS = Post "/cluster/members";
        /// A leaving member asks to be removed.
        CLUSTER_REMOVE_SELF = Post "/cluster/remove-self";
        /// Membership and leader.
        CLUSTER_STATUS = Get "/cluster/status";
        /// This node leaves.
        CLUSTER_LEAVE = Post "/cluster/leave";
        /// Remove a dead member.
        CLUSTER_DELNODE = Post "/cluster/delnode";
        /// A member's new address.
        CLUSTER_SET_ADDRESS = Post "/cluster/set-address";
        /// A new certificate for this node.
        CLUSTER_RENEW_CERT = Post "/cluster/renew-cert";
        /// CA rotation status.
        CA_STATUS = Get "/cluster/ca";
        /// Start a CA rotation.
        CA_ROTATE = Post "/cluster/ca/rotate";
        /// Finish a CA rotation.
        CA_FINISH = Post "/cluster/ca/finish";
        /// List join tokens.
        JOIN_TOKENS = Get "/cluster/join-tokens";
        /// Make a join token.
        JOIN_TOKEN_CREATE = Post "/cluster/join-tokens";
        /// Revoke a join token.
        JOIN_TOKEN_REVOKE = Delete "/cluster/join-tokens/{id}";
        /// List API tokens.
        TOKENS = Get "/tokens";
        /// Make an API token.
        TOKEN_CREATE = Post "/tokens";
        /// Remove an API token.
        TOKEN_REMOVE = Delete "/tokens/{id}";
        /// List resources.
        RESOURCES = Get "/resources";
        /// Create a resource.
        RESOURCE_CREATE = Post "/resources";
        /// Change a resource.
        RESOURCE_UPDATE = Put "/resources/{sid}";
        /// Remove a resource (query `purge`).
        RESOURCE_REMOVE = Delete "/resources/{sid}";
        /// Queue a migration.
        RESOURCE_MIGRATE = Post "/resources/{sid}/migrate";
        /// Queue a relocation.
        RESOURCE_RELOCATE = Post "/resources/{sid}/relocate";
        /// Queue a CRM command.
        CRM_COMMAND = Post "/crm-command";
        /// List legacy groups.
        GROUPS = Get "/groups";
        /// Create a legacy group.
        GROUP_CREATE = Post "/groups";
        /// Change a legacy group.
        GROUP_UPDATE = Put "/groups/{group}";
        /// Remove a legacy group.
        GROUP_REMOVE = Delete "/groups/{group}";
        /// List rules (query `type`, `resource`).
        RULES = Get "/rules";
        /// Create a rule.
        RULE_CREATE = Post "/rules";
        /// One rule.
        RULE = Get "/rules/{rule}";
        /// Change a rule.
        RULE_UPDATE = Put "/rules/{rule}";
        /// Remove a rule.
        RULE_REMOVE = Delete "/rules/{rule}";
        /// The scheduling options.
        CRS = Get "/crs";
        /// Change the scheduling options.
        CRS_SET = Put "/crs";
        /// The scheduler's view of usage.
        CRS_USAGE = Get "/crs/usage";
        /// The status lines.
        STATUS_CURRENT = Get "/status/current";
        /// The manager and LRM status.
        STATUS_MANAGER = Get "/status/manager_status";
        /// Import configuration files.
        CONFIG_IMPORT = Post "/config/import";
        /// A backup of the configuration.
        BACKUP = Get "/backup";
        /// The CRM's event history (query `sid`, `node`, `since`, `limit`).
        HISTORY = Get "/history";
        /// Why a service is on its node.
        EXPLAIN = Get "/explain/{sid}";
        /// List notification targets.
        NOTIFY_TARGETS = Get "/notify/targets";
        /// Add a notification target.
        NOTIFY_TARGET_ADD = Post "/notify/targets";
        /// Remove a notification target.
        NOTIFY_TARGET_REMOVE = Delete "/notify/targets/{name}";
        /// Send a test event.
        NOTIFY_TEST = Post "/notify/test";
    }
}

impl Route {
    /// The route's path with each `{name}` replaced by the next of `args`,
    /// encoded as one segment ([`segment`]).
    pub fn at(self, args: &[&str]) -> anyhow::Result<Target> {
        let mut path = String::new();
        let mut args = args.iter();
        for part in self.template.split('/').skip(1) {
            path.push('/');
            if part.starts_with('{') && part.ends_with('}') {
                let Some(arg) = args.next() else {
                    bail!(
                        "internal error: {} {} needs more arguments",
                        self.verb.as_str(),
                        self.template
                    );
                };
                path.push_str(&segment(arg)?);
            } else {
                path.push_str(part);
            }
        }
        if args.next().is_some() {
            bail!(
                "internal error: {} {} takes fewer arguments",
                self.verb.as_str(),
                self.template
            );
        }
        Ok(Target {
            route: self,
            path,
            query: Vec::new(),
        })
    }
}

/// A [`Route`] with its path filled in and an optional query: the only
/// thing [`ApiClient`] requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    route: Route,
    path: String,
    query: Vec<String>,
}

impl Target {
    /// Adds `key=value` to the query, the value percent-encoded.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push(format!(
            "{key}={}",
            utf8_percent_encode(value, SEGMENT_KEEP)
        ));
        self
    }

    /// The path and query relative to `/api/v1`.
    pub fn path(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query.join("&"))
        }
    }

    /// Refuses a target whose route has another method than the call.
    fn check(&self, verb: Verb) -> anyhow::Result<()> {
        if self.route.verb != verb {
            bail!(
                "internal error: {} is a {} route, requested with {}",
                self.route.template,
                self.route.verb.as_str(),
                verb.as_str()
            );
        }
        Ok(())
    }
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

    /// A request of `target` with the token, if there is one.
    fn request(&self, target: &Target) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(
            target.route.verb.method(),
            format!("{}{}", self.base, target.path()),
        );
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
    pub fn get<T: DeserializeOwned>(&self, target: Target) -> anyhow::Result<T> {
        target.check(Verb::Get)?;
        let r = self.request(&target).send();
        Ok(self.finish(&target.path, r)?.json()?)
    }

    /// Sends `body` as JSON to `target`; errors as [`Self::finish`].
    fn send_json<B: Serialize>(
        &self,
        target: &Target,
        body: &B,
    ) -> anyhow::Result<reqwest::blocking::Response> {
        let r = self.request(target).json(body).send();
        self.finish(&target.path, r)
    }

    /// POST JSON and decode.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        target: Target,
        body: &B,
    ) -> anyhow::Result<T> {
        target.check(Verb::Post)?;
        Ok(self.send_json(&target, body)?.json()?)
    }

    /// POST JSON, ignore the body of the answer.
    pub fn post_empty<B: Serialize>(&self, target: Target, body: &B) -> anyhow::Result<()> {
        target.check(Verb::Post)?;
        self.send_json(&target, body)?;
        Ok(())
    }

    /// PUT JSON and decode.
    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        target: Target,
        body: &B,
    ) -> anyhow::Result<T> {
        target.check(Verb::Put)?;
        Ok(self.send_json(&target, body)?.json()?)
    }

    /// DELETE and decode.
    pub fn delete<T: DeserializeOwned>(&self, target: Target) -> anyhow::Result<T> {
        target.check(Verb::Delete)?;
        let r = self.request(&target).send();
        Ok(self.finish(&target.path, r)?.json()?)
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

    #[test]
    fn targets_fill_the_template() {
        let t = routes::RESOURCE_REMOVE
            .at(&["exec:a/b"])
            .unwrap()
            .query("purge", "0&x");
        assert_eq!(t.path(), "/resources/exec:a%2Fb?purge=0%26x");
        assert_eq!(routes::RULE.at(&["r1"]).unwrap().path(), "/rules/r1");
        assert!(routes::RULE.at(&[]).is_err());
        assert!(routes::RULES.at(&["x"]).is_err());
        assert!(routes::RULES.at(&[]).unwrap().check(Verb::Post).is_err());
    }
}
