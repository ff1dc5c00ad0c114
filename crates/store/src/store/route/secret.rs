//! An `acl` tenant's Redis password, read where its plan says (design 0023): an environment variable, or a file
//! read bounded, its trailing newline dropped, and refused while every user of the machine may read it. Read here,
//! in the store, when the tenant's connections are opened — never by the settings, which only name the source.
//! Errors name the user and the source (the variable, the file), never what was found.

use std::io::Read;

use fernando_cache_config::SecretSource;

/// The longest password read, in bytes (Redis accepts longer ones; no sane one is).
const MAX_LEN: u64 = 4096;

/// A password, wiped from memory when dropped where the build can (the `seal` feature brings `zeroize`).
pub(crate) struct Password(String);

impl Password {
    /// Holds `text` as a password (wiped when dropped).
    pub(crate) fn new(text: String) -> Password {
        Password(text)
    }

    /// The password, to hand to the Redis client (which keeps its own copy): never to a log.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        #[cfg(feature = "seal")]
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Why a password could not be read: where it was looked for, never what was there.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// The variable is not set, or not UTF-8.
    #[error(
        "the password of Redis user {user:?} is read from the environment variable {var}, which is not set (or not UTF-8)"
    )]
    Unset { user: String, var: String },
    /// The file cannot be opened or read.
    #[error(
        "the password of Redis user {user:?} is read from the file {path}, which cannot be read"
    )]
    Unreadable {
        user: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Anyone on the machine may read the file.
    #[error(
        "the password file {path} of Redis user {user:?} is readable by every user of the machine (chmod 600 it)"
    )]
    WorldReadable { user: String, path: String },
    /// Empty (after its trailing newline), or longer than [`MAX_LEN`], or not UTF-8.
    #[error("the password of Redis user {user:?} in {source_name} is {what}")]
    Unusable {
        user: String,
        source_name: String,
        what: &'static str,
    },
    /// A source this build does not know how to read.
    #[error("the password source of Redis user {user:?} is not one this build reads")]
    UnknownSource { user: String },
}

/// Reads the password of Redis user `user` from `source`.
///
/// # Errors
/// [`SecretError`] naming the source that is missing, unreadable, readable by everyone, empty or too long.
pub(crate) fn read(user: &str, source: &SecretSource) -> Result<Password, SecretError> {
    let who = || user.to_owned();
    let text = match source {
        SecretSource::Env(var) => std::env::var(var).map_err(|_| SecretError::Unset {
            user: who(),
            var: var.clone(),
        })?,
        SecretSource::File(path) => {
            let shown = || path.display().to_string();
            let unreadable = |source| SecretError::Unreadable {
                user: who(),
                path: shown(),
                source,
            };
            let file = std::fs::File::open(path).map_err(unreadable)?;
            if world_readable(&file).map_err(unreadable)? {
                return Err(SecretError::WorldReadable {
                    user: who(),
                    path: shown(),
                });
            }
            let mut bytes = Vec::new();
            file.take(MAX_LEN + 1)
                .read_to_end(&mut bytes)
                .map_err(unreadable)?;
            if bytes.len() as u64 > MAX_LEN {
                return Err(SecretError::Unusable {
                    user: who(),
                    source_name: shown(),
                    what: "longer than 4096 bytes",
                });
            }
            String::from_utf8(bytes).map_err(|_| SecretError::Unusable {
                user: who(),
                source_name: shown(),
                what: "not UTF-8",
            })?
        }
        _ => return Err(SecretError::UnknownSource { user: who() }),
    };
    let name = || match source {
        SecretSource::Env(var) => format!("the environment variable {var}"),
        SecretSource::File(path) => path.display().to_string(),
        _ => "its source".to_owned(),
    };
    let mut text = Password::new(text);
    // One trailing newline (`echo secret > file`), as written by hand or by a secret store's mount.
    if text.0.ends_with('\n') {
        text.0.pop();
        if text.0.ends_with('\r') {
            text.0.pop();
        }
    }
    if text.0.is_empty() {
        return Err(SecretError::Unusable {
            user: who(),
            source_name: name(),
            what: "empty",
        });
    }
    if text.0.len() as u64 > MAX_LEN {
        return Err(SecretError::Unusable {
            user: who(),
            source_name: name(),
            what: "longer than 4096 bytes",
        });
    }
    Ok(text)
}

/// Whether every user of the machine may read the file (always `false` where permissions are not Unix ones).
fn world_readable(file: &std::fs::File) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(file.metadata()?.permissions().mode() & 0o004 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn file_with(dir: &tempfile::TempDir, name: &str, text: &[u8], mode: u32) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    #[test]
    fn a_file_is_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            (&b"s3cret\n"[..], "s3cret"),
            (&b"s3cret\r\n"[..], "s3cret"),
            (&b"s3cret"[..], "s3cret"),
            (&b"two\nlines\n"[..], "two\nlines"),
        ] {
            let path = file_with(&dir, "pw", text, 0o600);
            let read = read("u", &SecretSource::File(path)).unwrap();
            assert_eq!(read.expose(), want);
        }
    }

    #[test]
    fn errors_name_the_source_and_never_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here");
        let err = read("fernando-acme", &SecretSource::File(missing.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nothing-here") && err.contains("fernando-acme"),
            "{err}"
        );

        let var = "FERNANDO_CACHE_TEST_SECRET_NEVER_SET_31";
        let err = read("u", &SecretSource::Env(var.into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(var) && err.contains("not set"), "{err}");

        let empty = file_with(&dir, "empty", b"\n", 0o600);
        let err = read("u", &SecretSource::File(empty))
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");

        let long = file_with(&dir, "long", &[b'x'; 5000], 0o600);
        let err = read("u", &SecretSource::File(long))
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer") && !err.contains("xxx"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_everyone_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = file_with(&dir, "open", b"hunter2\n", 0o644);
        let err = read("u", &SecretSource::File(open))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("hunter2"),
            "{err}"
        );
        let group = file_with(&dir, "group", b"hunter2\n", 0o640);
        assert!(read("u", &SecretSource::File(group)).is_ok());
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        assert_eq!(format!("{:?}", Password("hunter2".into())), "Password(***)");
    }
}
