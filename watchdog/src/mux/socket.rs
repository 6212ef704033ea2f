//! The mux's listening socket and its "active" marker directory.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors while setting up the socket or the marker.
#[derive(Debug, Error)]
pub enum SocketError {
    /// Another mux answers on the socket.
    #[error("another watchdog-mux is already listening on {0}")]
    AlreadyRunning(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{0} exists and is not a unix socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// An I/O error on the given path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The marker of a previous, unclean exit exists.
    #[error(
        "marker {0} exists: a previous watchdog-mux exited while clients were armed, so a reset \
         is pending and must not be averted by feeding the device again; remove the marker only \
         if you know the node has been reset"
    )]
    PendingReset(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Binds the listening socket with mode 0600, replacing a stale socket file
/// but never a live mux or a non-socket file.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(SocketError::AlreadyRunning(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_error(path))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(path)(err)),
    }
    // Bind under a private temporary name first and publish the finished,
    // listening socket with link(2): a client that sees the path can
    // connect at once (std binds and listens in two system calls, and a
    // connect between them is refused), and link, unlike rename, fails if
    // a second mux published its socket meanwhile.
    let staging = staging_path(path);
    remove_stale_staging(&staging)?;
    // Create the socket without group/other permissions from the start, so
    // there is no window in which others may connect.
    let old_mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&staging);
    nix::sys::stat::umask(old_mask);
    let listener = bound.map_err(io_error(&staging))?;
    let published = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error(&staging))
        .and_then(|()| publish(&staging, path));
    // The staging name is never needed again, whether publishing worked or not.
    let _ = std::fs::remove_file(&staging);
    published?;
    listener.set_nonblocking(true).map_err(io_error(path))?;
    Ok(listener)
}

/// The temporary name the socket is bound under before it is published.
fn staging_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}.staging", std::process::id()));
    path.with_file_name(name)
}

/// Removes a staging socket left by a crashed earlier process with our pid.
fn remove_stale_staging(staging: &Path) -> Result<(), SocketError> {
    match std::fs::remove_file(staging) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(io_error(staging)(err)),
        _ => Ok(()),
    }
}

/// Makes the listening socket visible under its real name, failing if the
/// name was taken since the stale-socket check.
fn publish(staging: &Path, path: &Path) -> Result<(), SocketError> {
    match std::fs::hard_link(staging, path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            Err(SocketError::AlreadyRunning(path.to_path_buf()))
        }
        Err(err) => Err(io_error(path)(err)),
    }
}

/// Refuses to start while the marker of an unclean exit exists.
pub fn check_marker(marker: &Path) -> Result<(), SocketError> {
    match std::fs::symlink_metadata(marker) {
        Ok(_) => Err(SocketError::PendingReset(marker.to_path_buf())),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error(marker)(err)),
    }
}

/// Creates or removes the marker so that it exists exactly while clients
/// are armed (or the mux has fenced). Failures are logged: the marker is a
/// second line of defence, fencing does not depend on it.
pub fn set_marker(marker: &Path, present: bool) {
    let result = if present {
        match std::fs::create_dir(marker) {
            Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    } else {
        match std::fs::remove_dir(marker) {
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    if let Err(err) = result {
        tracing::error!(marker = %marker.display(), present, %err, "cannot update the active marker");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_socket_accepts_at_once_and_leaves_no_staging_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mux.sock");
        let _listener = bind(&path).unwrap();
        UnixStream::connect(&path).expect("published socket is listening");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("mux.sock")]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_live_socket_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mux.sock");
        let _first = bind(&path).unwrap();
        assert!(matches!(bind(&path), Err(SocketError::AlreadyRunning(_))));
        UnixStream::connect(&path).expect("the first socket still answers");
    }

    #[test]
    fn a_name_taken_after_the_stale_check_is_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mux.sock");
        let staging = dir.path().join("other.sock");
        let _other = UnixListener::bind(&staging).unwrap();
        std::fs::hard_link(&staging, &path).unwrap();
        let ours = dir.path().join("ours.sock");
        let _listener = UnixListener::bind(&ours).unwrap();
        assert!(matches!(
            publish(&ours, &path),
            Err(SocketError::AlreadyRunning(_))
        ));
    }
}
