//! End-to-end tests of the engine: real git repositories, real processes, scripted agents.

mod runs;
mod support;
