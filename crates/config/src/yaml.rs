//! Reading YAML exactly as PyYAML's `safe_load` does.
//!
//! Fast-LLM writes and reads `metadata.yaml` with PyYAML, which resolves plain scalars with YAML
//! 1.1 rules: `1e-05` (no dot) is a *string*, `yes`/`on` are booleans, `017` is octal, `1:30` is
//! sexagesimal. YAML 1.2 readers disagree on each of these, so we take events from a YAML
//! parser and resolve scalars with PyYAML's own implicit resolvers and constructors.
//!
//! Deliberate differences: duplicate keys are an error (PyYAML keeps the last one silently),
//! non-string keys are an error (no config dict has one), and timestamps and non-finite floats
//! are errors (no config field holds one). What the parsed value may cost is bounded by the
//! text ([`Budget`]): an alias is charged the whole value it repeats, an anchor the copy kept
//! for its aliases.

use std::borrow::Cow;
use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::budget::{Budget, ITEM, Spent};
use crate::{Map, ParseError, Value};

const CORE_TAGS: &str = "tag:yaml.org,2002:";

/// Nesting limit, as serde_json's: deeper documents are rejected instead of exhausting the stack.
const MAX_DEPTH: usize = 128;

/// An anchor's entry in the table of anchors, which grows to twice its entries.
const ANCHOR_SLOT: usize = 2 * size_of::<(usize, (Value, usize))>();

/// Parses one YAML document into a [`Value`] with PyYAML's `safe_load` semantics.
pub(crate) fn load(text: &str) -> Result<Value, ParseError> {
    let mut loader = Loader {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        depth: 0,
        budget: Budget::for_text(text.len()),
        copies: 0,
    };
    loader.document()
}

struct Loader<'a> {
    events: Parser<'a, granit_parser::StrInput<'a>>,
    /// Each anchored value, with what it cost to build (what each alias of it costs again).
    anchors: HashMap<usize, (Value, usize)>,
    depth: usize,
    budget: Budget,
    /// What the anchors' copies were charged so far.
    copies: usize,
}

fn error_at(span: &Span, message: impl std::fmt::Display) -> ParseError {
    ParseError::Yaml(format!(
        "{message} at line {} column {}",
        span.start.line(),
        span.start.col() + 1
    ))
}

impl<'a> Loader<'a> {
    /// The next data event; comments and anchor metadata are presentation only.
    fn next(&mut self) -> Result<(Event<'a>, Span), ParseError> {
        loop {
            match self.events.next() {
                Some(Ok((Event::Comment(..) | Event::Anchor(..), _))) => continue,
                Some(Ok(event)) => return Ok(event),
                Some(Err(e)) => return Err(ParseError::Yaml(e.to_string())),
                None => return Err(ParseError::Yaml("unexpected end of input".into())),
            }
        }
    }

    fn document(&mut self) -> Result<Value, ParseError> {
        let mut value = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd => {}
                Event::StreamEnd => break,
                Event::DocumentStart(..) => {
                    if value.is_some() {
                        return Err(error_at(&span, "expected a single document, found another"));
                    }
                    let (first, first_span) = self.next()?;
                    value = Some(self.node(first, first_span)?);
                }
                other => return Err(error_at(&span, format!("unexpected YAML event {other:?}"))),
            }
        }
        // An empty stream is `None` in PyYAML.
        Ok(value.unwrap_or(Value::Null))
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Value, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(error_at(&span, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let value = self.node_inner(event, span);
        self.depth -= 1;
        value
    }

    fn node_inner(&mut self, event: Event<'a>, span: Span) -> Result<Value, ParseError> {
        let (start, copies) = (self.budget.spent(), self.copies);
        let (value, anchor) = match event {
            Event::Alias(id) => {
                let (value, cost) = self.anchors.get(&id).ok_or_else(|| error_at(&span, "unknown alias"))?;
                // Charged before the copy is made: a "billion laughs" is refused, not built.
                self.budget.spend(*cost, Spent::ByAlias)?;
                return Ok(value.clone());
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref(), &span)?;
                if let Value::Str(s) = &value {
                    self.budget.spend(s.len(), Spent::Parsed)?;
                }
                (value, anchor)
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", &span)?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let index = items.len();
                    let item = self.node(event, span).map_err(|e| e.at(&index.to_string()))?;
                    self.budget
                        .spend(ITEM, Spent::Parsed)
                        .map_err(|e| e.at(&index.to_string()))?;
                    items.push(item);
                }
                // Growth leaves up to twice the room; the value is kept for the whole conversion.
                items.shrink_to_fit();
                (Value::List(items), anchor)
            }
            Event::MappingStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", &span)?;
                (Value::Map(self.mapping()?), anchor)
            }
            other => return Err(error_at(&span, format!("unexpected YAML event {other:?}"))),
        };
        if anchor != 0 {
            // The copy kept for the aliases costs what the value did, without the copies of
            // anchors inside it (counting those would double per nesting level).
            let cost = (self.budget.spent() - start) - (self.copies - copies);
            self.budget.spend(cost + ANCHOR_SLOT, Spent::Parsed)?;
            self.copies += cost + ANCHOR_SLOT;
            self.anchors.insert(anchor, (value.clone(), cost));
        }
        Ok(value)
    }

    fn mapping(&mut self) -> Result<Map, ParseError> {
        let mut map = Map::new();
        let mut merged = Vec::new();
        loop {
            let (event, key_span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                break;
            }
            let is_merge = matches!(&event, Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<");
            let key = self.node(event, key_span)?;
            let (event, span) = self.next()?;
            let entry = self.budget.spend_entry(map.len());
            let value = match &key {
                Value::Str(name) => entry.and_then(|()| self.node(event, span)).map_err(|e| e.at(name))?,
                _ => entry.and_then(|()| self.node(event, span))?,
            };
            if is_merge {
                merged.push((value, key_span));
                continue;
            }
            let Value::Str(key) = key else {
                return Err(error_at(
                    &key_span,
                    format!("mapping key must be a string, found {}", key.describe()),
                ));
            };
            if map.contains_key(&key) {
                return Err(error_at(&key_span, format!("duplicate key `{key}`")));
            }
            map.insert(key, value);
        }
        // `<<` merges: keys already present win, earlier merge sources win over later ones.
        for (source, span) in merged {
            let sources = match source {
                Value::Map(m) => vec![m],
                Value::List(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::Map(m) => Ok(m),
                        _ => Err(error_at(&span, "a merge key needs mappings")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(error_at(&span, "a merge key needs a mapping or a list of mappings"));
                }
            };
            for source in sources {
                for (k, v) in source {
                    map.entry(k).or_insert(v);
                }
            }
        }
        Ok(map)
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, span: &Span) -> Result<(), ParseError> {
    match tag {
        None => Ok(()),
        Some(tag) if tag.suffix_in_namespace(CORE_TAGS).as_deref() == Some(expected) => Ok(()),
        Some(tag) => Err(error_at(
            span,
            format!("unsupported tag `{}{}`", tag.handle(), tag.suffix()),
        )),
    }
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>, span: &Span) -> Result<Value, ParseError> {
    let kind: Cow<str> = match tag {
        Some(tag) => match tag.suffix_in_namespace(CORE_TAGS) {
            Some(kind) => kind,
            // `!` is the non-specific tag: a string.
            None if tag.handle() == "!" && tag.suffix().is_empty() => Cow::Borrowed("str"),
            None => {
                return Err(error_at(
                    span,
                    format!("unsupported tag `{}{}`", tag.handle(), tag.suffix()),
                ));
            }
        },
        None if style == ScalarStyle::Plain => Cow::Borrowed(resolve_plain(text)),
        None => Cow::Borrowed("str"),
    };
    let invalid = || error_at(span, format!("invalid {kind} `{text}`"));
    match kind.as_ref() {
        "str" => Ok(Value::Str(text.to_string())),
        "null" => Ok(Value::Null),
        "bool" => construct_bool(text).map(Value::Bool).ok_or_else(invalid),
        "int" => construct_int(text).map(Value::Int).ok_or_else(invalid),
        "float" => match construct_float(text) {
            Some(f) if f.is_finite() => Ok(Value::Float(f)),
            Some(_) => Err(ParseError::Number(text.to_string())),
            None => Err(invalid()),
        },
        "timestamp" => Err(error_at(span, format!("timestamps are not config values (`{text}`)"))),
        other => Err(error_at(span, format!("unsupported tag `!!{other}`"))),
    }
}

/// PyYAML's implicit resolvers for plain scalars (yaml/resolver.py).
fn resolve_plain(text: &str) -> &'static str {
    if is_null(text) {
        "null"
    } else if construct_bool(text).is_some() {
        "bool"
    } else if is_int(text) {
        "int"
    } else if is_float(text) {
        "float"
    } else if is_timestamp(text) {
        "timestamp"
    } else {
        "str"
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn construct_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn strip_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

fn all(text: &str, allowed: impl Fn(u8) -> bool) -> bool {
    !text.is_empty() && text.bytes().all(allowed)
}

/// `[0-5]?[0-9]`, a sexagesimal digit group.
fn is_base60_group(group: &str) -> bool {
    matches!(group.as_bytes(), [d] if d.is_ascii_digit())
        || matches!(group.as_bytes(), [a, b] if (b'0'..=b'5').contains(a) && b.is_ascii_digit())
}

fn is_int(text: &str) -> bool {
    let (_, body) = strip_sign(text);
    if let Some(bits) = body.strip_prefix("0b") {
        return all(bits, |c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return all(hex, |c| c.is_ascii_hexdigit() || c == b'_');
    }
    if body == "0" {
        return true;
    }
    if let Some(octal) = body.strip_prefix('0') {
        return all(octal, |c| matches!(c, b'0'..=b'7' | b'_'));
    }
    if let Some((head, groups)) = body.split_once(':') {
        return starts_nonzero_digits(head) && groups.split(':').all(is_base60_group);
    }
    starts_nonzero_digits(body)
}

/// `[1-9][0-9_]*`.
fn starts_nonzero_digits(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b'1'..=b'9')) && all(text, |c| c.is_ascii_digit() || c == b'_')
}

/// `[0-9][0-9_]*`.
fn digits_underscores(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b'0'..=b'9')) && all(text, |c| c.is_ascii_digit() || c == b'_')
}

fn is_exponent(text: &str) -> bool {
    // `[eE][-+][0-9]+`: PyYAML requires the exponent sign.
    let bytes = text.as_bytes();
    bytes.len() >= 3
        && matches!(bytes[0], b'e' | b'E')
        && matches!(bytes[1], b'-' | b'+')
        && bytes[2..].iter().all(u8::is_ascii_digit)
}

fn is_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (_, body) = strip_sign(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // `.[0-9][0-9_]*(exp)?` takes no sign in PyYAML's pattern.
    let unsigned = body.len() == text.len();
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i..])),
        None => (body, None),
    };
    if exponent.is_some_and(|e| !is_exponent(e)) {
        return false;
    }
    if let Some(fraction) = mantissa.strip_prefix('.') {
        return unsigned && digits_underscores(fraction);
    }
    let Some((whole, fraction)) = mantissa.split_once('.') else {
        return false;
    };
    if !fraction.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
        return false;
    }
    if let Some((head, groups)) = whole.split_once(':') {
        // Sexagesimal floats take no exponent.
        return exponent.is_none() && digits_underscores(head) && groups.split(':').all(is_base60_group);
    }
    digits_underscores(whole)
}

/// PyYAML's timestamp resolver: `YYYY-MM-DD`, or a date with a time part.
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if b.len() == 10 && digits(&b[..4]) && b[4] == b'-' && digits(&b[5..7]) && b[7] == b'-' && digits(&b[8..]) {
        return true;
    }
    let Some(split) = text.find(['T', 't', ' ', '\t']) else {
        return false;
    };
    let mut date = text[..split].split('-');
    let (Some(year), Some(month), Some(day), None) = (date.next(), date.next(), date.next(), date.next()) else {
        return false;
    };
    year.len() == 4
        && digits(year.as_bytes())
        && (1..=2).contains(&month.len())
        && digits(month.as_bytes())
        && (1..=2).contains(&day.len())
        && digits(day.as_bytes())
        && text[split..].contains(':')
}

/// PyYAML's `construct_yaml_int`.
fn construct_int(text: &str) -> Option<i128> {
    let cleaned = text.replace('_', "");
    let (negative, body) = strip_sign(&cleaned);
    let magnitude = if body == "0" {
        0
    } else if let Some(bits) = body.strip_prefix("0b") {
        i128::from_str_radix(bits, 2).ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(octal) = body.strip_prefix('0') {
        i128::from_str_radix(octal, 8).ok()?
    } else if body.contains(':') {
        body.split(':')
            .try_fold(0i128, |acc, part| acc.checked_mul(60)?.checked_add(part.parse().ok()?))?
    } else {
        body.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// PyYAML's `construct_yaml_float`.
fn construct_float(text: &str) -> Option<f64> {
    let cleaned = text.replace('_', "").to_ascii_lowercase();
    let (negative, body) = strip_sign(&cleaned);
    let sign = if negative { -1.0 } else { 1.0 };
    if body == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Some(f64::NAN);
    }
    if body.contains(':') {
        let value = body
            .split(':')
            .try_fold(0.0f64, |acc, part| Some(acc * 60.0 + part.parse::<f64>().ok()?))?;
        return Some(sign * value);
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1.0e-05", Value::Float(1e-5))]
    #[case("1e-05", Value::Str("1e-05".into()))]
    #[case("1.0e5", Value::Str("1.0e5".into()))]
    #[case("500000.0", Value::Float(500000.0))]
    #[case("1.", Value::Float(1.0))]
    #[case(".5", Value::Float(0.5))]
    #[case("-.5", Value::Str("-.5".into()))]
    #[case("1_000", Value::Int(1000))]
    #[case("017", Value::Int(15))]
    #[case("0o17", Value::Str("0o17".into()))]
    #[case("0x1F", Value::Int(31))]
    #[case("0b101", Value::Int(5))]
    #[case("1:30", Value::Int(90))]
    #[case("1:30.5", Value::Float(90.5))]
    #[case("yes", Value::Bool(true))]
    #[case("Off", Value::Bool(false))]
    #[case("y", Value::Str("y".into()))]
    #[case("~", Value::Null)]
    #[case("", Value::Null)]
    #[case("'yes'", Value::Str("yes".into()))]
    #[case("\"1.0\"", Value::Str("1.0".into()))]
    #[case("!!str 12", Value::Str("12".into()))]
    #[case("!!float 1", Value::Float(1.0))]
    #[case("2024-1-1", Value::Str("2024-1-1".into()))]
    #[case("08", Value::Str("08".into()))]
    #[case("+.5", Value::Str("+.5".into()))]
    #[case("1__0.0_", Value::Float(10.0))]
    #[case("501974169931277706872159392843", Value::Int(501974169931277706872159392843))]
    fn scalars_resolve_like_pyyaml(#[case] text: &str, #[case] expected: Value) {
        assert_eq!(load(text).unwrap(), expected, "{text}");
    }

    #[rstest]
    #[case(".inf")]
    #[case("2024-01-01")]
    #[case("2001-12-14t21:59:43.10-05:00")]
    #[case("!!python/tuple [1]")]
    #[case("a: 1\na: 2")]
    #[case("1: a")]
    #[case("a: 1\n---\nb: 2")]
    fn unsupported_documents_are_errors(#[case] text: &str) {
        assert!(load(text).is_err(), "{text}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(load(&deep).is_err());
        let ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(load(&ok).is_ok());
    }

    #[test]
    fn alias_bombs_are_an_error() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = load(&doc).unwrap_err().to_string();
        assert!(err.contains("expanding this alias"), "{err}");
    }

    #[test]
    fn aliases_are_charged_the_bytes_they_repeat() {
        // 240,000 aliases of a 6,000-byte string: a quarter of a million nodes, 1.4 GB expanded.
        let doc = format!("s: &s {}\nb: [{}]\n", "x".repeat(6000), vec!["*s"; 240_000].join(","));
        let err = load(&doc).unwrap_err();
        assert!(err.to_string().contains("expanding this alias"), "{err}");
        assert!(err.path().is_some_and(|p| p.starts_with("b.")), "{err}");
    }

    #[test]
    fn nested_anchors_are_charged_once() {
        // An anchor's copy is charged without the copies of anchors inside it: charging those
        // too would double the charge per level, and refuse this 60-byte-per-level document.
        let doc = format!(
            "{}x{}",
            (0..60).map(|i| format!("&a{i} [")).collect::<String>(),
            "]".repeat(60)
        );
        assert!(load(&doc).is_ok());
    }

    #[test]
    fn dense_small_maps_are_refused_by_their_key() {
        // Each `{a}` costs a whole B-tree node, about a hundred and fifty times its four bytes.
        let error = load(&format!("big: [{}]\n", vec!["{a}"; 300_000].join(","))).unwrap_err();
        assert!(error.to_string().contains("this value would take"), "{error}");
        assert!(
            error.path().is_some_and(|p| p.starts_with("big.") && p.ends_with(".a")),
            "{error}"
        );
    }

    #[test]
    fn a_few_aliases_of_a_block_config_are_fine() {
        let doc = format!(
            "block: &b {{mixer: {{type: attention, heads: 32}}, mlp: {{intermediate_size: 14336}}}}\nblocks: [{}]\n",
            vec!["*b"; 100].join(", ")
        );
        let Value::Map(map) = load(&doc).unwrap() else { panic!() };
        assert_eq!(map["blocks"], Value::List(vec![map["block"].clone(); 100]));
    }

    #[test]
    fn comments_are_ignored() {
        let value = load("# header\na: 1 # trailing\n# between\nb: [2, 3]  # end\n").unwrap();
        assert_eq!(value, load("{a: 1, b: [2, 3]}").unwrap());
    }

    #[test]
    fn anchors_aliases_and_merges() {
        let value = load("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").unwrap();
        let Value::Map(map) = value else { panic!() };
        let Value::Map(other) = &map["other"] else { panic!() };
        assert_eq!(other["x"], Value::Int(1));
        assert_eq!(other["y"], Value::Int(3));
    }
}
