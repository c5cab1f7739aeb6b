//! Parsing a document costs memory in proportion to its text: the peak of bytes allocated while
//! parsing (the parsed value included) stays within [`K`] times the text's length, for JSON and
//! YAML documents of every shape a hostile input can take (many small keys, long lists of tiny
//! items, deep nesting, long strings, anchors and aliases).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fastllm_config::Value;
use rstest::rstest;

/// Peak bytes allocated per byte of text (of at least [`SIZE`] bytes: the budget's floor). The parsers
/// keep what they build within 16 bytes per byte of text plus 1 MiB (the densest plain lists,
/// `[0,0,...]`, are one 32-byte value per 2 bytes), and a list being built has up to as much
/// room again: measured, 32.0 for a list just past a power of two items, 16 to 22 for the other
/// dense or bomb shapes, under 8 for realistic ones (`--nocapture` prints each).
const K: usize = 34;

/// Counts each thread's live and peak heap bytes, so the cases can run in parallel.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every call is forwarded to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grow(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        shrink(layout.size());
    }

    // A reallocation is one block changing size (large ones are remapped, not copied), so the
    // peak sees the larger of the two sizes, not both.
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak of bytes allocated by `parse` on this thread, the parsed value included.
fn peak_of<T>(parse: impl FnOnce() -> T) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let parsed = parse();
    let peak = PEAK.with(Cell::get) - base;
    drop(parsed);
    peak
}

/// Roughly `bytes` of text: `item(i)` repeated, joined by `separator`, inside `open`/`close`.
fn repeated(open: &str, item: impl Fn(usize) -> String, separator: &str, close: &str, bytes: usize) -> String {
    let mut text = String::from(open);
    let mut i = 0;
    while text.len() < bytes {
        if i > 0 {
            text.push_str(separator);
        }
        text.push_str(&item(i));
        i += 1;
    }
    text.push_str(close);
    text
}

/// `levels` nested lists around `inner`, in flow style (valid JSON and YAML).
fn nested(levels: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels))
}

/// `count` copies of `item`, comma-separated, in a list under key `a`.
fn list_of(count: usize, item: &str, json: bool) -> String {
    let items = vec![item; count].join(",");
    if json {
        format!("{{\"a\":[{items}]}}")
    } else {
        format!("a: [{items}]\n")
    }
}

const SIZE: usize = 1 << 20;

/// What the budget must make of a document.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// A realistic document, or a dense one within the budget: parsed.
    Parsed,
    /// A bomb: refused.
    Refused,
}
use Outcome::{Parsed, Refused};

fn json_documents() -> Vec<(&'static str, Outcome, String)> {
    vec![
        (
            "many small keys, pretty",
            Parsed,
            repeated("{\n", |i| format!("  \"k{i}\": {}", i % 10), ",\n", "\n}", SIZE),
        ),
        (
            "many small keys, compact",
            Parsed,
            repeated("{", |i| format!("\"{i:x}\":0"), ",", "}", SIZE),
        ),
        (
            "many empty values",
            Parsed,
            repeated("{", |i| format!("\"{i:x}\":[]"), ",", "}", SIZE),
        ),
        ("list of digits", Parsed, list_of(SIZE / 2, "0", true)),
        // One item past a power of two, where a growing list has the most spare room.
        (
            "list of digits, one past 2^19",
            Parsed,
            list_of((1 << 19) + 1, "0", true),
        ),
        ("list of empty lists", Parsed, list_of(SIZE / 3, "[]", true)),
        ("list of empty dicts", Parsed, list_of(SIZE / 3, "{}", true)),
        ("list of nulls", Parsed, list_of(SIZE / 5, "null", true)),
        ("list of one-entry dicts", Refused, list_of(SIZE / 8, "{\"\":0}", true)),
        (
            "deep nesting, many times",
            Parsed,
            repeated("{\"a\":[", |_| nested(120, "0"), ",", "]}", SIZE),
        ),
        (
            "deep dicts",
            Refused,
            repeated(
                "{\"a\":[",
                |_| format!("{}0{}", "{\"k\":".repeat(120), "}".repeat(120)),
                ",",
                "]}",
                SIZE,
            ),
        ),
        (
            "one long string",
            Parsed,
            format!("{{\"a\": \"{}\"}}", "x".repeat(SIZE)),
        ),
        (
            "long strings",
            Parsed,
            repeated("{", |i| format!("\"{i}\": \"{}\"", "y".repeat(1000)), ",", "}", SIZE),
        ),
        ("escaped strings", Parsed, list_of(SIZE / 10, "\"\\u00e9\\n\"", true)),
        (
            "numbers",
            Parsed,
            repeated(
                "{\"a\":[",
                |i| format!("{i}.5e-3,{}", i as i128 * 1_000_000_007),
                ",",
                "]}",
                SIZE,
            ),
        ),
        (
            "an index",
            Parsed,
            repeated(
                "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {\n",
                |i| format!("    \"model.layers.{i}.mlp.down_proj.weight\": \"model-00001-of-00002.safetensors\""),
                ",\n",
                "\n}}",
                SIZE,
            ),
        ),
        (
            "id2label",
            Parsed,
            repeated(
                "{\"id2label\": {\n",
                |i| format!("    \"{i}\": \"LABEL_{i}\""),
                ",\n",
                "\n}}",
                SIZE,
            ),
        ),
    ]
}

fn yaml_documents() -> Vec<(&'static str, Outcome, String)> {
    vec![
        (
            "many small keys",
            Parsed,
            repeated("", |i| format!("k{i}: {}", i % 10), "\n", "\n", SIZE),
        ),
        (
            "many null keys, flow",
            Refused,
            repeated("{", |i| format!("k{i:x}"), ",", "}", SIZE),
        ),
        (
            "list of digits, block",
            Parsed,
            repeated("a:\n", |_| "- 0".into(), "\n", "\n", SIZE),
        ),
        ("list of digits, flow", Parsed, list_of(SIZE / 2, "0", false)),
        (
            "list of digits, one past 2^19",
            Parsed,
            list_of((1 << 19) + 1, "0", false),
        ),
        ("list of empty lists", Parsed, list_of(SIZE / 3, "[]", false)),
        ("list of one-entry maps", Refused, list_of(SIZE / 4, "{a}", false)),
        (
            "deep block nesting",
            Parsed,
            repeated(
                "",
                |i| {
                    (0..100)
                        .map(|d| format!("{}k{}:", "  ".repeat(d), if d == 0 { i } else { 0 }))
                        .collect::<Vec<_>>()
                        .join("\n")
                        + " 1"
                },
                "\n",
                "\n",
                SIZE,
            ),
        ),
        (
            "deep flow nesting, many times",
            Parsed,
            repeated("a: [", |_| nested(120, "0"), ",", "]\n", SIZE),
        ),
        ("one long string", Parsed, format!("a: \"{}\"\n", "x".repeat(SIZE))),
        (
            "a long literal block",
            Parsed,
            format!("a: |\n{}", repeated("", |_| "  line".into(), "\n", "\n", SIZE)),
        ),
        (
            "a state index",
            Parsed,
            repeated(
                "metadata:\n  state_index:\n",
                |i| format!("    layers.{i}.mlp.layer_1.weight/weights: model_0.safetensors"),
                "\n",
                "\n",
                SIZE,
            ),
        ),
        (
            "anchors everywhere",
            Refused,
            repeated("a: [", |i| format!("&a{i} [0]"), ",", "]\n", SIZE),
        ),
        (
            "aliases of a block config",
            Parsed,
            format!(
                "block: &b {{mixer: {{type: attention, heads: 32, rotary: {{type: default, theta: 10000.0}}}}, mlp: {{intermediate_size: 14336}}}}\nblocks: {}",
                repeated("[", |_| "*b".into(), ", ", "]\n", 400)
            ),
        ),
        (
            "aliases of a small list",
            Refused,
            format!(
                "a: &a [1, 2, 3]\nb: {}",
                repeated("[", |_| "*a".into(), ",", "]\n", SIZE)
            ),
        ),
        (
            "aliases of a long string",
            Refused,
            format!(
                "s: &s {}\nb: {}",
                "x".repeat(6000),
                repeated("[", |_| "*s".into(), ",", "]\n", SIZE)
            ),
        ),
        (
            "aliases of aliases",
            Refused,
            (1..20).fold("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_string(), |doc, i| {
                doc + &format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", "))
            }) + &repeated("pad: [", |_| "0".into(), ",", "]\n", SIZE),
        ),
        (
            "merges",
            Refused,
            format!(
                "base: &b {}\n{}",
                repeated("{", |i| format!("k{i}: {i}"), ", ", "}", SIZE / 2),
                repeated("", |i| format!("m{i}: {{<<: *b}}"), "\n", "\n", SIZE / 2)
            ),
        ),
    ]
}

#[rstest]
#[case::json("json")]
#[case::yaml("yaml")]
fn peak_parse_memory_is_bounded_by_the_text(#[case] language: &str) {
    let documents = match language {
        "json" => json_documents(),
        _ => yaml_documents(),
    };
    let mut wrong = Vec::new();
    for (shape, expected, text) in &documents {
        let mut outcome = Parsed;
        let peak = peak_of(|| {
            let parsed = match language {
                "json" => Value::from_json_str(text),
                _ => Value::from_yaml_str(text),
            };
            if parsed.is_err() {
                outcome = Refused;
            }
            parsed
        });
        let ratio = peak as f64 / text.len() as f64;
        println!(
            "{language} {shape}: {} bytes, {outcome:?}, peak {peak} ({ratio:.1}x)",
            text.len()
        );
        // Within the floor, a small document may take up to a megabyte whatever its length.
        if peak > K * text.len().max(SIZE) {
            wrong.push(format!("{shape}: peak {ratio:.1}x the text"));
        }
        if outcome != *expected {
            wrong.push(format!("{shape}: {outcome:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{language}: {wrong:#?}");
}
