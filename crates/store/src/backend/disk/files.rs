//! The cache file's permissions: its folder, the database and SQLite's `-wal`, `-shm` and `-journal` files beside
//! it are the owner's alone, because they hold every tenant's values (issue 28, item 11).
//!
//! SQLite creates the main database with `0644` less the umask, but each companion file with exactly the
//! database's own mode (`findCreateFileMode` and `robust_open` for the WAL and journal, the `fstat` of the
//! database in `unixOpenSharedMemory` for the `-shm`, all in the bundled `sqlite3.c`). So the database is created
//! here, `0600`, before SQLite ever opens it, and the companions follow. Files and folders that earlier versions
//! left readable by others are tightened on every open; a companion that already existed keeps its mode in SQLite,
//! so it is tightened here too.

use std::path::Path;

use super::BackendError;

/// The folder's mode when it is created or tightened: owner only.
#[cfg(unix)]
const FOLDER_MODE: u32 = 0o700;
/// The database file's mode, and through SQLite its companions'.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;
/// Permission bits of the group and of others.
#[cfg(unix)]
const SHARED_BITS: u32 = 0o077;
/// The files SQLite keeps beside a database, by suffix.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Prepares the folder and the database file at `path` before SQLite opens it: creates the folder (owner only)
/// and the file (`0600`) when missing, and takes the group's and others' access away from the folder, the file
/// and its companions when an earlier version left it.
///
/// A bare file name (`cache.sqlite3`) lives in the working folder, which is not the cache's to close; neither is
/// a shared folder with the sticky bit such as `/tmp`, nor one the process does not own (the OS refuses, and a
/// warning says so). The files' own modes protect the values in each of those cases.
///
/// # Errors
/// [`BackendError::Other`] naming the folder or file that cannot be created, or a file whose access cannot be
/// narrowed (another user's file).
pub(super) fn secure(path: &Path) -> Result<(), BackendError> {
    let folder = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = folder {
        imp::folder(dir)?;
    }
    imp::database(path)?;
    for suffix in COMPANIONS {
        imp::tighten(&companion(path, suffix))?;
    }
    Ok(())
}

/// The path of the companion file SQLite names `<database><suffix>`.
fn companion(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[cfg(unix)]
mod imp {
    use std::{
        fs::{DirBuilder, OpenOptions, Permissions},
        io::ErrorKind,
        os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
        path::Path,
    };

    use super::{BackendError, FILE_MODE, FOLDER_MODE, SHARED_BITS};

    /// The sticky bit: a folder where everyone may create files (`/tmp`).
    const STICKY: u32 = 0o1000;

    /// Creates the folder and any missing parent owner-only, and narrows an existing one to its owner.
    pub(super) fn folder(dir: &Path) -> Result<(), BackendError> {
        let fail = |e: std::io::Error| {
            BackendError::Other(format!("disk cache folder {}: {e}", dir.display()))
        };
        DirBuilder::new()
            .recursive(true)
            .mode(FOLDER_MODE)
            .create(dir)
            .map_err(fail)?;
        let mode = std::fs::metadata(dir).map_err(fail)?.permissions().mode();
        if mode & SHARED_BITS == 0 || mode & STICKY != 0 {
            return Ok(());
        }
        match std::fs::set_permissions(dir, Permissions::from_mode(mode & 0o7700)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                // Not ours (EPERM): the files are still 0600, so the values stay private.
                tracing::warn!(
                    folder = %dir.display(),
                    "the disk cache's folder is open to other users and cannot be narrowed: {e}"
                );
                Ok(())
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// Creates the database file `0600` when missing — exactly, whatever the umask — so SQLite opens a file
    /// whose mode its companions copy; narrows an existing one.
    pub(super) fn database(path: &Path) -> Result<(), BackendError> {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path);
        match created {
            // An empty file is an empty database to SQLite; `prepare` writes the schema into it.
            Ok(file) => file
                .set_permissions(Permissions::from_mode(FILE_MODE))
                .map_err(|e| file_error(path, e)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => tighten(path),
            Err(e) => Err(file_error(path, e)),
        }
    }

    /// Takes the group's and others' bits off an existing file; a file that is not there is left so.
    pub(super) fn tighten(path: &Path) -> Result<(), BackendError> {
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(file_error(path, e)),
        };
        if mode & SHARED_BITS == 0 {
            return Ok(());
        }
        match std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7700)) {
            // A WAL or -shm the last connection of another process removed meanwhile.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other.map_err(|e| {
                file_error(
                    path,
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "it is readable by other users and its mode cannot be narrowed to 0600 ({e}); \
                             chmod it or point disk.path at a file of your own"
                        ),
                    ),
                )
            }),
        }
    }

    fn file_error(path: &Path, e: std::io::Error) -> BackendError {
        BackendError::Other(format!("disk cache {}: {e}", path.display()))
    }
}

/// Elsewhere there are no unix modes to set: the folder is created, and the platform's defaults apply.
#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    use super::BackendError;

    pub(super) fn folder(dir: &Path) -> Result<(), BackendError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BackendError::Other(format!("disk cache folder {}: {e}", dir.display())))
    }

    pub(super) fn database(_path: &Path) -> Result<(), BackendError> {
        Ok(())
    }

    pub(super) fn tighten(_path: &Path) -> Result<(), BackendError> {
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::{companion, secure};

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn a_sticky_shared_folder_is_left_alone_and_only_existing_companions_are_touched() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let path = shared.join("cache.sqlite3");
        secure(&path).expect("secure");
        assert_eq!(
            mode(&shared),
            0o1777,
            "a /tmp-like folder is not the cache's to close"
        );
        assert_eq!(mode(&path), 0o600);
        assert!(
            !companion(&path, "-wal").exists(),
            "no companion is made up"
        );
    }

    #[test]
    fn a_companion_is_named_by_suffix() {
        let path = std::path::Path::new("var/cache.sqlite3");
        assert_eq!(
            companion(path, "-wal"),
            std::path::Path::new("var/cache.sqlite3-wal")
        );
    }
}
