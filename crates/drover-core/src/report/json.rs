//! The JSON format: the [`Plan`] as serialised, schema `drover.dev/plan/v1`
//! (documented in `docs/plan-schema.md`).

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use crate::plan::Plan;

/// Pretty-printed JSON with a trailing newline, escaped as [`to_string_pretty`] does.
pub fn render(plan: &Plan) -> String {
    let mut s = to_string_pretty(plan);
    s.push('\n');
    s
}

/// Pretty-printed JSON in which C1 control characters and invisible or reordering
/// characters ([`crate::diag::is_deceptive`]) are `\uXXXX` escapes, as serde_json
/// already writes C0 controls: the same JSON value, which can be printed to a
/// terminal (U+009B is a CSI to many) and reviewed without hiding anything.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, Escaping(PrettyFormatter::new()));
    value
        .serialize(&mut ser)
        .expect("plain data always serialises");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// serde_json's pretty formatter, with more characters escaped in strings.
struct Escaping<'a>(PrettyFormatter<'a>);

fn escaped(c: char) -> bool {
    c.is_control() || crate::diag::is_deceptive(c)
}

impl Formatter for Escaping<'_> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some((i, c)) = rest.char_indices().find(|(_, c)| escaped(*c)) {
            w.write_all(&rest.as_bytes()[..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_the_first_field() {
        let plan = Plan {
            schema: crate::plan::PLAN_SCHEMA.into(),
            fleet: "f".into(),
            namespace: "n".into(),
            base: None,
            head: None,
            stages: vec![],
            prune: vec![],
            summary: Default::default(),
            verdicts: vec![],
            head_signature: None,
            plan_digest: None,
            companions: vec![],
            config_files: vec![],
            config_maps: vec![],
        };
        let s = render(&plan);
        assert!(
            s.starts_with("{\n  \"schema\": \"drover.dev/plan/v1\""),
            "{s}"
        );
        let back: Plan = serde_json::from_str(&s).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn c1_bidi_and_zero_width_characters_are_escaped_and_the_value_is_unchanged() {
        let v = serde_json::json!({"k\u{202e}": ["a\u{9b}31m", "b\u{200b}", "c\u{e0041}", "d\u{1b}", "plain é 🦀"]});
        let s = to_string_pretty(&v);
        assert!(!s.chars().any(|c| escaped(c) && c != '\n'), "{s}");
        assert!(
            s.contains("a\\u009b31m") && s.contains("\\udb40\\udc41") && s.contains("plain é 🦀"),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
        assert_eq!(
            to_string_pretty(&serde_json::json!({"a": [1, {"b": null}]})),
            serde_json::to_string_pretty(&serde_json::json!({"a": [1, {"b": null}]})).unwrap()
        );
    }
}
