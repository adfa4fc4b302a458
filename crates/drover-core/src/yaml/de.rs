//! Deserialising typed documents from the scanned [`Node`] tree, so that the checks
//! (limits, duplicate keys, positions) and the values all come from one parse.
//!
//! Owns: the YAML 1.2 core-schema reading of scalars, field paths of errors.
//! Must not: parse text (that is [`super::scan`]).
//!
//! Hand-rolled because no maintained crate deserialises yaml-rust2's events: serde_yaml
//! runs its own parser (libyaml), and serde-saphyr another (granit-parser); either would
//! be a second reading of the text. Scalars resolve as serde_yaml 0.9 resolved them,
//! so what was accepted before is read the same way: plain `~`, `null`, empty are null;
//! `true`/`false` (any of three cases) are booleans; decimal, `0x`, `0o`, `0b`
//! integers (a leading zero makes a string); finite floats, `.inf`, `.nan`; else a
//! string. Quoted and block scalars are always strings.

use std::fmt;
use std::rc::Rc;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};

use super::{CoreTag, Node, join_index, join_key};

/// Why a document does not deserialise, and where: `path` is the field path of the
/// node that failed (its key's path for an unknown field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    /// `None` until the innermost node that saw the error names itself.
    pub path: Option<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            path: None,
        }
    }
}

impl Error {
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
        }
        self
    }
}

/// Deserialises `T` from the root node of a document.
///
/// # Errors
/// The first type error, unknown or missing field, with the path of its node.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, Error> {
    T::deserialize(NodeDe { node, path: "" }).map_err(|e| e.at(""))
}

/// What a scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
enum Resolved<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    F64(f64),
    Str(&'a str),
}

fn parse_null(v: &str) -> bool {
    matches!(v, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// `0123`: digits after a leading zero are a string in YAML 1.2.
fn leading_zero_digits(v: &str) -> bool {
    let d = v.strip_prefix(['-', '+']).unwrap_or(v);
    d.len() > 1 && d.starts_with('0') && d[1..].bytes().all(|b| b.is_ascii_digit())
}

/// An integer in one of the core schema's notations, as the widest type holds it.
fn parse_int(v: &str) -> Option<Resolved<'static>> {
    let (neg, body) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else {
        if leading_zero_digits(v) {
            return None;
        }
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if !neg {
        return Some(match u64::try_from(magnitude) {
            Ok(u) => Resolved::U64(u),
            Err(_) => Resolved::U128(magnitude),
        });
    }
    // The magnitude of i128::MIN is one more than i128::MAX.
    let value = if magnitude == i128::MAX as u128 + 1 {
        i128::MIN
    } else {
        -(i128::try_from(magnitude).ok()?)
    };
    Some(match i64::try_from(value) {
        Ok(i) => Resolved::I64(i),
        Err(_) => Resolved::I128(value),
    })
}

fn parse_float(v: &str) -> Option<f64> {
    let body = v.strip_prefix('+').unwrap_or(v);
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    if leading_zero_digits(v) || body.starts_with(['+', '-']) && v.starts_with('+') {
        return None;
    }
    // Rust also reads `inf`, `NaN`, `infinity`: YAML does not.
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    body.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn resolve(value: &str, plain: bool, tag: Option<CoreTag>) -> Result<Resolved<'_>, Error> {
    let bad = |what: &str| {
        Err(de::Error::custom(format!(
            "`{value}` is not {what} although it is tagged so"
        )))
    };
    match tag {
        Some(CoreTag::Str) => return Ok(Resolved::Str(value)),
        Some(CoreTag::Null) => {
            return if parse_null(value) {
                Ok(Resolved::Null)
            } else {
                bad("null")
            };
        }
        Some(CoreTag::Bool) => {
            return parse_bool(value)
                .map(Resolved::Bool)
                .map_or(bad("a boolean"), Ok);
        }
        Some(CoreTag::Int) => return parse_int(value).map_or(bad("an integer"), Ok),
        Some(CoreTag::Float) => {
            return match parse_int(value) {
                Some(_) => value.parse::<f64>().map(Resolved::F64).or(bad("a float")),
                None => parse_float(value)
                    .map(Resolved::F64)
                    .map_or(bad("a float"), Ok),
            };
        }
        Some(CoreTag::Map | CoreTag::Seq) => return bad("a collection"),
        None => {}
    }
    if !plain {
        return Ok(Resolved::Str(value));
    }
    if parse_null(value) {
        return Ok(Resolved::Null);
    }
    if let Some(b) = parse_bool(value) {
        return Ok(Resolved::Bool(b));
    }
    if let Some(i) = parse_int(value) {
        return Ok(i);
    }
    if let Some(f) = parse_float(value) {
        return Ok(Resolved::F64(f));
    }
    Ok(Resolved::Str(value))
}

fn unexpected<'a>(r: &'a Resolved<'a>) -> Unexpected<'a> {
    match r {
        Resolved::Null => Unexpected::Unit,
        Resolved::Bool(b) => Unexpected::Bool(*b),
        Resolved::U64(u) => Unexpected::Unsigned(*u),
        Resolved::I64(i) => Unexpected::Signed(*i),
        Resolved::U128(_) | Resolved::I128(_) => Unexpected::Other("integer past 64 bits"),
        Resolved::F64(f) => Unexpected::Float(*f),
        Resolved::Str(s) => Unexpected::Str(s),
    }
}

/// A node with its field path.
struct NodeDe<'a> {
    node: &'a Node,
    path: &'a str,
}

impl NodeDe<'_> {
    fn invalid(&self, exp: &dyn de::Expected) -> Error {
        let e = match self.node {
            Node::Scalar { value, plain, tag } => match resolve(value, *plain, *tag) {
                Ok(r) => de::Error::invalid_type(unexpected(&r), exp),
                Err(e) => e,
            },
            Node::Seq(_) => de::Error::invalid_type(Unexpected::Seq, exp),
            Node::Map(_) => de::Error::invalid_type(Unexpected::Map, exp),
        };
        e.at(self.path)
    }

    /// The resolved scalar, or an invalid-type error for a collection.
    fn scalar(&self, exp: &dyn de::Expected) -> Result<Resolved<'_>, Error> {
        match self.node {
            Node::Scalar { value, plain, tag } => {
                resolve(value, *plain, *tag).map_err(|e: Error| e.at(self.path))
            }
            _ => Err(self.invalid(exp)),
        }
    }

    /// An empty plain scalar reads as an empty collection, as serde_yaml read it.
    fn is_empty_scalar(&self) -> bool {
        matches!(self.node, Node::Scalar { value, plain: true, tag: None } if value.is_empty())
    }

    fn visit_resolved<'de, V: Visitor<'de>>(
        &self,
        r: Resolved<'_>,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match r {
            Resolved::Null => visitor.visit_unit(),
            Resolved::Bool(b) => visitor.visit_bool(b),
            Resolved::U64(u) => visitor.visit_u64(u),
            Resolved::I64(i) => visitor.visit_i64(i),
            Resolved::U128(u) => visitor.visit_u128(u),
            Resolved::I128(i) => visitor.visit_i128(i),
            Resolved::F64(f) => visitor.visit_f64(f),
            Resolved::Str(s) => visitor.visit_str(s),
        }
    }

    fn int<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = self.scalar(&visitor)?;
        match r {
            Resolved::U64(_) | Resolved::I64(_) | Resolved::U128(_) | Resolved::I128(_) => self
                .visit_resolved(r, visitor)
                .map_err(|e: Error| e.at(self.path)),
            _ => Err(self.invalid(&visitor)),
        }
    }
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path;
        match self.node {
            Node::Scalar { value, plain, tag } => {
                let r = resolve(value, *plain, *tag).map_err(|e: Error| e.at(path))?;
                self.visit_resolved(r, visitor)
            }
            Node::Seq(items) => visitor.visit_seq(Seq {
                items,
                next: 0,
                path,
            }),
            Node::Map(entries) => visitor.visit_map(Map {
                entries,
                next: 0,
                path,
                value: None,
            }),
        }
        .map_err(|e: Error| e.at(path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar(&visitor)? {
            Resolved::Bool(b) => visitor.visit_bool(b).map_err(|e: Error| e.at(self.path)),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.int(v)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let f = match self.scalar(&visitor)? {
            Resolved::F64(f) => f,
            Resolved::U64(u) => u as f64,
            Resolved::I64(i) => i as f64,
            Resolved::U128(u) => u as f64,
            Resolved::I128(i) => i as f64,
            _ => return Err(self.invalid(&visitor)),
        };
        visitor.visit_f64(f).map_err(|e: Error| e.at(self.path))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    /// Any scalar, plain or quoted, reads as its text: `tag: 1.10` is the string
    /// "1.10" where a string is wanted, as it was with serde_yaml.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Scalar { value, tag, .. } => {
                if matches!(tag, Some(t) if *t != CoreTag::Str) {
                    // `!!int 5` where a string is wanted: refuse rather than guess.
                    return Err(self.invalid(&visitor));
                }
                visitor.visit_str(value).map_err(|e: Error| e.at(self.path))
            }
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        Err(self.invalid(&visitor))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        Err(self.invalid(&visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path;
        match self.node {
            Node::Scalar { value, plain, tag }
                if matches!(resolve(value, *plain, *tag), Ok(Resolved::Null)) =>
            {
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
        .map_err(|e: Error| e.at(path))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar(&visitor)? {
            Resolved::Null => visitor.visit_unit().map_err(|e: Error| e.at(self.path)),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let path = self.path;
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: Error| e.at(path))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path;
        match self.node {
            Node::Seq(items) => visitor.visit_seq(Seq {
                items,
                next: 0,
                path,
            }),
            _ if self.is_empty_scalar() => visitor.visit_seq(Seq {
                items: &[],
                next: 0,
                path,
            }),
            _ => return Err(self.invalid(&visitor)),
        }
        .map_err(|e: Error| e.at(path))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path;
        match self.node {
            Node::Map(entries) => visitor.visit_map(Map {
                entries,
                next: 0,
                path,
                value: None,
            }),
            _ if self.is_empty_scalar() => visitor.visit_map(Map {
                entries: &[],
                next: 0,
                path,
                value: None,
            }),
            _ => return Err(self.invalid(&visitor)),
        }
        .map_err(|e: Error| e.at(path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    /// Unit variants only (`onFailure: halt`): the model has no other enums read
    /// this way (the untagged ones go through `deserialize_any`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let path = self.path;
        match self.node {
            Node::Scalar {
                value,
                tag: None | Some(CoreTag::Str),
                ..
            } => {
                let d: de::value::StrDeserializer<'_, Error> = value.as_str().into_deserializer();
                visitor.visit_enum(d).map_err(|e: Error| e.at(path))
            }
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    items: &'a [Rc<Node>],
    next: usize,
    path: &'a str,
}

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.get(self.next) else {
            return Ok(None);
        };
        let path = join_index(self.path, self.next);
        self.next += 1;
        seed.deserialize(NodeDe {
            node: item,
            path: &path,
        })
        .map(Some)
        .map_err(|e: Error| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

struct Map<'a> {
    entries: &'a [(String, Rc<Node>)],
    next: usize,
    path: &'a str,
    /// The entry whose key was just read.
    value: Option<&'a (String, Rc<Node>)>,
}

impl<'de> MapAccess<'de> for Map<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        self.value = Some(entry);
        let path = join_key(self.path, &entry.0);
        seed.deserialize(Key(&entry.0))
            .map(Some)
            .map_err(|e: Error| e.at(&path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, node)) = self.value.take() else {
            return Err(de::Error::custom("a mapping value was read before its key"));
        };
        let path = join_key(self.path, key);
        seed.deserialize(NodeDe { node, path: &path })
            .map_err(|e: Error| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

/// A mapping key: always its text (JSON objects and the model only have string keys).
struct Key<'a>(&'a str);

impl<'de> Deserializer<'de> for Key<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan;
    use super::*;
    use crate::limits::LIMITS;
    use serde_json::{Value, json};

    fn read<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
        let docs = scan("t.yaml", text, &LIMITS).expect("scans");
        from_node(docs[0].root.as_deref().expect("a root"))
    }

    #[test]
    fn plain_scalars_resolve_by_the_core_schema_and_quoted_ones_stay_strings() {
        let v: Value = read(
            "a: ~\nb: null\nc:\nd: true\ne: False\nf: 10\ng: -3\nh: 0x10\ni: 0o17\nj: 0b11\nk: 0123\nl: 1.5\nm: 1e3\nn: '10'\no: \"true\"\np: 10%\nq: .inf\nr: nan\ns: !!str 5\nt: 1_000\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": null, "b": null, "c": null, "d": true, "e": false, "f": 10, "g": -3,
                   "h": 16, "i": 15, "j": 3, "k": "0123", "l": 1.5, "m": 1000.0, "n": "10",
                   "o": "true", "p": "10%", "q": null, "r": "nan", "s": "5", "t": "1_000"}),
        );
    }

    #[test]
    fn a_string_field_takes_any_scalar_as_text() {
        #[derive(serde::Deserialize, Debug)]
        struct S {
            a: String,
            b: String,
            c: Option<String>,
        }
        let s: S = read("a: 1.10\nb: true\nc: ~\n").unwrap();
        assert_eq!((s.a.as_str(), s.b.as_str(), s.c), ("1.10", "true", None));
    }

    #[test]
    fn errors_name_the_field_path() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "only deserialised")]
        struct P {
            port: i64,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "only deserialised")]
        struct S {
            ports: Vec<P>,
        }
        let e = read::<S>("ports:\n  - port: '80'\n").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("ports[0].port"));
        assert_eq!(e.message, "invalid type: string \"80\", expected i64");
        let e = read::<S>("ports:\n  - prot: 80\n").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("ports[0].prot"));
        assert!(e.message.starts_with("unknown field `prot`"), "{e}");
        let e = read::<S>("ports:\n  - {}\n").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("ports[0]"));
        assert_eq!(e.message, "missing field `port`");
        let e =
            read::<S>("ports:\n  - port: 340282366920938463463374607431768211457\n").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("ports[0].port"));
    }

    #[test]
    fn aliases_read_their_anchor_s_node() {
        let v: Value = read("a: &x {b: [1, 2]}\nc: *x\n").unwrap();
        assert_eq!(v, json!({"a": {"b": [1, 2]}, "c": {"b": [1, 2]}}));
    }

    #[test]
    fn tags_outside_the_core_schema_are_refused_while_scanning() {
        let e = scan("t.yaml", "a: !foo bar\n", &LIMITS).unwrap_err();
        assert!(
            e.message.contains("YAML tag `!foo` is not supported"),
            "{e}"
        );
        assert!(read::<Value>("a: !!int x\n").is_err());
        assert!(scan("t.yaml", "a: !!str [1]\n", &LIMITS).is_err());
    }
}
