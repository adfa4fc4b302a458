//! YAML text that every reader reads the same: the one place drover writes YAML.
//!
//! Owns: turning a JSON value into block-style YAML (the layout serde_yaml used to
//! give: two-space indents, sequences flush with their key, `|` blocks for multi-line
//! text) where every string is quoted unless a YAML 1.1 reader (kubectl's go-yaml v2,
//! PyYAML), a YAML 1.2 reader and serde_yaml all read the plain text back as that same
//! string. Must not: decide what is written (render, diff and import do).
//!
//! Hand-rolled on purpose: serde_yaml 0.9 resolves by YAML 1.2 and leaves `yes`, `on`,
//! `1_000`, `12:30` and timestamps plain (kubectl reads them as booleans, numbers and
//! times), and writes U+2028 raw inside single quotes, where a YAML 1.1 reader folds it
//! into a space; yaml-rust2's emitter leaves `y`, `n`, `1_000` and `0b1010` plain and
//! has no hook to change that.

use serde_json::Value as JsonValue;

use super::yaml_scalar::needs_quotes;

/// One JSON value as a YAML document (no `---`), ending in a newline.
pub fn to_yaml(v: &JsonValue) -> String {
    let mut out = String::new();
    match v {
        JsonValue::Object(m) if !m.is_empty() => mapping(&mut out, m, 0),
        JsonValue::Array(a) if !a.is_empty() => sequence(&mut out, a, 0),
        scalar => {
            node_inline(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

/// Writes a non-empty mapping whose keys start at column `indent`; the first key
/// goes where the output currently is (after `- ` in a sequence item).
fn mapping(out: &mut String, m: &serde_json::Map<String, JsonValue>, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            push_indent(out, indent);
        }
        let key = key_text(k);
        let explicit = key.len() > 1000;
        if explicit {
            // A simple key may be at most 1024 characters; longer ones need `? `.
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            push_indent(out, indent);
            out.push(':');
        } else {
            out.push_str(&key);
            out.push(':');
        }
        match v {
            JsonValue::Object(c) if !c.is_empty() => {
                out.push('\n');
                push_indent(out, indent + 2);
                mapping(out, c, indent + 2);
            }
            JsonValue::Array(a) if !a.is_empty() => {
                out.push('\n');
                push_indent(out, indent);
                sequence(out, a, indent);
            }
            other => {
                out.push(' ');
                node_inline(out, other, indent);
                out.push('\n');
            }
        }
    }
}

/// Writes a non-empty sequence whose `- ` start at column `indent`; the first item
/// goes where the output currently is.
fn sequence(out: &mut String, a: &[JsonValue], indent: usize) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            push_indent(out, indent);
        }
        out.push_str("- ");
        match v {
            JsonValue::Object(c) if !c.is_empty() => mapping(out, c, indent + 2),
            JsonValue::Array(inner) if !inner.is_empty() => sequence(out, inner, indent + 2),
            other => {
                node_inline(out, other, indent);
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection, on the current line. `indent` is the column of
/// the key or `- ` it belongs to: a `|` block's lines go two further.
fn node_inline(out: &mut String, v: &JsonValue, indent: usize) {
    match v {
        JsonValue::Null => out.push_str("null"),
        JsonValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsonValue::Number(n) => out.push_str(&number_text(n)),
        JsonValue::String(s) => string(out, s, indent),
        JsonValue::Object(_) => out.push_str("{}"),
        JsonValue::Array(_) => out.push_str("[]"),
    }
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A JSON number in a form every reader takes for a number of the same kind: floats
/// always carry a `.` and a signed exponent (PyYAML's YAML 1.1 float needs both).
fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let s = n.to_string();
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m.to_string(), Some(e.to_string())),
        None => (s.clone(), None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
    } else {
        format!("{mantissa}.0")
    };
    match exp {
        None => mantissa,
        Some(e) if e.starts_with(['+', '-']) => format!("{mantissa}e{e}"),
        Some(e) => format!("{mantissa}e+{e}"),
    }
}

/// Characters that are printed as they are: printable, and neither a line break to
/// some reader (U+0085, U+2028, U+2029), a tab, nor a character that changes how the
/// text around it looks (bidi controls, zero-width characters, the BOM).
fn is_plain_char(c: char) -> bool {
    match c {
        ' '..='~' => true,
        '\u{0}'..='\u{9f}' => false,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' => false,
        '\u{2060}'..='\u{2069}' | '\u{FEFF}' => false,
        '\u{FFFE}' | '\u{FFFF}' => false,
        _ => true,
    }
}

/// How a string is written: plain, `'single'`, `"double"` (with escapes) or a `|`
/// block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn style_of(s: &str, allow_literal: bool) -> Style {
    if s.chars().any(|c| c != '\n' && !is_plain_char(c)) {
        return Style::Double;
    }
    if s.contains('\n') {
        return if allow_literal && literal_ok(s) {
            Style::Literal
        } else {
            Style::Double
        };
    }
    if plain_ok(s) {
        Style::Plain
    } else {
        Style::Single
    }
}

/// Whether `s` (one line of plain characters) may be written without quotes.
fn plain_ok(s: &str) -> bool {
    if s.is_empty() || needs_quotes(s) {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let b = s.as_bytes();
    let first = b[0];
    let followed_by_space = |i: usize| b.get(i + 1).is_none_or(|c| *c == b' ');
    match first {
        b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\''
        | b'"' | b'%' | b'@' | b'`' => return false,
        b'-' | b'?' | b':' if followed_by_space(0) => return false,
        _ => {}
    }
    for (i, c) in b.iter().enumerate() {
        match c {
            b':' if followed_by_space(i) => return false,
            b'#' if i > 0 && b[i - 1] == b' ' => return false,
            _ => {}
        }
    }
    true
}

/// Whether a multi-line string can be a `|` block that reads back exactly: some text,
/// no space before a line break, no trailing space.
fn literal_ok(s: &str) -> bool {
    !s.trim_matches('\n').is_empty() && !s.contains(" \n") && !s.ends_with(' ')
}

fn key_text(k: &str) -> String {
    let mut out = String::new();
    match style_of(k, false) {
        Style::Plain => out.push_str(k),
        Style::Single => single_quoted(&mut out, k),
        Style::Double | Style::Literal => double_quoted(&mut out, k),
    }
    out
}

fn string(out: &mut String, s: &str, indent: usize) {
    match style_of(s, true) {
        Style::Plain => out.push_str(s),
        Style::Single => single_quoted(out, s),
        Style::Double => double_quoted(out, s),
        Style::Literal => literal(out, s, indent + 2),
    }
}

fn single_quoted(out: &mut String, s: &str) {
    out.push('\'');
    out.push_str(&s.replace('\'', "''"));
    out.push('\'');
}

fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_plain_char(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
}

/// A `|` block: `|` with a chomping indicator (`-` no final line break, none for one,
/// `+` for more) and an indentation indicator when the text starts with a space or an
/// empty line; each line at `indent`, empty lines empty.
fn literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with([' ', '\n']) {
        out.push('2');
    }
    let trailing = s.len() - s.trim_end_matches('\n').len();
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            push_indent(out, indent);
            out.push_str(line);
        }
    }
    // The caller ends the value's line.
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_is_block_style_with_sequences_flush_with_their_key() {
        let v = json!({"a": [{"b": 1, "c": [1, 2]}, [], {}, [[1]]], "e": {}, "f": null, "g": 0.5, "i": -3, "j": true});
        assert_eq!(
            to_yaml(&v),
            "a:\n- b: 1\n  c:\n  - 1\n  - 2\n- []\n- {}\n- - - 1\ne: {}\nf: null\ng: 0.5\ni: -3\nj: true\n"
        );
    }

    #[test]
    fn strings_a_yaml_1_1_reader_would_misread_are_quoted() {
        let v = json!({"env": [{"name": "A", "value": "yes"}, {"name": "B", "value": "0755"}, {"name": "C", "value": "12:30"}]});
        assert_eq!(
            to_yaml(&v),
            "env:\n- name: A\n  value: 'yes'\n- name: B\n  value: '0755'\n- name: C\n  value: '12:30'\n"
        );
    }

    #[test]
    fn multi_line_text_is_a_literal_block_at_its_parents_indent_plus_two() {
        let v = json!({"data": {"a.conf": "[SERVICE]\n    Flush 1\n\nend\n", "b": "x\ny", "c": "x\n\n"}});
        assert_eq!(
            to_yaml(&v),
            "data:\n  a.conf: |\n    [SERVICE]\n        Flush 1\n\n    end\n  b: |-\n    x\n    y\n  c: |+\n    x\n\n"
        );
        let v = json!({"args": [" lead\nnext"]});
        assert_eq!(to_yaml(&v), "args:\n- |2-\n   lead\n  next\n");
    }

    #[test]
    fn invisible_and_line_breaking_characters_are_escaped() {
        let v = json!(["x\u{2028}y", "\u{202E}abc", "tab\there", "a \nb", "\u{85}"]);
        assert_eq!(
            to_yaml(&v),
            "- \"x\\u2028y\"\n- \"\\u202Eabc\"\n- \"tab\\there\"\n- \"a \\nb\"\n- \"\\x85\"\n"
        );
    }

    #[test]
    fn floats_carry_a_dot_and_a_signed_exponent() {
        assert_eq!(to_yaml(&json!(1e100)), "1.0e+100\n");
        assert_eq!(to_yaml(&json!(0.5)), "0.5\n");
        assert_eq!(to_yaml(&json!(2.0)), "2.0\n");
    }
}
