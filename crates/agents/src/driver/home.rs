//! Per-slot CLI homes: a config and session directory of its own for each worktree slot.
//!
//! Concurrent sessions of one CLI share its config file and session store, and some CLIs
//! corrupt them when several write at once (Claude Code's `~/.claude.json`,
//! anthropics/claude-code#28829; Codex's session restore, openai/codex#11435). A driver that
//! declares a [`HomeSpec`] gets `<sessions_dir>/<cli>/<slot>` as its config directory (the
//! variable the CLI reads, such as `CLAUDE_CONFIG_DIR` or `CODEX_HOME`). The slot's iterations
//! share it, so `--resume` finds the session it continues; other slots never touch it.
//!
//! The user's login must survive: credential files are symlinked to the user's own (one
//! source of truth, so a token the CLI refreshes is refreshed for everyone), and settings are
//! copied when the user's copy is newer (so a slot may write its own without racing).

use std::path::{Path, PathBuf};

use fugue_core::DriverKind;

/// Where a CLI keeps its state, and what a fresh per-slot copy needs from the user's.
#[derive(Debug, Clone)]
pub(crate) struct HomeSpec {
    /// The variable that names the directory.
    pub(crate) var: &'static str,
    /// The user's directory: the variable's value when set, else this under `$HOME`.
    pub(crate) default_dir: &'static str,
    /// Files symlinked to the user's (credentials).
    pub(crate) link: &'static [&'static str],
    /// Files copied from the user's when theirs is newer (settings).
    pub(crate) copy: &'static [&'static str],
    /// A file outside the user's directory, under `$HOME`, copied into the slot's directory
    /// under this name (Claude Code keeps `~/.claude.json` beside `~/.claude/`, and reads
    /// `$CLAUDE_CONFIG_DIR/.claude.json` instead when the variable is set).
    pub(crate) beside: Option<(&'static str, &'static str)>,
}

impl HomeSpec {
    pub(crate) fn claude() -> Self {
        Self {
            var: "CLAUDE_CONFIG_DIR",
            default_dir: ".claude",
            // The credentials stay where they are (see the Claude driver's
            // CLAUDE_SECURESTORAGE_CONFIG_DIR).
            link: &[],
            copy: &["settings.json"],
            beside: Some((".claude.json", ".claude.json")),
        }
    }

    /// A directory of the slot's own that the CLI does not look up by itself (aider's
    /// history files are named in its argv): nothing to seed.
    pub(crate) fn scratch(var: &'static str) -> Self {
        Self { var, default_dir: "", link: &[], copy: &[], beside: None }
    }

    pub(crate) fn codex() -> Self {
        Self { var: "CODEX_HOME", default_dir: ".codex", link: &["auth.json"], copy: &["config.toml"], beside: None }
    }

    /// The user's own directory for this CLI.
    pub(crate) fn user_dir(&self) -> Option<PathBuf> {
        match std::env::var_os(self.var) {
            Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
            _ => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(self.default_dir)),
        }
    }
}

/// Makes (or refreshes) the home of `slot` for `driver` under `root` and returns its path.
pub(crate) fn prepare(root: &Path, driver: DriverKind, slot: &str, spec: &HomeSpec) -> std::io::Result<PathBuf> {
    let dir = absolute(&root.join(driver.name()).join(slot))?;
    std::fs::create_dir_all(&dir)?;
    set_private(&dir)?;
    let user = if spec.link.is_empty() && spec.copy.is_empty() { None } else { spec.user_dir() };
    // Claude Code keeps `~/.claude.json` beside its directory.
    if let Some(user) = user.as_deref().filter(|u| *u != dir) {
        for name in spec.link {
            let (from, to) = (user.join(name), dir.join(name));
            if from.exists() && std::fs::read_link(&to).ok().as_deref() != Some(from.as_path()) {
                let _ = std::fs::remove_file(&to);
                std::os::unix::fs::symlink(&from, &to)?;
            }
        }
        for name in spec.copy {
            copy_if_newer(&user.join(name), &dir.join(name))?;
        }
    }
    if let Some((name, as_name)) = spec.beside
        && let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
    {
        copy_if_newer(&PathBuf::from(home).join(name), &dir.join(as_name))?;
    }
    Ok(dir)
}

fn copy_if_newer(from: &Path, to: &Path) -> std::io::Result<()> {
    let Ok(src) = std::fs::metadata(from) else { return Ok(()) };
    let newer = match std::fs::metadata(to) {
        Ok(dst) => match (src.modified(), dst.modified()) {
            (Ok(s), Ok(d)) => s > d,
            _ => false,
        },
        Err(_) => true,
    };
    if newer {
        std::fs::copy(from, to)?;
        set_private(to)?;
    }
    Ok(())
}

fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_a_slot_from_the_users_dir_and_keeps_the_login_shared() {
        let tmp = tempfile::tempdir().expect("temp");
        let user = tmp.path().join("user-codex");
        std::fs::create_dir_all(&user).expect("mkdir");
        std::fs::write(user.join("auth.json"), "{\"token\":1}").expect("write");
        std::fs::write(user.join("config.toml"), "model = \"x\"").expect("write");
        let spec = HomeSpec { var: "FUGUE_TEST_NO_SUCH_VAR_HOME", default_dir: "nope", ..HomeSpec::codex() };
        // The user's dir comes from the variable; point it at ours by hand.
        let dir = {
            let root = tmp.path().join("homes");
            let dir = root.join("codex").join("wt-1");
            std::fs::create_dir_all(&dir).expect("mkdir");
            for name in spec.link {
                std::os::unix::fs::symlink(user.join(name), dir.join(name)).expect("link");
            }
            copy_if_newer(&user.join("config.toml"), &dir.join("config.toml")).expect("copy");
            dir
        };
        assert_eq!(std::fs::read_link(dir.join("auth.json")).expect("link"), user.join("auth.json"));
        assert_eq!(std::fs::read_to_string(dir.join("config.toml")).expect("copy"), "model = \"x\"");
        // prepare() on a fresh root makes the dir, private.
        let made = prepare(&tmp.path().join("r"), DriverKind::Codex, "wt-2", &spec).expect("prepare");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&made).expect("meta").permissions().mode() & 0o777, 0o700);
        assert!(made.is_absolute() && made.ends_with("codex/wt-2"));
    }
}
