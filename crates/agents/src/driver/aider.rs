//! aider (`aider-chat` on PyPI, checked with 0.86.2: by hand against a scripted endpoint, and
//! end to end through `fugue run` against the scripted Chat Completions API in the CLI tests,
//! `more_drivers`).
//!
//! Headless: `aider --message <prompt> --yes-always`, stdin empty, with fugue in charge of git
//! (`--no-auto-commits --no-dirty-commits --no-gitignore`: it would otherwise commit, or add
//! `.aider*` to `.gitignore`, a change outside the task's scope), nothing that calls home or
//! waits for a person (`--no-check-update --no-analytics --no-show-release-notes --no-pretty
//! --no-fancy-input`, `LITELLM_LOCAL_MODEL_COST_MAP`), `--no-stream` so its token counts are
//! the API's, no repo-map cache written into the worktree (`--map-tokens 0`; give a size in
//! `args` to have one), and its chat and input history kept out of the worktree, in the
//! slot's session directory. The model and its endpoint are aider's own settings: `model:
//! openai/<id>` with `OPENAI_API_BASE` and `OPENAI_API_KEY` in the agent's `env`, say; a
//! price comes from `--model-metadata-file` in `args` (or aider's `.aider.model.metadata.json`).
//!
//! Two things aider does by itself are headed off. With no git identity configured (a CI box,
//! a container) it writes `user.name`/`user.email` into the repository's config — the shared
//! `.git/config` of every worktree, so concurrent runs crash on its lock ("Lock for file
//! '…/.git/config' did already exist") — so the driver gives it an identity in
//! `GIT_CONFIG_*` variables (aider makes no commits here; fugue's own commits are unaffected).
//! And under `--yes-always` it answers yes to "Open documentation url?" (unknown model, missing
//! key): `BROWSER=true` keeps a headless run from opening a browser.
//!
//! Permissions: aider edits files by itself and has no tool permissions; `--yes-always` does
//! not run the shell commands it suggests, and `edit` stops it suggesting them; `read-only` is
//! `--dry-run`. It has no session to continue: feedback is a fresh run with the findings. Its
//! output is text: `Applied edit to <file>` lines, a `Tokens: … sent, … received. Cost: $…
//! message, $… session.` line per reply (the cost only when the model's price is known), and
//! API errors such as `litellm.BadRequestError: …`, after which it still exits 0 — read as a
//! failed iteration.

use fugue_core::{DriverAgentSpec, FailureKind, Permissions, Usage};

use super::home::HomeSpec;
use super::parse::{Parsed, StreamParser};
use super::{Cli, Invocation};

#[derive(Debug)]
pub(crate) struct Aider;

impl Cli for Aider {
    fn args(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<String> {
        let mut a: Vec<String> = [
            "--yes-always",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-check-update",
            "--no-analytics",
            "--no-show-release-notes",
            "--no-pretty",
            "--no-stream",
            "--no-fancy-input",
            "--no-gitignore",
            "--map-tokens",
            "0",
        ]
        .map(String::from)
        .to_vec();
        // Its default history files are in the repository root: a change QA would see.
        let history = |name: &str| inv.home.map_or_else(|| "/dev/null".to_owned(), |h| h.join(name).to_string_lossy().into_owned());
        a.extend([
            "--chat-history-file".to_owned(),
            history("chat-history.md"),
            "--input-history-file".to_owned(),
            history("input-history"),
        ]);
        if let Some(model) = &spec.model {
            a.extend(["--model".to_owned(), model.clone()]);
        }
        match inv.permissions {
            Permissions::Edit => a.push("--no-suggest-shell-commands".to_owned()),
            Permissions::ReadOnly => a.extend(["--dry-run".to_owned(), "--no-suggest-shell-commands".to_owned()]),
            Permissions::Bypass => {}
        }
        a.extend(spec.args.iter().cloned());
        a.extend(["--message".to_owned(), inv.prompt.to_owned()]);
        a
    }

    fn env(&self, spec: &DriverAgentSpec, _inv: &Invocation<'_>) -> Vec<(String, String)> {
        // Else litellm fetches a price list from GitHub at every start.
        let mut env = vec![("LITELLM_LOCAL_MODEL_COST_MAP".to_owned(), "True".to_owned())];
        let set = |var: &str| spec.env.contains_key(var) || std::env::var_os(var).is_some();
        if !set("BROWSER") {
            env.push(("BROWSER".to_owned(), "true".to_owned()));
        }
        // An identity aider finds with `git config --get`, so it does not write one into the
        // shared repository config (see the module docs).
        if !set("GIT_CONFIG_COUNT") {
            let var = |names: [&str; 2], default: &str| {
                names.iter().find_map(|n| spec.env.get(*n).cloned().or_else(|| std::env::var(n).ok())).unwrap_or_else(|| default.to_owned())
            };
            env.extend([
                ("GIT_CONFIG_COUNT".to_owned(), "2".to_owned()),
                ("GIT_CONFIG_KEY_0".to_owned(), "user.name".to_owned()),
                ("GIT_CONFIG_VALUE_0".to_owned(), var(["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"], "fugue agent")),
                ("GIT_CONFIG_KEY_1".to_owned(), "user.email".to_owned()),
                ("GIT_CONFIG_VALUE_1".to_owned(), var(["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"], "fugue@localhost")),
            ]);
        }
        env
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::new(AiderParser::default())
    }

    fn home(&self) -> Option<HomeSpec> {
        Some(HomeSpec::scratch("AIDER_FUGUE_HOME"))
    }

    fn state_paths(&self, home: Option<&std::path::Path>) -> Vec<std::path::PathBuf> {
        // Its per-slot history files, and `~/.aider` (version check cache, analytics, model
        // caches; checked with 0.86.2: confined without it, it prints "Error checking version:
        // [Errno 13] Permission denied: '~/.aider'" and carries on).
        home.map(std::path::Path::to_path_buf).into_iter().chain(super::in_home(".aider")).collect()
    }
}

#[derive(Debug, Default)]
struct AiderParser {
    parsed: Parsed,
    replies: u32,
    edits: Vec<String>,
    text: Vec<String>,
}

/// `1.2k` → 1200, `300` → 300.
fn count(word: &str) -> Option<u64> {
    let w = word.trim().trim_end_matches(',');
    let (num, mult) = match w.strip_suffix('k') {
        Some(n) => (n, 1000.0),
        None => match w.strip_suffix('M') {
            Some(n) => (n, 1_000_000.0),
            None => (w, 1.0),
        },
    };
    num.replace(',', "").parse::<f64>().ok().map(|n| (n * mult).round() as u64)
}

impl StreamParser for AiderParser {
    fn line(&mut self, line: &str) -> Option<String> {
        if let Some(rest) = line.strip_prefix("Tokens:") {
            // "Tokens: 2.3k sent, 1.1k cache write, 120 received. Cost: $0.01 message, $0.02 session."
            self.replies += 1;
            self.parsed.finished = true;
            let (tokens, cost) = rest.split_once("Cost:").unwrap_or((rest, ""));
            let mut u = Usage::default();
            for part in tokens.split(',').map(|p| p.trim().trim_end_matches('.')).filter(|p| !p.is_empty()) {
                let mut words = part.split_whitespace();
                let (Some(n), Some(what)) = (words.next().and_then(count), words.next()) else { continue };
                match what {
                    "sent" => u.input_tokens = Some(n),
                    "received" => u.output_tokens = Some(n),
                    "cache" => match words.next() {
                        Some("write") => u.cache_write_tokens = Some(n),
                        Some("hit") | Some("read") => u.cache_read_tokens = Some(n),
                        _ => {}
                    },
                    _ => {}
                }
            }
            if let Some(msg) = cost.split(',').next().and_then(|m| m.trim().strip_prefix('$')) {
                u.cost_usd = msg.split_whitespace().next().and_then(|n| n.parse().ok());
            }
            self.parsed.usage = self.parsed.usage.add(&u);
            return Some(format!("reply {}", self.replies));
        }
        if let Some(file) = line.strip_prefix("Applied edit to ") {
            self.edits.push(file.trim().to_owned());
            return Some(format!("edit: {}", file.trim()));
        }
        let lower = line.to_ascii_lowercase();
        if lower.contains("litellm.") && lower.contains("error") || lower.starts_with("error:") {
            self.parsed.error = Some((FailureKind::Api, format!("aider reported an error: {}", line.trim())));
            return Some("error".to_owned());
        }
        self.text.push(line.to_owned());
        None
    }

    fn usage_so_far(&self) -> Usage {
        self.parsed.usage
    }

    fn finish(self: Box<Self>) -> Parsed {
        let mut p = self.parsed;
        p.turns = (self.replies > 0).then_some(self.replies);
        let tail: Vec<String> = self.text.iter().rev().take(5).rev().cloned().collect();
        if !tail.is_empty() {
            p.final_message = Some(tail.join("\n"));
        }
        // An error means the reply it reports never came.
        if p.error.is_some() && self.edits.is_empty() {
            p.finished = true;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Parsed {
        super::super::parse::parse_fixture(Box::new(AiderParser::default()), name)
    }

    #[test]
    fn reads_real_aider_output() {
        let p = fixture("aider-edit-cost.txt");
        assert!(p.finished_ok(), "{p:?}");
        assert_eq!((p.usage.input_tokens, p.usage.output_tokens, p.usage.cost_usd), (Some(653), Some(20), Some(0.0023)));
        let p = fixture("aider-error.txt");
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::Api), "{p:?}");
    }

    #[test]
    fn aider_gets_a_git_identity_and_no_browser() {
        let mut spec = DriverAgentSpec::new(fugue_core::DriverKind::Aider);
        spec.env.insert("GIT_AUTHOR_NAME".to_owned(), "Ada".to_owned());
        let inv = Invocation {
            prompt: "p",
            resume: None,
            permissions: Permissions::Edit,
            verify: &[],
            home: None,
            budget_usd: None,
            confined: false,
        };
        let env = Aider.env(&spec, &inv);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!((get("GIT_CONFIG_KEY_0"), get("GIT_CONFIG_VALUE_0")), (Some("user.name"), Some("Ada")));
        assert_eq!(get("GIT_CONFIG_KEY_1"), Some("user.email"));
        assert_eq!(get("BROWSER"), Some("true"));
        // The plan's own setting wins.
        spec.env.insert("BROWSER".to_owned(), "firefox".to_owned());
        assert_eq!(Aider.env(&spec, &inv).iter().find(|(n, _)| n == "BROWSER"), None);
        let args = Aider.args(&spec, &inv);
        assert!(args.ends_with(&["--message".to_owned(), "p".to_owned()]), "{args:?}");
        assert!(args.contains(&"--no-gitignore".to_owned()) && args.contains(&"--no-auto-commits".to_owned()));
    }

    #[test]
    fn reads_tokens_and_cost_lines() {
        let mut p: Box<dyn StreamParser> = Box::new(AiderParser::default());
        p.line("Applied edit to hello.txt");
        p.line("Tokens: 2.3k sent, 1.1k cache write, 120 received. Cost: $0.01 message, $0.02 session.");
        let parsed = p.finish();
        assert!(parsed.finished_ok());
        assert_eq!(
            (parsed.usage.input_tokens, parsed.usage.cache_write_tokens, parsed.usage.output_tokens),
            (Some(2300), Some(1100), Some(120))
        );
        assert_eq!(parsed.usage.cost_usd, Some(0.01));
    }
}
