//! YAML (and JSON, which YAML 1.2 contains) to `serde_json::Value`, with a source map.
//!
//! yaml-rust2's event parser gives every event a byte marker. We build the JSON value
//! ourselves from the events and, on the way, record for every JSON pointer where its value —
//! and, for mapping entries, its key — starts in the source. Everything downstream (schema
//! validation, semantic checks, the planner, plugin config checks) reports problems by JSON
//! pointer, and this map turns them into file, line and column.
//!
//! Plain scalars resolve with the YAML 1.2 core schema (`null`/`~`, `true`/`false`, decimal,
//! octal `0o` and hex `0x` integers, floats); quoted and block scalars are strings. Aliases
//! are expanded with a node budget (no "billion laughs"), nesting is depth-limited, duplicate
//! keys are errors, and a stream with more than one document is refused.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::{PlanIssue, pointer_join};

/// Where a value (and its key) sits in the source, as byte ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// The value: start byte and length.
    pub value: (usize, usize),
    /// The key, for mapping entries.
    pub key: Option<(usize, usize)>,
}

/// JSON pointer → location.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    locs: HashMap<String, Loc>,
}

impl SourceMap {
    /// The location of `pointer`, or of its nearest ancestor that has one.
    pub fn locate(&self, pointer: &str) -> Option<Loc> {
        let mut p = pointer;
        loop {
            if let Some(l) = self.locs.get(p) {
                return Some(*l);
            }
            let cut = p.rfind('/')?;
            p = &p[..cut];
        }
    }

    /// The exact location of `pointer`, if it exists in the document.
    pub fn get(&self, pointer: &str) -> Option<Loc> {
        self.locs.get(pointer).copied()
    }

    pub(crate) fn insert(&mut self, pointer: String, loc: Loc) {
        self.locs.insert(pointer, loc);
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// Byte offset.
    pub offset: usize,
    /// What the parser said.
    pub message: String,
}

const MAX_DEPTH: usize = 128;
const MAX_NODES: usize = 1_000_000;
/// The longest span a diagnostic underlines, in bytes.
const MAX_SPAN: usize = 512;

struct Builder<'a> {
    src: &'a str,
    /// Char index → byte offset, built lazily only for non-ASCII input.
    char_to_byte: Option<Vec<usize>>,
    parser: Parser<std::str::Chars<'a>>,
    map: SourceMap,
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    issues: Vec<PlanIssue>,
}

/// Parses `src` into a JSON value and its source map. Duplicate keys and similar structural
/// problems come back as issues; a syntax error stops the parse.
pub fn parse(src: &str) -> Result<(Value, SourceMap, Vec<PlanIssue>), SyntaxError> {
    let char_to_byte = if src.is_ascii() {
        None
    } else {
        let mut v: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        v.push(src.len());
        Some(v)
    };
    let mut b = Builder {
        src,
        char_to_byte,
        parser: Parser::new_from_str(src),
        map: SourceMap::default(),
        anchors: HashMap::new(),
        nodes: 0,
        issues: Vec::new(),
    };
    let value = b.document()?;
    Ok((value, b.map, b.issues))
}

impl Builder<'_> {
    fn byte(&self, m: &Marker) -> usize {
        match &self.char_to_byte {
            None => m.index().min(self.src.len()),
            Some(v) => v.get(m.index()).copied().unwrap_or(self.src.len()),
        }
    }

    fn next(&mut self) -> Result<(Event, usize), SyntaxError> {
        match self.parser.next_token() {
            Ok((ev, m)) => Ok((ev, self.byte(&m))),
            Err(e) => {
                let offset = self.byte(e.marker());
                Err(SyntaxError { offset, message: e.info().to_owned() })
            }
        }
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError { offset, message: message.into() }
    }

    fn document(&mut self) -> Result<Value, SyntaxError> {
        let mut value = None;
        loop {
            let (ev, at) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart => {
                    if value.is_some() {
                        return Err(self.err(at, "a plan file holds one YAML document; remove the second `---`"));
                    }
                    let (ev, at) = self.next()?;
                    if matches!(ev, Event::DocumentEnd) {
                        value = Some(Value::Null);
                        continue;
                    }
                    value = Some(self.node(ev, at, String::new(), None, 0)?);
                }
                Event::StreamEnd => return Ok(value.unwrap_or(Value::Null)),
                _ => return Err(self.err(at, "unexpected content outside a document")),
            }
        }
    }

    /// The extent of a scalar in the source: to the end of its text on the line.
    /// Where the line holding `at` ends, looking at most [`MAX_SPAN`] bytes ahead: a span
    /// only underlines the start of a value, and an unbounded search would make a plan
    /// written on one line (generated JSON) quadratic to load.
    fn line_end(&self, at: usize) -> usize {
        let mut cap = (at + MAX_SPAN).min(self.src.len());
        while !self.src.is_char_boundary(cap) {
            cap -= 1;
        }
        self.src[at..cap].find('\n').map_or(cap, |n| at + n)
    }

    fn scalar_len(&self, at: usize, text: &str, style: TScalarStyle) -> usize {
        let line_end = self.line_end(at);
        let len = match style {
            TScalarStyle::Plain => text.len(),
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let q = if style == TScalarStyle::SingleQuoted { '\'' } else { '"' };
                self.src[at + 1..line_end].find(q).map_or(line_end - at, |n| n + 2)
            }
            TScalarStyle::Literal | TScalarStyle::Folded => 1,
        };
        len.clamp(1, (line_end - at).max(1))
    }

    fn line_len(&self, at: usize) -> usize {
        let line_end = self.line_end(at);
        self.src[at..line_end].trim_end().len().max(1)
    }

    fn count(&mut self, n: usize, at: usize) -> Result<(), SyntaxError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self.err(at, format!("the document expands to more than {MAX_NODES} nodes (alias expansion?); simplify it")));
        }
        Ok(())
    }

    fn node(&mut self, ev: Event, at: usize, pointer: String, key: Option<(usize, usize)>, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err(at, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.count(1, at)?;
        let (value, anchor, len) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let len = self.scalar_len(at, &text, style);
                (resolve_scalar(text, style, tag.as_ref()), anchor, len)
            }
            Event::Alias(id) => {
                let (v, size) = self.anchors.get(&id).cloned().ok_or_else(|| self.err(at, "alias to an unknown anchor"))?;
                self.count(size, at)?;
                self.map.insert(pointer, Loc { value: (at, self.line_len(at)), key });
                return Ok(v);
            }
            Event::SequenceStart(anchor, _) => {
                let before = self.nodes;
                let mut items = Vec::new();
                loop {
                    let (ev, iat) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let child = pointer_join(&pointer, items.len());
                    items.push(self.node(ev, iat, child, None, depth + 1)?);
                }
                let v = Value::Array(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, (v.clone(), self.nodes - before));
                }
                self.map.insert(pointer, Loc { value: (at, self.line_len(at)), key });
                return Ok(v);
            }
            Event::MappingStart(anchor, _) => {
                let before = self.nodes;
                let mut obj = Map::new();
                loop {
                    let (ev, kat) = self.next()?;
                    let key_text = match ev {
                        Event::MappingEnd => break,
                        Event::Scalar(text, ..) => text,
                        Event::Alias(id) => match self.anchors.get(&id) {
                            Some((Value::String(s), _)) => s.clone(),
                            Some((other, _)) if !other.is_object() && !other.is_array() => other.to_string(),
                            _ => return Err(self.err(kat, "a mapping key must be a plain value")),
                        },
                        _ => return Err(self.err(kat, "a mapping key must be a plain value, not a list or mapping")),
                    };
                    let klen = key_text.len().clamp(1, self.line_len(kat));
                    let child = pointer_join(&pointer, &key_text);
                    let (vev, vat) = self.next()?;
                    let v = self.node(vev, vat, child.clone(), Some((kat, klen)), depth + 1)?;
                    if obj.contains_key(&key_text) {
                        self.issues.push(
                            PlanIssue::error("duplicate-key", child.clone(), format!("duplicate key `{key_text}`"))
                                .with_help("each key may appear once in a mapping: remove or merge the repeated one")
                                .at_key(),
                        );
                        // Keep the first value; record the duplicate's location under the same pointer
                        // so the diagnostic points at the repeated key.
                        self.map.insert(child, Loc { value: (vat, 1), key: Some((kat, klen)) });
                        continue;
                    }
                    obj.insert(key_text, v);
                }
                let v = Value::Object(obj);
                if anchor > 0 {
                    self.anchors.insert(anchor, (v.clone(), self.nodes - before));
                }
                self.map.insert(pointer, Loc { value: (at, self.line_len(at)), key });
                return Ok(v);
            }
            _ => return Err(self.err(at, "unexpected YAML event")),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), 1));
        }
        self.map.insert(pointer, Loc { value: (at, len), key });
        Ok(value)
    }
}

fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag
        && tag.suffix == "str"
    {
        return Value::String(text);
    }
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let t = text.as_str();
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits(unsigned, 10) {
        if let Ok(i) = t.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = t.trim_start_matches('+').parse::<u64>() {
            return Value::Number(u.into());
        }
    }
    if let Some(h) = t.strip_prefix("0x").filter(|h| digits(h, 16))
        && let Ok(u) = u64::from_str_radix(h, 16)
    {
        return Value::Number(u.into());
    }
    if let Some(o) = t.strip_prefix("0o").filter(|o| digits(o, 8))
        && let Ok(u) = u64::from_str_radix(o, 8)
    {
        return Value::Number(u.into());
    }
    if is_yaml_float(t)
        && let Some(n) = t.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

fn is_yaml_float(t: &str) -> bool {
    let s = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mant_ok = match mantissa.split_once('.') {
        Some((a, b)) => (a.chars().all(|c| c.is_ascii_digit())) && b.chars().all(|c| c.is_ascii_digit()) && !(a.is_empty() && b.is_empty()),
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mant_ok && exp_ok && (mantissa.contains('.') || exp.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_values_and_locations() {
        let src = "version: 1\ntasks:\n  - id: a\n    modifies: [\"src/a/**\"]\n  - id: é-b\n    estimate: 5m\n";
        let (v, map, issues) = parse(src).expect("parses");
        assert!(issues.is_empty());
        assert_eq!(v, json!({"version": 1, "tasks": [{"id": "a", "modifies": ["src/a/**"]}, {"id": "é-b", "estimate": "5m"}]}));
        let loc = map.get("/tasks/1/estimate").expect("located");
        assert_eq!(&src[loc.value.0..loc.value.0 + loc.value.1], "5m");
        let key = loc.key.expect("key");
        assert_eq!(&src[key.0..key.0 + key.1], "estimate");
        let loc = map.get("/tasks/0/modifies/0").expect("located");
        assert_eq!(&src[loc.value.0..loc.value.0 + loc.value.1], "\"src/a/**\"");
        assert_eq!(map.locate("/tasks/1/nope").map(|l| l.value), map.get("/tasks/1").map(|l| l.value));
    }

    #[test]
    fn json_is_yaml() {
        let (v, map, _) = parse("{\"version\":1,\"tasks\":[{\"id\":\"x\"}]}").expect("json parses");
        assert_eq!(v, json!({"version": 1, "tasks": [{"id": "x"}]}));
        assert!(map.get("/tasks/0/id").is_some());
    }

    #[test]
    fn scalars_resolve_with_the_core_schema() {
        let (v, _, _) = parse("a: ~\nb: yes\nc: 0x1f\nd: 1.5\ne: '12'\nf: 1e3\ng: .5\nh: 007\ni: 1.2.3\n").expect("parses");
        assert_eq!(v, json!({"a": null, "b": "yes", "c": 31, "d": 1.5, "e": "12", "f": 1000.0, "g": 0.5, "h": 7, "i": "1.2.3"}));
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, map, issues) = parse("a: 1\nb: 2\na: 3\n").expect("parses");
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].pointer, "/a");
        assert_eq!(map.get("/a").and_then(|l| l.key).map(|k| k.0), Some(10));
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n", p = i - 1));
        }
        assert!(parse(&bomb).is_err());
        let deep = "[".repeat(500) + &"]".repeat(500);
        assert!(parse(&deep).is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: [1, 2\n").is_err());
    }
}
