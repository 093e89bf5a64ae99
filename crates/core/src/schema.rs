//! The JSON schemas of every file format fugue reads or writes, generated from the types.
//!
//! `fugue schema --out schemas` writes them; the checked-in `schemas/` directory must equal
//! this output (a test fails on drift). The plan loader validates against [`plan_schema`].

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

use crate::plugin::PluginManifest;
use crate::state::{BoundariesFile, DependencyGraph, ParallelStatus, PoolState, ResourceLocks, WorkflowState};
use crate::{Plan, ReviewReport};

fn generate<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12().for_deserialize().into_generator().into_root_schema_for::<T>()
}

/// The plan file's schema.
pub fn plan_schema() -> Schema {
    generate::<Plan>()
}

/// Every schema with its file name under `schemas/`.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("plan.schema.json", generate::<Plan>()),
        ("plugin-manifest.schema.json", generate::<PluginManifest>()),
        ("review-report.schema.json", generate::<ReviewReport>()),
        ("workflow-state.schema.json", generate::<WorkflowState>()),
        ("parallel-status.schema.json", generate::<ParallelStatus>()),
        ("resource-locks.schema.json", generate::<ResourceLocks>()),
        ("dependency-graph.schema.json", generate::<DependencyGraph>()),
        ("boundaries.schema.json", generate::<BoundariesFile>()),
        ("pool-state.schema.json", generate::<PoolState>()),
    ]
}

/// Renders a schema the way it is checked in: pretty JSON with a trailing newline.
pub fn render(schema: &Schema) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}
