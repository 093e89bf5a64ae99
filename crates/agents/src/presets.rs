//! Ready-made agents for the common coding-agent CLIs.
//!
//! A preset is a driver agent with every setting at its default (the CLIs need not be
//! installed for fugue to build or check a plan): headless mode, machine-readable output, the
//! least permissions that work (edits in the worktree and the task's verify commands), QA
//! findings delivered by continuing the session. `fugue init` writes them and the README's
//! driver table lists what each supports.

use fugue_core::{AgentSpec, DriverAgentSpec, DriverKind, HumanDuration};

/// A named agent for a coding-agent CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Preset {
    /// The key to use in a plan's `agents` (`claude`, `codex`, …).
    pub name: &'static str,
    /// The tool's name for people.
    pub title: &'static str,
    /// The driver that runs it.
    pub driver: DriverKind,
    /// One line on the tool and how the driver runs it.
    pub description: &'static str,
}

impl Preset {
    /// The plan's agent spec for this preset, with `timeout`.
    pub fn spec(&self, timeout: Option<HumanDuration>) -> AgentSpec {
        let mut spec = DriverAgentSpec::new(self.driver);
        spec.timeout = timeout;
        AgentSpec::Driver(spec)
    }
}

const PRESETS: &[Preset] = &[
    Preset {
        name: "claude",
        title: "Claude Code",
        driver: DriverKind::Claude,
        description: "`claude -p --output-format stream-json --verbose --permission-mode acceptEdits`, verify commands allowed, `--resume` for feedback",
    },
    Preset {
        name: "codex",
        title: "Codex CLI",
        driver: DriverKind::Codex,
        description: "`codex exec --json` in the workspace-write sandbox, `codex exec resume` for feedback",
    },
    Preset {
        name: "gemini",
        title: "Gemini CLI",
        driver: DriverKind::Gemini,
        description: "`gemini -p --output-format stream-json --approval-mode auto_edit`, `--resume` for feedback",
    },
    Preset {
        name: "aider",
        title: "Aider",
        driver: DriverKind::Aider,
        description: "`aider --message --yes-always` without its own commits, feedback in a fresh run",
    },
    Preset {
        name: "opencode",
        title: "opencode",
        driver: DriverKind::Opencode,
        description: "`opencode run --format json` with edit and verify-command permissions, `--session` for feedback",
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
    fn every_driver_has_a_preset_that_round_trips() {
        assert_eq!(presets().len(), DriverKind::ALL.len());
        for kind in DriverKind::ALL {
            let p = presets().iter().find(|p| p.driver == kind).expect("a preset per driver");
            assert_eq!(p.name, kind.name());
            let json = serde_json::to_value(p.spec(None)).expect("serialises");
            assert_eq!(
                json,
                serde_json::json!({ "driver": kind.name(), "permissions": "edit", "feedback": "continue", "isolate_sessions": true })
            );
            let back: AgentSpec = serde_json::from_value(json).expect("deserialises");
            assert_eq!(back, p.spec(None));
        }
        assert!(preset("nope").is_none());
    }
}
