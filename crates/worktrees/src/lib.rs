//! The worktree pool and merge coordinator over the `git` CLI.
