//! The cache file's permissions: its folder, the database and SQLite's `-wal`, `-shm` and `-journal` files beside
//! it are the owner's alone, because they hold every tenant's values (issue 28, item 11).
//!
//! SQLite creates the main database with `0644` less the umask, but each companion file with exactly the
//! database's own mode (`findCreateFileMode` and `robust_open` for the WAL and journal, the `fstat` of the
//! database in `unixOpenSharedMemory` for the `-shm`, all in the bundled `sqlite3.c`). So `create` makes the
//! folder `0700` and the database `0600` before SQLite ever opens it, and the companions follow. What earlier
//! versions left readable by others is narrowed by `narrow` once the file is known to be a fernando-cache file
//! (never another application's database that `disk.path` points at by mistake); a companion that already
//! existed keeps its mode in SQLite, so it is narrowed too.

use std::path::Path;

use super::BackendError;

/// The folder's mode when it is created: owner only.
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

/// Before SQLite opens `path`: creates its missing folders owner-only (`0700`) and the database file `0600` when
/// it does not exist. An existing folder or file is left as it is (see `narrow`).
///
/// # Errors
/// [`BackendError::Other`] naming the folder or the file that cannot be created.
pub(super) fn create(path: &Path) -> Result<(), BackendError> {
    if let Some(dir) = folder(path) {
        imp::create_folder(dir)?;
    }
    imp::create_database(path)
}

/// Once the file at `path` is known to be ours: takes the group's and others' access away from the database,
/// its companions and its folder, where an earlier version left it.
///
/// A bare file name (`cache.sqlite3`) lives in the working folder, which is not the cache's to close; neither is
/// a shared folder with the sticky bit such as `/tmp`, nor one the process does not own (the OS refuses, and a
/// warning says so). The files' own modes protect the values in each of those cases.
///
/// # Errors
/// [`BackendError::Other`] naming a file that is readable by others and cannot be narrowed (another user's).
pub(super) fn narrow(path: &Path) -> Result<(), BackendError> {
    imp::narrow_file(path)?;
    for suffix in COMPANIONS {
        imp::narrow_file(&companion(path, suffix))?;
    }
    if let Some(dir) = folder(path) {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
        imp::narrow_folder(dir, file.as_deref().unwrap_or("cache.sqlite3"));
    }
    Ok(())
}

/// The folder `disk.path` names, if it names one (a bare file name lives in the working folder).
fn folder(path: &Path) -> Option<&Path> {
    path.parent().filter(|d| !d.as_os_str().is_empty())
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

    /// Creates the folder and any missing parent, owner-only.
    pub(super) fn create_folder(dir: &Path) -> Result<(), BackendError> {
        DirBuilder::new()
            .recursive(true)
            .mode(FOLDER_MODE)
            .create(dir)
            .map_err(|e| folder_error(dir, e))
    }

    /// Creates the database file `0600` when missing — exactly, whatever the umask — so that SQLite opens a
    /// file whose mode its companions copy. An empty file is an empty database to SQLite.
    pub(super) fn create_database(path: &Path) -> Result<(), BackendError> {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path);
        match created {
            Ok(file) => file
                .set_permissions(Permissions::from_mode(FILE_MODE))
                .map_err(|e| file_error(path, e)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(file_error(path, e)),
        }
    }

    /// Takes the group's and others' bits off an existing file; a file that is not there is left so.
    pub(super) fn narrow_file(path: &Path) -> Result<(), BackendError> {
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(file_error(path, e)),
        };
        if mode & SHARED_BITS == 0 {
            return Ok(());
        }
        match std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7700)) {
            Ok(()) => Ok(()),
            // A WAL or -shm that another process's last connection removed meanwhile.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_error(
                path,
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "it is readable by other users and cannot be narrowed to 0600 ({e}); chmod it, \
                         or point disk.path at a file of your own"
                    ),
                ),
            )),
        }
    }

    /// Takes the group's and others' bits off the folder, unless it is a shared sticky folder or not ours.
    pub(super) fn narrow_folder(dir: &Path, file: &str) {
        let mode = match std::fs::metadata(dir) {
            Ok(meta) => meta.permissions().mode(),
            Err(_) => return,
        };
        if mode & SHARED_BITS == 0 || mode & STICKY != 0 {
            return;
        }
        // A folder that holds anything but this program's files (`--data-dir /var/lib`, a project folder) is
        // not ours to close: other programs may need it open. Our files in it are 0600 all the same.
        let only_ours = std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().all(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(file) || name.starts_with("fernando-cache")
            })
        });
        if !only_ours {
            tracing::warn!(
                folder = %dir.display(),
                "the disk cache's folder is open to other users and holds other files, so it is left as it is; \
                 the cache's own files are 0600"
            );
            return;
        }
        if let Err(e) = std::fs::set_permissions(dir, Permissions::from_mode(mode & 0o7700)) {
            // Not ours (EPERM): the files are 0600, so the values stay private.
            tracing::warn!(
                folder = %dir.display(),
                "the disk cache's folder is open to other users and cannot be narrowed: {e}"
            );
        }
    }

    fn folder_error(dir: &Path, e: std::io::Error) -> BackendError {
        BackendError::Other(format!("disk cache folder {}: {e}", dir.display()))
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

    pub(super) fn create_folder(dir: &Path) -> Result<(), BackendError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BackendError::Other(format!("disk cache folder {}: {e}", dir.display())))
    }

    pub(super) fn create_database(_path: &Path) -> Result<(), BackendError> {
        Ok(())
    }

    pub(super) fn narrow_file(_path: &Path) -> Result<(), BackendError> {
        Ok(())
    }

    pub(super) fn narrow_folder(_dir: &Path, _file: &str) {}
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::{companion, create, narrow};

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    fn chmod(path: &std::path::Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_sticky_shared_folder_is_left_alone_and_no_companion_is_made_up() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        chmod(&shared, 0o1777);
        let path = shared.join("cache.sqlite3");
        create(&path).expect("create");
        narrow(&path).expect("narrow");
        assert_eq!(
            mode(&shared),
            0o1777,
            "a /tmp-like folder is not the cache's to close"
        );
        assert_eq!(mode(&path), 0o600);
        assert!(!companion(&path, "-wal").exists());
    }

    #[test]
    fn creating_leaves_an_existing_file_and_folder_as_they_are_until_narrowed() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let folder = dir.path().join("var");
        std::fs::create_dir(&folder).expect("mkdir");
        chmod(&folder, 0o755);
        let path = folder.join("cache.sqlite3");
        std::fs::write(&path, b"").expect("an earlier version's file");
        chmod(&path, 0o644);
        create(&path).expect("create");
        assert_eq!((mode(&folder), mode(&path)), (0o755, 0o644));
        narrow(&path).expect("narrow");
        assert_eq!((mode(&folder), mode(&path)), (0o700, 0o600));
    }

    #[test]
    fn a_folder_that_holds_other_files_is_not_closed() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let folder = dir.path().join("lib");
        std::fs::create_dir(&folder).expect("mkdir");
        chmod(&folder, 0o755);
        std::fs::write(folder.join("another-service.conf"), b"x").expect("someone else's file");
        let path = folder.join("cache.sqlite3");
        create(&path).expect("create");
        narrow(&path).expect("narrow");
        assert_eq!((mode(&folder), mode(&path)), (0o755, 0o600));
    }
}
