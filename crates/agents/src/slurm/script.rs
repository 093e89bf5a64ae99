//! The job script: a [`ProcessSpec`] turned into a POSIX `sh` script a batch scheduler can run.
//!
//! The spec's argv must reach the program word for word, whatever it holds — prompts are full
//! of `$(…)`, backticks, quotes and newlines. Every word, path and value is therefore written
//! in single quotes, where `sh` interprets nothing, with each `'` spelled `'\''`; only the
//! script's own fixed lines use the shell. Environment names are checked to be identifiers,
//! since they cannot be quoted.
//!
//! The script `cd`s to the spec's directory, exports the spec's variables, checks the program
//! can be found (so that "not found" comes back as such, not as exit 127), feeds stdin from a
//! file in the job's directory and, as its last act, records how the program ended in a
//! `status` file (written to a temporary name and renamed, so it is whole or absent). The
//! scheduler forgets finished jobs (after `MinJobAge`, or at once without accounting); the
//! status file does not. A program killed by a signal shows up as `128 + signal`, as the
//! shell reports it; codes above 128 are read back that way.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use fugue_core::ProcessSpec;

/// The status file's name in a job directory.
pub(crate) const STATUS: &str = "status";
/// The combined stdout/stderr file's name.
pub(crate) const OUTPUT: &str = "out";
/// The stdin file's name.
pub(crate) const STDIN: &str = "stdin";
/// The script's name.
pub(crate) const SCRIPT: &str = "job.sh";

/// `word` quoted for `sh`: literal whatever it holds.
pub(crate) fn quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why a spec cannot become a job script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScriptError {
    EmptyArgv,
    Nul(String),
    EnvName(String),
    Path(String),
    /// The spec asks for confinement and there is no `fugue` binary to apply it on the node.
    NoConfineHelper,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyArgv => write!(f, "the argv is empty: give at least the program"),
            Self::Nul(what) => write!(f, "{what} contains a NUL byte, which no process argument or variable can hold"),
            Self::EnvName(name) => write!(f, "environment variable name `{name}` is not a shell identifier (letters, digits, `_`)"),
            Self::Path(path) => write!(f, "path {path} is not valid UTF-8; a job script is text"),
            Self::NoConfineHelper => write!(
                f,
                "the agent must run confined and this process is not the `fugue` binary that applies the ruleset on the node (`fugue confine-exec`): set FUGUE_CONFINE_HELPER to its path on shared storage, or `confine: off`"
            ),
        }
    }
}

fn text<'a>(s: &'a str, what: &str) -> Result<&'a str, ScriptError> {
    if s.contains('\0') { Err(ScriptError::Nul(what.to_owned())) } else { Ok(s) }
}

fn path_text<'a>(p: &'a Path, what: &str) -> Result<&'a str, ScriptError> {
    text(p.to_str().ok_or_else(|| ScriptError::Path(p.display().to_string()))?, what)
}

/// The job script for `spec`, run from `job_dir` (absolute; on storage the node can reach). A
/// spec with a confinement runs its program through `helper confine-exec` (the `fugue` binary,
/// on storage the node reaches), which applies the same Landlock ruleset on the node and then
/// execs the program; the script's own lines (the status file) stay outside it.
pub(crate) fn job_script(spec: &ProcessSpec, job_dir: &Path, helper: Option<&Path>) -> Result<String, ScriptError> {
    let (program, _) = spec.argv.split_first().ok_or(ScriptError::EmptyArgv)?;
    let dir = quote(path_text(job_dir, "the job directory")?);
    let cwd = quote(path_text(&spec.cwd, "the working directory")?);
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    let label: String = spec.label.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let _ = writeln!(s, "# fugue job for `{label}`; generated, do not edit.");
    let _ = writeln!(s, "fugue_dir={dir}");
    s.push_str(
        "fugue_end() { printf '%s\\n' \"$1\" > \"$fugue_dir/status.tmp\" && mv -f \"$fugue_dir/status.tmp\" \"$fugue_dir/status\"; }\n",
    );
    let _ = writeln!(
        s,
        "cd {cwd} 2>/dev/null || {{ echo \"fugue: the working directory \"{cwd}\" is not a directory on $(hostname)\" >&2; fugue_end 'spawn NotADirectory'; exit 126; }}"
    );
    // As locally: the job's git works on its checkout, whatever the submitting shell had set.
    let _ = writeln!(s, "unset {}", fugue_core::git::SCRUBBED_ENV.join(" "));
    for (name, value) in &spec.env {
        if !is_identifier(name) {
            return Err(ScriptError::EnvName(name.clone()));
        }
        let _ = writeln!(s, "export {name}={}", quote(text(value, &format!("variable {name}"))?));
    }
    let prog = quote(text(program, "the program")?);
    if program.contains('/') {
        let _ = writeln!(s, "[ -e {prog} ] || {{ echo \"fugue: \"{prog}\" does not exist\" >&2; fugue_end 'spawn NotFound'; exit 127; }}");
        let _ = writeln!(
            s,
            "[ -x {prog} ] && [ ! -d {prog} ] || {{ echo \"fugue: \"{prog}\" is not executable\" >&2; fugue_end 'spawn PermissionDenied'; exit 126; }}"
        );
    } else {
        let _ = writeln!(
            s,
            "command -v {prog} >/dev/null 2>&1 || {{ echo \"fugue: program \"{prog}\" was not found on PATH on $(hostname)\" >&2; fugue_end 'spawn NotFound'; exit 127; }}"
        );
    }
    let stdin = if spec.stdin.is_some() { format!("\"$fugue_dir/{STDIN}\"") } else { "/dev/null".to_owned() };
    let mut words = Vec::with_capacity(spec.argv.len());
    if let Some(confine) = &spec.confine {
        let helper = quote(path_text(helper.ok_or(ScriptError::NoConfineHelper)?, "the confinement helper")?);
        let _ = writeln!(
            s,
            "[ -x {helper} ] || {{ echo \"fugue: cannot confine the agent on $(hostname): \"{helper}\" is not there; it must be on storage every node reaches\" >&2; fugue_end 'spawn Unsupported'; exit 126; }}"
        );
        words.push(helper);
        words.push("confine-exec".to_owned());
        if confine.strict {
            words.push("--strict".to_owned());
        }
        for path in &confine.write {
            words.push("--write".to_owned());
            words.push(quote(path_text(path, "a path the agent may write")?));
        }
        words.push("--".to_owned());
    }
    for (i, word) in spec.argv.iter().enumerate() {
        words.push(quote(text(word, &format!("argument {i}"))?));
    }
    let _ = writeln!(s, "{} < {stdin}", words.join(" "));
    s.push_str("fugue_end \"exit $?\"\n");
    Ok(s)
}

/// How the job's program ended, from its status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Exited(i32),
    Signalled(i32),
    /// The program could not be started.
    Spawn(ErrorKind),
}

/// Reads a status file's text; `None` when it is not one fugue wrote.
pub(crate) fn parse_status(text: &str) -> Option<Status> {
    let line = text.lines().next()?.trim();
    let (word, rest) = line.split_once(' ')?;
    match word {
        "exit" => {
            let code: i32 = rest.trim().parse().ok()?;
            // The shell reports a death by signal N as 128 + N.
            Some(if (129..=128 + 64).contains(&code) { Status::Signalled(code - 128) } else { Status::Exited(code) })
        }
        "spawn" => Some(Status::Spawn(match rest.trim() {
            "NotFound" => ErrorKind::NotFound,
            "PermissionDenied" => ErrorKind::PermissionDenied,
            "NotADirectory" => ErrorKind::NotADirectory,
            "Unsupported" => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        })),
        _ => None,
    }
}

/// The Slurm time limit (whole minutes) for a run that fugue stops after `timeout`: rounded
/// up, plus the grace period, plus one minute, so that fugue's own exact timeout always fires
/// first and Slurm's limit only catches jobs whose orchestrator is gone.
pub(crate) fn time_limit_minutes(timeout: Duration, grace: Duration) -> u32 {
    let ms = timeout.saturating_add(grace).as_millis();
    u32::try_from(ms.div_ceil(60_000) + 1).unwrap_or(u32::MAX)
}

/// A job name from a label: printable, at most 100 characters.
pub(crate) fn job_name(label: &str) -> String {
    let name: String = label.chars().filter(|c| !c.is_control()).take(100).collect();
    if name.trim().is_empty() { "fugue".to_owned() } else { name }
}

/// A directory-name-safe form of a label.
pub(crate) fn dir_stem(label: &str) -> String {
    let stem: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).take(40).collect();
    if stem.is_empty() || stem.starts_with('.') { format!("job{stem}") } else { stem }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::process::Command;

    use super::*;

    fn sh_echo(words: &[String]) -> Vec<u8> {
        let script = format!("printf '%s\\0' {}", words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "));
        Command::new("sh").arg("-c").arg(script).output().expect("run sh").stdout
    }

    #[test]
    fn quoting_keeps_shell_syntax_literal() {
        let words: Vec<String> = ["$(touch /tmp/fugue-pwned)", "`id`", "it's", "\"q\"", "a\nb", "$HOME", "*", "", "\\", "'"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = sh_echo(&words);
        let back: Vec<String> = out.split(|b| *b == 0).filter(|_| true).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        assert_eq!(&back[..words.len()], &words[..]);
        assert!(!Path::new("/tmp/fugue-pwned").exists());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any word without NUL survives `sh` unchanged.
        #[test]
        fn any_word_round_trips(word in "[^\\x00]{0,40}") {
            let out = sh_echo(std::slice::from_ref(&word));
            proptest::prop_assert_eq!(out, [word.as_bytes(), b"\0"].concat());
        }
    }

    fn spec(argv: &[&str], cwd: &Path) -> ProcessSpec {
        ProcessSpec::new("t1", argv.iter().map(|s| s.to_string()).collect(), cwd)
    }

    /// Runs a generated script with `sh`, as slurmd would; returns (output, status text).
    fn run(spec: &ProcessSpec, dir: &Path) -> (String, String) {
        let script = job_script(spec, dir, None).expect("script");
        std::fs::write(dir.join(SCRIPT), &script).expect("write script");
        if let Some(stdin) = &spec.stdin {
            std::fs::write(dir.join(STDIN), stdin).expect("write stdin");
        }
        let out = Command::new("sh").arg(dir.join(SCRIPT)).current_dir(dir).output().expect("run");
        let status = std::fs::read_to_string(dir.join(STATUS)).unwrap_or_default();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (text, status)
    }

    #[test]
    fn script_runs_argv_literally_with_env_and_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = tempfile::tempdir().expect("tempdir");
        let prompt = "fix $(rm -rf /) and `id`; it's \"done\"\n$HOME";
        let mut s = spec(&["sh", "-c", "printf '%s|' \"$1\" \"$PWD\" \"$FUGUE_X\"; cat", "sh", prompt], work.path());
        s.env = BTreeMap::from([("FUGUE_X".to_owned(), "v'$(x)".to_owned())]);
        s.stdin = Some(b"from stdin".to_vec());
        let (out, status) = run(&s, dir.path());
        let cwd = work.path().canonicalize().expect("canon");
        assert_eq!(out, format!("{prompt}|{}|v'$(x)|from stdin", cwd.display()));
        assert_eq!(parse_status(&status), Some(Status::Exited(0)));
    }

    #[test]
    fn script_records_exit_codes_signals_and_spawn_failures() {
        let work = tempfile::tempdir().expect("tempdir");
        let cases: [(&[&str], Status); 5] = [
            (&["sh", "-c", "exit 3"], Status::Exited(3)),
            (&["sh", "-c", "kill -SEGV $$"], Status::Signalled(11)),
            (&["no-such-program-fugue"], Status::Spawn(ErrorKind::NotFound)),
            (&["./missing"], Status::Spawn(ErrorKind::NotFound)),
            (&["/tmp"], Status::Spawn(ErrorKind::PermissionDenied)),
        ];
        for (argv, want) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let (out, status) = run(&spec(argv, work.path()), dir.path());
            assert_eq!(parse_status(&status), Some(want), "{argv:?}: {out}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (out, status) = run(&spec(&["true"], &work.path().join("gone")), dir.path());
        assert_eq!(parse_status(&status), Some(Status::Spawn(ErrorKind::NotADirectory)));
        assert!(out.contains("is not a directory"), "{out}");
    }

    #[test]
    fn rejects_what_a_script_cannot_carry() {
        let dir = Path::new("/jobs/x");
        assert_eq!(job_script(&spec(&[], dir), dir, None), Err(ScriptError::EmptyArgv));
        let mut s = spec(&["a"], dir);
        s.env.insert("NOT-AN-ID".to_owned(), "v".to_owned());
        assert_eq!(job_script(&s, dir, None), Err(ScriptError::EnvName("NOT-AN-ID".to_owned())));
        assert!(matches!(job_script(&spec(&["a", "x\0y"], dir), dir, None), Err(ScriptError::Nul(_))));
    }

    #[test]
    fn a_confined_spec_runs_through_the_helper_or_is_refused() {
        let dir = Path::new("/jobs/x");
        let mut s = spec(&["claude", "-p", "it's"], Path::new("/w"));
        s.confine = Some(fugue_core::Confinement::new(vec!["/w".into(), "/t m'p".into()], true));
        assert_eq!(job_script(&s, dir, None), Err(ScriptError::NoConfineHelper));
        let text = job_script(&s, dir, Some(Path::new("/opt/fugue"))).expect("script");
        assert!(
            text.contains("'/opt/fugue' confine-exec --strict --write '/w' --write '/t m'\\''p' -- 'claude' '-p' 'it'\\''s' < /dev/null"),
            "{text}"
        );
        assert!(text.contains("[ -x '/opt/fugue' ] ||"), "{text}");
    }

    #[test]
    fn status_parsing() {
        assert_eq!(parse_status("exit 0\n"), Some(Status::Exited(0)));
        assert_eq!(parse_status("exit 137\n"), Some(Status::Signalled(9)));
        assert_eq!(parse_status("exit 255"), Some(Status::Exited(255)));
        assert_eq!(parse_status("spawn NotFound\n"), Some(Status::Spawn(ErrorKind::NotFound)));
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("exit x"), None);
        assert_eq!(parse_status("garbage"), None);
    }

    #[test]
    fn time_limits_round_up_and_leave_room() {
        let s = Duration::from_secs;
        assert_eq!(time_limit_minutes(s(1), s(2)), 2);
        assert_eq!(time_limit_minutes(s(58), s(2)), 2);
        assert_eq!(time_limit_minutes(s(59), s(2)), 3);
        assert_eq!(time_limit_minutes(s(30 * 60), s(5)), 32);
        assert_eq!(time_limit_minutes(Duration::MAX, s(5)), u32::MAX);
    }

    #[test]
    fn names_and_stems() {
        assert_eq!(job_name("t1"), "t1");
        assert_eq!(job_name("a\nb"), "ab");
        assert_eq!(job_name(""), "fugue");
        assert_eq!(dir_stem("feat/x y"), "feat_x_y");
        assert_eq!(dir_stem("..x"), "job..x");
        assert_eq!(dir_stem(""), "job");
    }
}
