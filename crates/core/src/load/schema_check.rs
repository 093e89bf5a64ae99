//! JSON-schema validation turned into located, readable issues.
//!
//! jsonschema reports a keyword and an instance pointer; we keep both (the issue code is
//! `schema/<keyword>`, which the schema tests assert) and rewrite the message into something a
//! person can act on: unknown fields get the list of allowed ones and a "did you mean", `anyOf`
//! failures are replaced by the errors of the alternative the user evidently meant.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::suggest::did_you_mean;
use crate::diag::{PlanIssue, pointer_join};
use crate::{DURATION_PATTERN, TASK_ID_PATTERN};

/// Validates `instance`, returning one issue per rejection.
pub(crate) fn check(validator: &Validator, schema: &Value, instance: &Value) -> Vec<PlanIssue> {
    let mut out = Vec::new();
    for err in validator.iter_errors(instance) {
        convert(&err, schema, instance, &mut out);
    }
    // One issue per value: a second complaint about the same value adds noise, not help.
    let mut seen = std::collections::HashSet::new();
    out.retain(|i| seen.insert(i.pointer.clone()));
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => {
            let s = other.to_string();
            if s.len() > 40 { type_name(other).to_string() } else { format!("`{s}`") }
        }
    }
}

fn convert(err: &ValidationError<'_>, schema: &Value, root: &Value, out: &mut Vec<PlanIssue>) {
    let pointer = err.instance_path().as_str().to_owned();
    let keyword = err.kind().keyword().to_owned();
    let code = format!("schema/{keyword}");
    let instance = err.instance();
    let issue = match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(schema, root, &pointer);
            for key in unexpected {
                if allowed.contains(key) {
                    // Allowed by another alternative of this value: the user mixed two forms.
                    let others: Vec<String> = instance
                        .as_object()
                        .map(|o| o.keys().filter(|k| !unexpected.contains(k)).map(|k| format!("`{k}`")).collect())
                        .unwrap_or_default();
                    out.push(
                        PlanIssue::error(
                            code.clone(),
                            pointer_join(&pointer, key),
                            format!("field `{key}` cannot be combined with {}", others.join(", ")),
                        )
                        .with_help(
                            "these fields belong to different forms of this value (e.g. a command agent or a plugin agent): keep one form",
                        )
                        .at_key(),
                    );
                    continue;
                }
                let mut help = did_you_mean(key, allowed.iter().map(String::as_str));
                if allowed.is_empty() {
                    help.push_str("remove it");
                } else {
                    help.push_str(&format!("allowed here: {}", allowed.join(", ")));
                }
                out.push(
                    PlanIssue::error(code.clone(), pointer_join(&pointer, key), format!("unknown field `{key}`")).with_help(help).at_key(),
                );
            }
            return;
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            PlanIssue::error(code, pointer, format!("missing required field `{name}`")).with_help(format!("add `{name}: …` here"))
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(ts) => ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or "),
            };
            PlanIssue::error(code, pointer, format!("expected {expected}, found {}", type_name(instance)))
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned)).collect())
                .unwrap_or_default();
            let word = instance.as_str().unwrap_or_default();
            let help = format!("{}use one of: {}", did_you_mean(word, opts.iter().map(String::as_str)), opts.join(", "));
            PlanIssue::error(code, pointer, format!("{} is not a valid value", show(instance))).with_help(help)
        }
        ValidationErrorKind::Constant { expected_value } => {
            PlanIssue::error(code, pointer, format!("{} must be {}", show(instance), show(expected_value)))
        }
        ValidationErrorKind::Pattern { pattern } => {
            let (message, help) = if pattern == TASK_ID_PATTERN {
                (
                    format!("{} is not a valid task id", show(instance)),
                    "use 1-128 letters, digits, `-`, `_` or `.`, starting with a letter or digit".to_owned(),
                )
            } else if pattern == DURATION_PATTERN {
                (
                    format!("{} is not a duration", show(instance)),
                    "write e.g. `90s`, `5m`, `1h30m`, `250ms`, or a number of seconds".to_owned(),
                )
            } else {
                (format!("{} does not match the pattern `{pattern}`", show(instance)), "change the value to match the pattern".to_owned())
            };
            PlanIssue::error(code, pointer, message).with_help(help)
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
            PlanIssue::error(code, pointer, format!("{} is below the minimum of {limit}", show(instance)))
        }
        ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
            PlanIssue::error(code, pointer, format!("{} is above the maximum of {limit}", show(instance)))
        }
        ValidationErrorKind::MinItems { limit } => PlanIssue::error(code, pointer, format!("needs at least {limit} item(s)")),
        ValidationErrorKind::MaxItems { limit } => PlanIssue::error(code, pointer, format!("has more than {limit} item(s)")),
        ValidationErrorKind::MinLength { .. } => PlanIssue::error(code, pointer, "must not be empty".to_owned()),
        ValidationErrorKind::MaxLength { limit } => PlanIssue::error(code, pointer, format!("is longer than {limit} characters")),
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // A documented enum (or an internally tagged one) is a `oneOf` of `const`s at one
            // place: report it like an enum, at that place.
            let consts: Option<Vec<(String, String, Value)>> = context
                .iter()
                .map(|errs| match errs.as_slice() {
                    [e] => match e.kind() {
                        ValidationErrorKind::Constant { expected_value } => Some((
                            e.instance_path().as_str().to_owned(),
                            expected_value.as_str().map_or_else(|| expected_value.to_string(), str::to_owned),
                            e.instance().clone().into_owned(),
                        )),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            if let Some(consts) = consts.filter(|c| !c.is_empty() && c.iter().all(|(p, ..)| *p == c[0].0)) {
                let (at, _, value) = &consts[0];
                let opts: Vec<&str> = consts.iter().map(|(_, o, _)| o.as_str()).collect();
                let word = value.as_str().unwrap_or_default();
                let help = format!("{}use one of: {}", did_you_mean(word, opts.iter().copied()), opts.join(", "));
                out.push(PlanIssue::error(code, at.clone(), format!("{} is not a valid value", show(value))).with_help(help));
                return;
            }
            // The alternative the user evidently meant is one whose errors say more than "wrong
            // type here": errors deeper inside the value, or another keyword (a nested anyOf,
            // a pattern). Among those, the deepest with the fewest errors wins.
            let depth = |errs: &Vec<ValidationError<'static>>| {
                errs.iter().map(|e| e.instance_path().as_str().matches('/').count()).max().unwrap_or(0)
            };
            let here = pointer.matches('/').count();
            let informative = |errs: &Vec<ValidationError<'static>>| {
                errs.iter().any(|e| {
                    e.instance_path().as_str().matches('/').count() > here || !matches!(e.kind(), ValidationErrorKind::Type { .. })
                })
            };
            let best = context
                .iter()
                .filter(|errs| !errs.is_empty() && informative(errs))
                .max_by_key(|errs| (depth(errs), std::cmp::Reverse(errs.len())));
            if let Some(errs) = best {
                for e in errs {
                    convert(e, schema, root, out);
                }
                return;
            }
            let expected = describe_alternatives(schema, context);
            PlanIssue::error(code, pointer, format!("{} is not valid here", show(instance))).with_help(expected)
        }
        _ => PlanIssue::error(code, pointer, err.to_string()),
    };
    out.push(issue);
}

fn describe_alternatives(_schema: &Value, context: &[Vec<ValidationError<'static>>]) -> String {
    let mut needs: Vec<String> = Vec::new();
    for errs in context {
        for e in errs {
            match e.kind() {
                ValidationErrorKind::Required { property } => {
                    needs.push(format!("a mapping with `{}`", property.as_str().unwrap_or_default()))
                }
                ValidationErrorKind::Type { kind: TypeKind::Single(t) } => needs.push(format!("{t}")),
                _ => {}
            }
        }
    }
    needs.dedup();
    if needs.is_empty() { "check the documentation of this field".to_owned() } else { format!("expected {}", needs.join(" or ")) }
}

/// The keys the schema allows for the object at `pointer` (walking `$ref`s and `anyOf`s).
fn allowed_keys(schema: &Value, root: &Value, pointer: &str) -> Vec<String> {
    let mut nodes = vec![schema];
    let mut instance = root;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let mut next = Vec::new();
        for n in expand(schema, nodes) {
            if let Some(p) = n.get("properties").and_then(|p| p.get(&token)) {
                next.push(p);
            } else if instance.is_array() {
                if let Some(items) = n.get("items") {
                    next.push(items);
                }
            } else if let Some(ap) = n.get("additionalProperties").filter(|a| a.is_object()) {
                next.push(ap);
            }
        }
        instance = match instance {
            Value::Object(m) => m.get(&token).unwrap_or(&Value::Null),
            Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)).unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
        nodes = next;
    }
    let mut keys: Vec<String> =
        expand(schema, nodes).iter().filter_map(|n| n.get("properties")?.as_object()).flat_map(|p| p.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys
}

fn expand<'a>(schema: &'a Value, nodes: Vec<&'a Value>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut stack = nodes;
    let mut guard = 0;
    while let Some(n) = stack.pop() {
        guard += 1;
        if guard > 256 {
            break;
        }
        out.push(n);
        if let Some(r) = n.get("$ref").and_then(Value::as_str)
            && let Some(target) = r.strip_prefix('#').and_then(|p| schema.pointer(p))
        {
            stack.push(target);
        }
        for k in ["anyOf", "oneOf", "allOf"] {
            if let Some(arr) = n.get(k).and_then(Value::as_array) {
                stack.extend(arr.iter());
            }
        }
    }
    out
}
