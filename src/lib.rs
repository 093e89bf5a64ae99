//! fugue runs many coding agents at once on one repository without letting them collide.
//!
//! This facade re-exports the workspace crates so an embedder needs one dependency:
//! `fugue::core` (model, traits), `fugue::planner`, `fugue::locks`, `fugue::worktrees`,
//! `fugue::agents`, `fugue::quality_gates` and `fugue::engine`.

pub use fugue_agents as agents;
pub use fugue_core as core;
pub use fugue_engine as engine;
pub use fugue_locks as locks;
pub use fugue_planner as planner;
pub use fugue_quality_gates as quality_gates;
pub use fugue_worktrees as worktrees;
