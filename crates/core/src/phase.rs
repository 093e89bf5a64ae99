//! The eight workflow phases and their scheduling policy.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether a phase runs its tasks one at a time or concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhasePolicy {
    /// One task at a time, in dependency then plan order.
    Serial,
    /// Ready tasks run concurrently up to `max_agents`.
    Parallel,
}

/// A workflow phase. The declaration order is the execution order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Foundation: contracts, common types, error hierarchy.
    Architecture,
    /// Shared test utilities.
    TestInfrastructure,
    /// What to test.
    TestSpecification,
    /// Writing the tests from the specs.
    TestImplementation,
    /// Coverage and pattern checks of the tests.
    TestValidation,
    /// Feature work.
    #[default]
    Implementation,
    /// Audits, performance, documentation.
    Analysis,
    /// Final validation.
    Validation,
}

impl Phase {
    /// All phases in execution order.
    pub const ALL: [Phase; 8] = [
        Phase::Architecture,
        Phase::TestInfrastructure,
        Phase::TestSpecification,
        Phase::TestImplementation,
        Phase::TestValidation,
        Phase::Implementation,
        Phase::Analysis,
        Phase::Validation,
    ];

    /// The phase's scheduling policy.
    pub fn policy(self) -> PhasePolicy {
        match self {
            Phase::Architecture | Phase::TestInfrastructure | Phase::TestSpecification | Phase::TestValidation => PhasePolicy::Serial,
            Phase::TestImplementation | Phase::Implementation | Phase::Analysis | Phase::Validation => PhasePolicy::Parallel,
        }
    }

    /// True for a phase whose tasks may run concurrently.
    pub fn is_parallel(self) -> bool {
        self.policy() == PhasePolicy::Parallel
    }

    /// 1-based position in the workflow.
    pub fn order(self) -> usize {
        self as usize + 1
    }

    /// The kebab-case name used in plans and state files.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Architecture => "architecture",
            Phase::TestInfrastructure => "test-infrastructure",
            Phase::TestSpecification => "test-specification",
            Phase::TestImplementation => "test-implementation",
            Phase::TestValidation => "test-validation",
            Phase::Implementation => "implementation",
            Phase::Analysis => "analysis",
            Phase::Validation => "validation",
        }
    }

    /// Parses a kebab-case phase name.
    pub fn from_name(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_follow_design() {
        let serial: Vec<_> = Phase::ALL.into_iter().filter(|p| !p.is_parallel()).map(Phase::as_str).collect();
        assert_eq!(serial, ["architecture", "test-infrastructure", "test-specification", "test-validation"]);
        assert_eq!(Phase::default(), Phase::Implementation);
        assert_eq!(Phase::Validation.order(), 8);
        for p in Phase::ALL {
            assert_eq!(Phase::from_name(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).ok(), Some(serde_json::Value::from(p.as_str())));
        }
    }
}
