//! Spending limits and prices: the plan's `budget` (the whole run), an agent's or a task's
//! `budget` (each task), and the `prices` table that gives a cost to the runs of CLIs that
//! report only tokens.
//!
//! A figure is counted where an agent reported it: tokens are every token figure added up
//! (input, output, cache reads and writes), dollars are the CLI's own cost or, where it gives
//! none, the tokens priced by the table for the agent's model. The engine enforces the limits
//! (see `fugue-engine`'s `budget` module); these types are the plan's model of them and the
//! arithmetic both sides share.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Usage;

/// A spending limit: US dollars and/or tokens. A limit left out is not enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// US dollars (the CLI's own cost, or its tokens priced by the plan's `prices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub usd: Option<f64>,
    /// Tokens: input, output, cache reads and cache writes added up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

impl Budget {
    /// True when neither limit is set.
    pub fn is_empty(&self) -> bool {
        self.usd.is_none() && self.tokens.is_none()
    }

    /// Each limit of `self`, or `other`'s where `self` has none.
    pub fn or(self, other: Budget) -> Budget {
        Budget { usd: self.usd.or(other.usd), tokens: self.tokens.or(other.tokens) }
    }

    /// The limit `spent` broke, as `"$0.5000"` or `"8000 tokens"`; `None` within the budget.
    /// A limit is reached when the spend equals it: the next step would go over.
    pub fn exceeded(&self, spent: Spend) -> Option<String> {
        if let Some(usd) = self.usd
            && spent.usd >= usd
        {
            return Some(format!("${usd:.4}"));
        }
        if let Some(tokens) = self.tokens
            && spent.tokens >= tokens
        {
            return Some(format!("{tokens} tokens"));
        }
        None
    }

    /// What is left of the budget after `spent` (each limit, never below zero).
    pub fn left(&self, spent: Spend) -> Budget {
        Budget { usd: self.usd.map(|u| (u - spent.usd).max(0.0)), tokens: self.tokens.map(|t| t.saturating_sub(spent.tokens)) }
    }

    /// `$0.5000 and 8000 tokens`.
    pub fn brief(&self) -> String {
        match (self.usd, self.tokens) {
            (Some(u), Some(t)) => format!("${u:.4} and {t} tokens"),
            (Some(u), None) => format!("${u:.4}"),
            (None, Some(t)) => format!("{t} tokens"),
            (None, None) => "no limit".to_owned(),
        }
    }
}

/// What running agents do when the run's budget is spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnExhausted {
    /// Stop them at once (their tasks go back to pending; `fugue resume` runs them again).
    #[default]
    Stop,
    /// Let them finish (each within its task budget, if it has one).
    Finish,
}

/// The budget of a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBudget {
    /// US dollars for the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub usd: Option<f64>,
    /// Tokens for the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// The budget of each task that has none of its own (nor its agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_task: Option<Budget>,
    /// When the run's budget is spent: `stop` the running agents (default) or let them `finish`.
    #[serde(default)]
    pub on_exhausted: OnExhausted,
}

impl RunBudget {
    /// The run's own limits.
    pub fn limit(&self) -> Budget {
        Budget { usd: self.usd, tokens: self.tokens }
    }
}

/// What one model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input tokens (not counting cache reads and writes).
    #[schemars(range(min = 0))]
    pub input: f64,
    /// Output tokens.
    #[schemars(range(min = 0))]
    pub output: f64,
    /// Input tokens read from the prompt cache. Default: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cache_read: Option<f64>,
    /// Input tokens written to the prompt cache. Default: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cache_write: Option<f64>,
}

impl Price {
    /// The cost of `usage`'s tokens; `None` when no token figure is known.
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        usage.total_tokens()?;
        let per = |tokens: Option<u64>, price: f64| tokens.unwrap_or(0) as f64 * price / 1_000_000.0;
        Some(
            per(usage.input_tokens, self.input)
                + per(usage.output_tokens, self.output)
                + per(usage.cache_read_tokens, self.cache_read.unwrap_or(self.input))
                + per(usage.cache_write_tokens, self.cache_write.unwrap_or(self.input)),
        )
    }
}

/// The plan's price table, by model name.
pub type Prices = BTreeMap<String, Price>;

/// `usage` with a cost from `prices` for `model` when the CLI reported none; the flag says
/// whether the table supplied it.
pub fn priced(usage: Usage, model: Option<&str>, prices: &Prices) -> (Usage, bool) {
    if usage.cost_usd.is_some() {
        return (usage, false);
    }
    match model.and_then(|m| prices.get(m)).and_then(|p| p.cost(&usage)) {
        Some(cost) => (Usage { cost_usd: Some(cost), ..usage }, true),
        None => (usage, false),
    }
}

/// The known part of a usage, for arithmetic against a [`Budget`]: unknown figures count 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Spend {
    /// US dollars.
    pub usd: f64,
    /// Tokens.
    pub tokens: u64,
}

impl Spend {
    /// The known figures of `usage`.
    pub fn of(usage: &Usage) -> Spend {
        Spend { usd: usage.cost_usd.unwrap_or(0.0), tokens: usage.total_tokens().unwrap_or(0) }
    }

    /// The sum.
    pub fn plus(self, other: Spend) -> Spend {
        Spend { usd: self.usd + other.usd, tokens: self.tokens.saturating_add(other.tokens) }
    }

    /// The difference, never below zero.
    pub fn minus(self, other: Spend) -> Spend {
        Spend { usd: (self.usd - other.usd).max(0.0), tokens: self.tokens.saturating_sub(other.tokens) }
    }

    /// The larger of each figure.
    pub fn max(self, other: Spend) -> Spend {
        Spend { usd: self.usd.max(other.usd), tokens: self.tokens.max(other.tokens) }
    }

    /// The spend as a budget (each figure a limit), for "reserve this much".
    pub fn as_budget(self) -> Budget {
        Budget { usd: Some(self.usd), tokens: Some(self.tokens) }
    }

    /// The figures `limit` sets a limit for (`$0.0421`, `8406 tokens`, or both): the others
    /// may be unknown, and an unknown figure is never printed as 0.
    pub fn brief_in(&self, limit: &Budget) -> String {
        let mut parts = Vec::new();
        if limit.usd.is_some() {
            parts.push(format!("${:.4}", self.usd));
        }
        if limit.tokens.is_some() || limit.usd.is_none() {
            parts.push(format!("{} tokens", self.tokens));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, cache_read: u64) -> Usage {
        Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_read_tokens: Some(cache_read),
            cache_write_tokens: None,
            cost_usd: None,
        }
    }

    #[test]
    fn the_table_prices_tokens_only_when_the_cli_gave_no_cost() {
        let mut prices = Prices::new();
        prices.insert("m".into(), Price { input: 2.0, output: 8.0, cache_read: Some(0.5), cache_write: None });
        let (u, from_table) = priced(usage(1_000_000, 500_000, 2_000_000), Some("m"), &prices);
        assert!(from_table);
        assert_eq!(u.cost_usd, Some(2.0 + 4.0 + 1.0));
        let reported = Usage { cost_usd: Some(0.25), ..usage(10, 10, 10) };
        assert_eq!(priced(reported, Some("m"), &prices), (reported, false), "the CLI's own cost wins");
        assert_eq!(priced(usage(10, 10, 10), Some("other"), &prices).0.cost_usd, None, "no price: unknown, not 0");
        assert_eq!(priced(Usage::default(), Some("m"), &prices).0.cost_usd, None, "no tokens: unknown, not 0");
    }

    #[test]
    fn a_limit_is_reached_at_its_value_and_each_limit_falls_back_separately() {
        let b = Budget { usd: Some(1.0), tokens: None };
        assert_eq!(b.exceeded(Spend { usd: 0.99, tokens: 10_000_000 }), None);
        assert_eq!(b.exceeded(Spend { usd: 1.0, tokens: 0 }).as_deref(), Some("$1.0000"));
        let merged = b.or(Budget { usd: Some(5.0), tokens: Some(100) });
        assert_eq!(merged, Budget { usd: Some(1.0), tokens: Some(100) });
        assert_eq!(merged.left(Spend { usd: 2.0, tokens: 40 }), Budget { usd: Some(0.0), tokens: Some(60) });
    }
}
