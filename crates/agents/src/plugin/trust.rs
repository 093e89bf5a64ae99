//! Whether a plugin library may be loaded at all: nobody but its owner can change it.
//!
//! Loading a library runs its code inside fugue, with fugue's rights over the repository and
//! every agent's environment. So before `dlopen`, the library's canonical file must not be
//! writable by its group or by others, and neither may the directory holding it — unless
//! that directory has the sticky bit (like `/tmp`), which stops others from replacing a file
//! they do not own. The check reads the mode bits rather than asking `access(2)`: fugue often
//! runs as root (in containers, in CI), for whom `access` says yes to everything.
//!
//! The check is on the canonical path, the file `dlopen` is handed; since its directory is
//! not writable by others either, nobody else can swap the file between the check and the
//! load. Ownership is not checked: a library installed by another trusted account (root, a
//! build user) is normal.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::PluginError;

/// Group- and other-write bits.
const GO_WRITE: u32 = 0o022;
/// The sticky bit.
const STICKY: u32 = 0o1000;

/// Refuses `library` (a canonical path) when it or its directory is writable by group or
/// others.
pub(super) fn check_trusted(library: &Path) -> Result<(), PluginError> {
    let untrusted = |path: &Path, mode: u32, directory: bool| PluginError::Untrusted {
        plugin: library.to_owned(),
        path: path.to_owned(),
        mode,
        directory,
    };
    let mode = mode_of(library)?;
    if mode & GO_WRITE != 0 {
        return Err(untrusted(library, mode, false));
    }
    if let Some(dir) = library.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mode = mode_of(dir)?;
        if mode & GO_WRITE != 0 && mode & STICKY == 0 {
            return Err(untrusted(dir, mode, true));
        }
    }
    Ok(())
}

fn mode_of(path: &Path) -> Result<u32, PluginError> {
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).map_err(|_| PluginError::Missing { path: path.to_owned() })
}

/// Who the write bits of `mode` let in, in words.
pub(super) fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and by others",
        (true, false) => "its group",
        _ => "others",
    }
}

/// `path` quoted for a shell command line when it needs to be.
pub(super) fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn mode_bits_decide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = dir.path().join("libp.so");
        std::fs::write(&lib, b"x").expect("write");
        chmod(dir.path(), 0o755);
        for (mode, ok) in [(0o755, true), (0o644, true), (0o600, true), (0o775, false), (0o757, false), (0o666, false)] {
            chmod(&lib, mode);
            let result = check_trusted(&lib);
            assert_eq!(result.is_ok(), ok, "mode {mode:o}: {result:?}");
        }
        chmod(&lib, 0o755);
        chmod(dir.path(), 0o777);
        let err = check_trusted(&lib).expect_err("world-writable directory");
        assert!(matches!(&err, PluginError::Untrusted { directory: true, mode: 0o777, .. }), "{err:?}");
        chmod(dir.path(), 0o1777);
        assert!(check_trusted(&lib).is_ok(), "a sticky directory is fine");
        chmod(dir.path(), 0o700);
    }

    #[test]
    fn words_and_quoting() {
        assert_eq!(writers(0o666), "its group and by others");
        assert_eq!(writers(0o664), "its group");
        assert_eq!(writers(0o646), "others");
        assert_eq!(shell_quote(Path::new("/a/lib_x-1.so")), "/a/lib_x-1.so");
        assert_eq!(shell_quote(Path::new("/a b/it's.so")), r"'/a b/it'\''s.so'");
    }
}
