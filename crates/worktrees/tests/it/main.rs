//! Integration tests of the worktree pool and merge coordinator: real git, temp repositories.

mod common;
mod disk;
mod health;
mod merge;
mod migrate;
mod pool;
mod processes;
