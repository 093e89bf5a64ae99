//! fugue's orchestrator runtime: dispatcher, journal, state files, resume, validator, reports.
//!
//! This is the crate a custom orchestrator embeds. It re-exports the crates it is built on so
//! that one dependency gives access to the whole stack.

pub use fugue_agents as agents;
pub use fugue_core as core;
pub use fugue_locks as locks;
pub use fugue_planner as planner;
pub use fugue_quality_gates as quality_gates;
pub use fugue_worktrees as worktrees;
