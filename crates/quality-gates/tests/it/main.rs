//! Integration tests of the quality gates and QA, with real processes and real git.

mod common;
mod gates;
mod plugin;
mod qa;
mod security;
