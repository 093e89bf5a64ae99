//! Ready-made command agents for the common coding-agent CLIs.
//!
//! A preset is only an argv template (the CLIs need not be installed for fugue to build or
//! check a plan); `fugue init` offers them and the README lists them. Each runs the tool
//! non-interactively with the task's prompt as an argument, in the task's worktree.

use fugue_core::{CommandAgentSpec, PromptInput};

/// A named argv template for a coding-agent CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Preset {
    /// The key to use in a plan's `agents` (`claude`, `codex`, …).
    pub name: &'static str,
    /// The tool's name for people.
    pub title: &'static str,
    /// The argv template.
    pub command: &'static [&'static str],
    /// How the prompt is passed besides the argv.
    pub prompt_via: PromptInput,
    /// One line on the tool and how the preset drives it.
    pub description: &'static str,
}

impl Preset {
    /// The plan's agent spec for this preset (no timeout, no extra environment).
    pub fn spec(&self) -> CommandAgentSpec {
        CommandAgentSpec {
            command: self.command.iter().map(|w| (*w).to_owned()).collect(),
            timeout: None,
            env: Default::default(),
            prompt_via: self.prompt_via,
        }
    }
}

const PRESETS: &[Preset] = &[
    Preset {
        name: "claude",
        title: "Claude Code",
        command: &["claude", "-p", "{prompt}"],
        prompt_via: PromptInput::Args,
        description: "Anthropic's Claude Code in print (headless) mode; add e.g. `--permission-mode acceptEdits` so it may edit files unattended",
    },
    Preset {
        name: "codex",
        title: "Codex CLI",
        command: &["codex", "exec", "{prompt}"],
        prompt_via: PromptInput::Args,
        description: "OpenAI's Codex CLI, non-interactive `exec` mode",
    },
    Preset {
        name: "aider",
        title: "Aider",
        command: &["aider", "--yes", "--message", "{prompt}"],
        prompt_via: PromptInput::Args,
        description: "Aider with one message, answering yes to its confirmations",
    },
    Preset {
        name: "gemini",
        title: "Gemini CLI",
        command: &["gemini", "-p", "{prompt}"],
        prompt_via: PromptInput::Args,
        description: "Google's Gemini CLI in non-interactive prompt mode",
    },
];

/// Every preset, in the order `fugue init` offers them.
pub fn presets() -> &'static [Preset] {
    PRESETS
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_argv_with_the_prompt_placeholder() {
        assert_eq!(presets().len(), 4);
        for p in presets() {
            assert!(p.command.contains(&"{prompt}"), "{}", p.name);
            assert_eq!(p.spec().command.len(), p.command.len());
            // The spec round-trips through the plan's schema types.
            let json = serde_json::to_value(p.spec()).expect("serialises");
            let back: CommandAgentSpec = serde_json::from_value(json).expect("deserialises");
            assert_eq!(back, p.spec());
        }
        assert_eq!(preset("claude").map(|p| p.command), Some(["claude", "-p", "{prompt}"].as_slice()));
        assert_eq!(preset("aider").map(|p| p.command), Some(["aider", "--yes", "--message", "{prompt}"].as_slice()));
        assert!(preset("nope").is_none());
    }
}
