//! The cluster credentials of a node: `<data_dir>/cluster.json`, mode 0600,
//! next to its TLS material in `<data_dir>/tls/` ([`super::tls_files`]).
//!
//! Written by `cluster init` or `cluster join`; read by the daemon and by
//! the CLI on the node. No secret shared by the nodes is kept here: nodes
//! authenticate each other by certificate.
//!
//! Join tokens live in the cluster store (`api/join_tokens.rs`), not here;
//! only the first one waits here (digest and expiry, `initial_join_token`)
//! until the bootstrapping daemon has stored it.
//!
//! The data directory: a missing one is created with mode 0700. An existing
//! one keeps its mode (it may be shared with other software); it is refused
//! if other users could write to it (mode bits 0o022, e.g. a `/tmp`-like
//! directory), since they could then replace or remove the secrets.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Version of the credentials file format. 2: mutual TLS (version 1 held
/// a cluster secret and a shared API token).
pub const CREDENTIALS_VERSION: u32 = 2;

/// Secrets and identity of this node in its cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    /// File format version.
    pub version: u32,
    /// This node's Raft id.
    pub node_id: u64,
    /// Set by `cluster init`: the daemon must initialize the one-node
    /// cluster at its next start, then clears it.
    #[serde(default)]
    pub bootstrap_pending: bool,
    /// Set by `cluster init`: the first join token (digest and expiry),
    /// written into the store by the bootstrapping daemon, then cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_join_token: Option<crate::api::join_tokens::PendingJoinToken>,
    /// Set by `cluster join`: the member to ask for admission at the next
    /// start; cleared once this node is a voter.
    #[serde(default)]
    pub join_via: Option<String>,
}

/// Why the credentials cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// No credentials file: the node is not part of a cluster.
    #[error("{path}: no cluster credentials: run 'ha-manager cluster init' or 'ha-manager cluster join' first")]
    Missing {
        /// The file.
        path: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The data directory exists and other users can write to it.
    #[error("{path}: the data directory is writable by other users (mode {mode:04o}); set data_dir to a directory of its own (a missing one is created with mode 0700) or remove group/other write permission")]
    SharedDirectory {
        /// The directory.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// The file is not valid.
    #[error("{path}: invalid credentials file: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Credentials {
    /// Reads the credentials file.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let p = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CredentialsError::Missing { path: p })
            }
            Err(source) => return Err(CredentialsError::Io { path: p, source }),
        };
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        if let Some(v) = version.filter(|v| *v != u64::from(CREDENTIALS_VERSION)) {
            return Err(CredentialsError::Invalid {
                path: p,
                message: format!(
                    "unsupported version {v} (this ha-manager reads version {CREDENTIALS_VERSION}; \
                     version 1 is from before mutual TLS: such a cluster cannot be upgraded in \
                     place, create it again with 'cluster init' and 'cluster join')"
                ),
            });
        }
        let c: Credentials =
            serde_json::from_str(&text).map_err(|e| CredentialsError::Invalid {
                path: p.clone(),
                message: e.to_string(),
            })?;
        debug_assert_eq!(c.version, CREDENTIALS_VERSION, "checked before parsing");
        Ok(c)
    }

    /// Writes the file atomically with mode 0600 (root-only when run as root).
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| CredentialsError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        write_private_file(path, text.as_bytes(), 0o600)
    }
}

/// Writes `bytes` to `path` atomically (a temporary file, synced, then
/// renamed) with `mode`; the data directory is prepared as for the
/// credentials (created 0700 if missing, refused if others can write it).
pub fn write_private_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CredentialsError> {
    let p = path.display().to_string();
    let io = |source| CredentialsError::Io {
        path: p.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        prepare_data_dir(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Creates `dir` with mode 0700 if it is missing; an existing directory
/// keeps its mode but must not be writable by group or others.
pub fn prepare_data_dir(dir: &Path) -> Result<(), CredentialsError> {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir.display().to_string();
    let io = |source| CredentialsError::Io {
        path: d.clone(),
        source,
    };
    match std::fs::metadata(dir) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(CredentialsError::SharedDirectory { path: d, mode });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io),
        Err(e) => Err(io(e)),
    }
}

/// A fresh random secret: 32 bytes from the kernel CSPRNG, hex encoded.
pub fn random_secret() -> Result<String, std::io::Error> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_is_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/cluster.json");
        let c = Credentials {
            version: CREDENTIALS_VERSION,
            node_id: 3,
            bootstrap_pending: false,
            initial_join_token: None,
            join_via: Some("127.0.0.1:1".into()),
        };
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Credentials::load(&path).unwrap(), c);
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        let dir_mode = std::fs::metadata(dir.path().join("d"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700, "a created data dir is 0700");
    }

    fn sample() -> Credentials {
        Credentials {
            version: CREDENTIALS_VERSION,
            node_id: 1,
            bootstrap_pending: true,
            initial_join_token: None,
            join_via: None,
        }
    }

    #[test]
    fn a_file_from_before_mutual_tls_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        let old = r#"{"version":1,"node_id":2,"cluster_secret":"a","join_token":"b",
            "api_token":"c","bootstrap_pending":false,"join_via":null}"#;
        std::fs::write(&path, old).unwrap();
        let e = Credentials::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("unsupported version 1") && e.contains("before mutual TLS"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            old,
            "left as it was"
        );
    }

    #[test]
    fn an_existing_data_dir_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        sample().save(&data.join("cluster.json")).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        let file = std::fs::metadata(data.join("cluster.json")).unwrap();
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_shared_data_dir_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        for shared in [0o1777, 0o777, 0o775] {
            let data = dir.path().join(format!("shared-{shared:o}"));
            std::fs::create_dir(&data).unwrap();
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(shared)).unwrap();
            let err = sample().save(&data.join("cluster.json")).unwrap_err();
            assert!(
                matches!(err, CredentialsError::SharedDirectory { mode, .. } if mode == shared),
                "{err}"
            );
            assert!(err.to_string().contains("writable by other users"), "{err}");
            let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, shared, "the mode was changed");
            assert_eq!(
                std::fs::read_dir(&data).unwrap().count(),
                0,
                "a file was written"
            );
        }
    }
}
