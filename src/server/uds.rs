//! The Unix socket listener: created with mode 0600 inside a private directory, then moved into place, so no
//! other user can ever connect to it; a stale socket from an earlier run is replaced, anything else is refused.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use super::*;

/// Binds a Unix socket that is never reachable with a wider mode than 0600: it is bound inside a fresh 0700
/// directory, narrowed to 0600, then renamed into place. A stale socket (nobody listening) is replaced; any
/// other existing file is an error. Returns the listener and the socket's inode.
pub(super) fn bind_uds(path: &Path) -> Result<(UnixListener, u64), ServeError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::Config(format!(
                    "{} is in use by another server",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(io_error(format!(
                "cannot remove stale socket {}",
                path.display()
            )))?;
        }
        Ok(_) => {
            return Err(ServeError::Config(format!(
                "{} exists and is not a socket",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(format!("cannot use {}", path.display()))(e)),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let nonce = jiff::Timestamp::now().as_nanosecond() as u64;
    let private = parent.join(format!(".arbiter-uds-{}-{nonce:x}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_error(format!(
            "cannot create a directory next to {}",
            path.display()
        )))?;
    let result = (|| {
        let tmp = private.join("socket");
        let listener = std::os::unix::net::UnixListener::bind(&tmp)
            .map_err(io_error(format!("cannot bind {}", path.display())))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(UDS_MODE)).map_err(
            io_error(format!("cannot set the mode of {}", path.display())),
        )?;
        std::fs::rename(&tmp, path)
            .map_err(io_error(format!("cannot create {}", path.display())))?;
        let inode = std::fs::symlink_metadata(path)
            .map(|m| m.ino())
            .map_err(io_error(format!("cannot stat {}", path.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(io_error("cannot configure the socket"))?;
        let listener =
            UnixListener::from_std(listener).map_err(io_error("cannot register the socket"))?;
        Ok((listener, inode))
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}
