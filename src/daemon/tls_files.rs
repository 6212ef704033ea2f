//! A node's TLS material on disk, in `<data_dir>/tls/` (directory 0700):
//!
//! | file | mode | what |
//! |---|---|---|
//! | `ca.crt` | 0644 | the trusted CA certificates, the current CA first (during a CA rotation, `api::ca`, also the next one); what the CLI trusts |
//! | `ca.key` | 0600 | the current CA's private key (signs joining nodes) |
//! | `node.crt` | 0644 | this node's certificate |
//! | `node.key` | 0600 | its private key (never leaves the node) |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::tls::pki::CaMaterial;
use raft::tls::{NodeTls, TlsMaterial};

use super::config::NodeConfig;
use super::credentials::{prepare_data_dir, write_private_file, CredentialsError};

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    /// Reading failed.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] CredentialsError),
    /// The material is not usable.
    #[error("{dir}: {source}")]
    Invalid {
        /// The directory.
        dir: String,
        /// What is wrong.
        source: raft::tls::TlsError,
    },
}

/// The TLS files of one node.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    dir: PathBuf,
}

impl TlsFiles {
    /// The files of the node configured in `config`.
    pub fn of(config: &NodeConfig) -> Self {
        Self::in_dir(&config.data_dir.join("tls"))
    }

    /// The files in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        TlsFiles {
            dir: dir.to_path_buf(),
        }
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// This node's certificate.
    pub fn node_cert(&self) -> PathBuf {
        self.dir.join("node.crt")
    }

    /// This node's key.
    pub fn node_key(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    /// Whether any of the files exists (a node with them belongs to a
    /// cluster, or did).
    pub fn any_exists(&self) -> bool {
        [
            self.ca_cert(),
            self.ca_key(),
            self.node_cert(),
            self.node_key(),
        ]
        .iter()
        .any(|p| p.exists())
    }

    fn read(path: &Path) -> Result<String, TlsFilesError> {
        std::fs::read_to_string(path).map_err(|source| TlsFilesError::Read {
            path: path.display().to_string(),
            source,
        })
    }

    /// Checks (or creates) the data directory the TLS directory is in,
    /// as for the credentials: never written into a directory others can
    /// write to.
    fn prepare(&self) -> Result<(), TlsFilesError> {
        if let Some(data_dir) = self.dir.parent() {
            prepare_data_dir(data_dir)?;
        }
        Ok(())
    }

    /// Writes the CA certificate and key.
    pub fn write_ca(&self, ca: &CaMaterial) -> Result<(), TlsFilesError> {
        self.prepare()?;
        write_private_file(&self.ca_cert(), ca.cert_pem.as_bytes(), 0o644)?;
        write_private_file(&self.ca_key(), ca.key_pem.as_bytes(), 0o600)?;
        Ok(())
    }

    /// Writes this node's certificate and key (key first: a certificate
    /// never stands next to a key it does not belong to for long, and the
    /// daemon checks the pair before it uses it).
    pub fn write_node(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsFilesError> {
        self.prepare()?;
        write_private_file(&self.node_key(), key_pem.as_bytes(), 0o600)?;
        write_private_file(&self.node_cert(), cert_pem.as_bytes(), 0o644)?;
        Ok(())
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> Result<String, TlsFilesError> {
        Self::read(&self.ca_cert())
    }

    /// The CA certificate and key.
    pub fn load_ca(&self) -> Result<CaMaterial, TlsFilesError> {
        Ok(CaMaterial {
            cert_pem: Self::read(&self.ca_cert())?,
            key_pem: Self::read(&self.ca_key())?,
        })
    }

    /// This node's certificate and key (PEM), for a client that presents
    /// them (the CLI on the node).
    pub fn node_pem(&self) -> Result<(String, String), TlsFilesError> {
        Ok((
            Self::read(&self.node_cert())?,
            Self::read(&self.node_key())?,
        ))
    }

    /// The node's material, checked (the key fits the certificate, the
    /// certificate chains to the CA and names a node).
    pub fn load_material(&self) -> Result<TlsMaterial, TlsFilesError> {
        let (cert, key) = self.node_pem()?;
        TlsMaterial::from_pem(&self.ca_pem()?, &cert, &key).map_err(|source| {
            TlsFilesError::Invalid {
                dir: self.dir.display().to_string(),
                source,
            }
        })
    }

    /// The node's material as the shared, replaceable TLS state.
    pub fn load(&self) -> Result<Arc<NodeTls>, TlsFilesError> {
        Ok(NodeTls::new(self.load_material()?))
    }
}
