//! Reading upstream manifests as kubectl reads them.
//!
//! Owns: turning a YAML (or JSON) stream into Kubernetes objects: documents split on
//! `---`, `kind: List` expanded, plain scalars resolved by YAML 1.1 as kubectl's
//! go-yaml v2 does (`yes` is a boolean, `0755` is 493), anchors, aliases and `<<`
//! merges expanded, null fields dropped (Kubernetes reads a null field as unset); and
//! removing what the API server adds to an object it returns. Must not: refuse what
//! kubectl would read one way only, or accept what it would read more than one way
//! (a plain key that is not a string, a timestamp, a duplicate key: all errors).

use std::collections::HashMap;

use serde_json::{Map, Value as JsonValue};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::ImportError;
use crate::yaml_scalar::{Plain, resolve_kubectl};

/// Documents nested deeper than this are refused.
const MAX_DEPTH: usize = 64;
/// Nodes one document may expand to, counting aliases by what they stand for.
const MAX_NODES: usize = 1_000_000;

/// One Kubernetes object of the input, and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `path:line` of the document (and the item, for a List).
    pub source: String,
    pub value: JsonValue,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }

    /// `Kind namespace/name`, or `Kind name` for a cluster-scoped object.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

enum Frame {
    Map {
        map: Map<String, JsonValue>,
        key: Option<Key>,
        /// Values of `<<` keys, merged in when the mapping ends.
        merges: Vec<(JsonValue, Marker)>,
        anchor: usize,
    },
    Seq {
        items: Vec<JsonValue>,
        anchor: usize,
    },
}

/// Reads every Kubernetes object in `text` (the contents of `path`).
///
/// # Errors
/// [`ImportError::ReadManifest`] naming the line and column of the first thing that
/// cannot be read exactly one way.
pub fn read_manifests(path: &str, text: &str) -> Result<Vec<Manifest>, ImportError> {
    let err = |m: Marker, message: String| ImportError::ReadManifest {
        path: path.to_string(),
        line: m.line(),
        column: m.col() + 1,
        message,
    };
    let mut parser = Parser::new_from_str(text);
    let mut out = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (JsonValue, usize)> = HashMap::new();
    let mut root: Option<JsonValue> = None;
    let mut doc_line = 1usize;
    let mut nodes = 0usize;
    loop {
        let (ev, mark) = parser
            .next_token()
            .map_err(|e| err(*e.marker(), format!("invalid YAML: {}", e.info())))?;
        // A finished node and its anchor, to attach to its parent.
        let finished: Option<(JsonValue, usize, usize)> = match ev {
            Event::StreamStart | Event::Nothing => None,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                doc_line = mark.line();
                root = None;
                anchors.clear();
                nodes = 0;
                None
            }
            Event::DocumentEnd => {
                if let Some(v) = root.take().filter(|v| !v.is_null()) {
                    push_document(path, doc_line, v, &mut out).map_err(|message| {
                        ImportError::ReadManifest {
                            path: path.to_string(),
                            line: doc_line,
                            column: 1,
                            message,
                        }
                    })?;
                }
                None
            }
            Event::MappingStart(anchor, ref tag) | Event::SequenceStart(anchor, ref tag) => {
                if let Some(t) = tag
                    && !collection_tag_ok(t)
                {
                    return Err(err(
                        mark,
                        format!("unsupported tag `{}{}`", t.handle, t.suffix),
                    ));
                }
                if frames.len() >= MAX_DEPTH {
                    return Err(err(mark, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                if let Some(Frame::Map { key: None, .. }) = frames.last() {
                    return Err(err(mark, "a mapping key must be a scalar".into()));
                }
                frames.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        map: Map::new(),
                        key: None,
                        merges: Vec::new(),
                        anchor,
                    }
                } else {
                    Frame::Seq {
                        items: Vec::new(),
                        anchor,
                    }
                });
                None
            }
            Event::MappingEnd => match frames.pop() {
                Some(Frame::Map {
                    mut map,
                    merges,
                    anchor,
                    ..
                }) => {
                    merge_into(&mut map, merges).map_err(|(m, msg)| err(m, msg))?;
                    // An explicit null unsets the key, merged or not.
                    map.retain(|_, v| !v.is_null());
                    Some((JsonValue::Object(map), anchor, 1))
                }
                _ => return Err(err(mark, "unbalanced mapping".into())),
            },
            Event::SequenceEnd => match frames.pop() {
                Some(Frame::Seq { items, anchor }) => Some((JsonValue::Array(items), anchor, 1)),
                _ => return Err(err(mark, "unbalanced sequence".into())),
            },
            Event::Alias(id) => {
                if let Some(Frame::Map { key: None, .. }) = frames.last() {
                    return Err(err(mark, "an alias cannot be a mapping key".into()));
                }
                let Some((v, size)) = anchors.get(&id) else {
                    return Err(err(mark, "an alias to an unknown anchor".into()));
                };
                Some((v.clone(), 0, *size))
            }
            Event::Scalar(value, style, anchor, tag) => {
                // A mapping key?
                if let Some(Frame::Map {
                    key: key @ None,
                    map,
                    ..
                }) = frames.last_mut()
                {
                    let plain = style == TScalarStyle::Plain && tag.is_none();
                    if plain && value != "<<" && resolve_kubectl(&value) != Plain::Str {
                        return Err(err(
                            mark,
                            format!(
                                "the key `{value}` is not a string to kubectl (YAML 1.1); quote it"
                            ),
                        ));
                    }
                    if map.contains_key(&value) {
                        return Err(err(mark, format!("duplicate key `{value}`")));
                    }
                    // `<<` marks a merge only when plain.
                    *key = Some(if plain && value == "<<" {
                        Key::Merge
                    } else {
                        Key::Name(value)
                    });
                    None
                } else {
                    let v = scalar(&value, style, tag.as_ref()).map_err(|m| err(mark, m))?;
                    Some((v, anchor, 1))
                }
            }
        };
        let Some((value, anchor, size)) = finished else {
            continue;
        };
        nodes = nodes.saturating_add(size);
        if nodes > MAX_NODES {
            return Err(err(
                mark,
                format!("the document expands to more than {MAX_NODES} nodes"),
            ));
        }
        if anchor > 0 {
            anchors.insert(anchor, (value.clone(), size.max(count_nodes(&value))));
        }
        match frames.last_mut() {
            None => root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, key, merges, ..
            }) => match key.take() {
                Some(Key::Merge) => merges.push((value, mark)),
                Some(Key::Name(k)) => {
                    map.insert(k, value);
                }
                None => return Err(err(mark, "a mapping value without a key".into())),
            },
        }
    }
    Ok(out)
}

/// A mapping key: a name, or a plain `<<`, whose value is merged in when the mapping
/// ends.
enum Key {
    Name(String),
    Merge,
}

fn collection_tag_ok(t: &Tag) -> bool {
    t.handle == "tag:yaml.org,2002:" && matches!(t.suffix.as_str(), "map" | "seq" | "omap")
}

/// A scalar value, as kubectl reads it.
fn scalar(value: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<JsonValue, String> {
    let resolved = match tag {
        Some(t) if t.handle == "tag:yaml.org,2002:" => match t.suffix.as_str() {
            "str" => return Ok(JsonValue::String(value.to_string())),
            "null" | "bool" | "int" | "float" => {
                let r = resolve_kubectl(value);
                let fits = matches!(
                    (t.suffix.as_str(), &r),
                    ("null", Plain::Null)
                        | ("bool", Plain::Bool(_))
                        | ("int", Plain::Int(_) | Plain::Uint(_))
                        | ("float", Plain::Float(_) | Plain::Int(_))
                );
                if !fits {
                    return Err(format!("`{value}` is not a valid !!{}", t.suffix));
                }
                r
            }
            other => return Err(format!("unsupported tag `!!{other}`")),
        },
        // `! text`: the non-specific tag, a string.
        Some(t) if t.handle == "!" && t.suffix.is_empty() => {
            return Ok(JsonValue::String(value.to_string()));
        }
        Some(t) => return Err(format!("unsupported tag `{}{}`", t.handle, t.suffix)),
        None if style != TScalarStyle::Plain => return Ok(JsonValue::String(value.to_string())),
        None => resolve_kubectl(value),
    };
    Ok(match resolved {
        Plain::Null => JsonValue::Null,
        Plain::Bool(b) => JsonValue::Bool(b),
        Plain::Int(i) => JsonValue::from(i),
        Plain::Uint(u) => JsonValue::from(u),
        Plain::Float(f) if !f.is_finite() => {
            return Err(format!(
                "`{value}` is not a finite number, which JSON (and so the API server) cannot hold"
            ));
        }
        // kubectl sends an integral float as an integer (`8`, not `8.0`).
        Plain::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => JsonValue::from(f as i64),
        Plain::Float(f) => {
            serde_json::Number::from_f64(f).map_or(JsonValue::Null, JsonValue::Number)
        }
        Plain::Timestamp => {
            return Err(format!(
                "`{value}` is a timestamp to kubectl (YAML 1.1), not a string; quote it"
            ));
        }
        Plain::Str => JsonValue::String(value.to_string()),
    })
}

/// `<<: *a` and `<<: [*a, *b]`: keys of the merged mappings that the mapping does not
/// set itself, earlier merges first (go-yaml v2's order).
fn merge_into(
    map: &mut Map<String, JsonValue>,
    merges: Vec<(JsonValue, Marker)>,
) -> Result<(), (Marker, String)> {
    for (value, mark) in merges {
        let sources = match value {
            JsonValue::Object(m) => vec![m],
            JsonValue::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    JsonValue::Object(m) => Ok(m),
                    _ => Err((mark, "`<<` merges mappings only".to_string())),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err((mark, "`<<` merges mappings only".into())),
        };
        for m in sources {
            for (k, v) in m {
                if !map.contains_key(&k) {
                    map.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

fn count_nodes(v: &JsonValue) -> usize {
    match v {
        JsonValue::Object(m) => 1 + m.values().map(count_nodes).sum::<usize>(),
        JsonValue::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// Adds a document's objects (a `List`'s items one by one) to `out`.
fn push_document(
    path: &str,
    line: usize,
    v: JsonValue,
    out: &mut Vec<Manifest>,
) -> Result<(), String> {
    let line = line.max(1);
    let source = format!("{path}:{line}");
    let JsonValue::Object(obj) = v else {
        return Err("a document must be a Kubernetes object (a mapping)".into());
    };
    let kind = obj.get("kind").and_then(JsonValue::as_str).unwrap_or("");
    if kind == "List" || (kind.ends_with("List") && obj.contains_key("items")) {
        let items = match obj.get("items") {
            Some(JsonValue::Array(a)) => a.clone(),
            None => Vec::new(),
            Some(_) => return Err(format!("the {kind}'s items must be a list")),
        };
        for (i, item) in items.into_iter().enumerate() {
            check_object(&item).map_err(|e| format!("item {i} of the {kind}: {e}"))?;
            out.push(Manifest {
                source: format!("{source} (item {i} of the {kind})"),
                value: item,
            });
        }
        return Ok(());
    }
    let v = JsonValue::Object(obj);
    check_object(&v)?;
    out.push(Manifest { source, value: v });
    Ok(())
}

fn check_object(v: &JsonValue) -> Result<(), String> {
    for field in ["apiVersion", "kind"] {
        if !v.get(field).is_some_and(JsonValue::is_string) {
            return Err(format!("missing `{field}`"));
        }
    }
    if !v
        .pointer("/metadata/name")
        .is_some_and(JsonValue::is_string)
    {
        return Err("missing `metadata.name`".into());
    }
    Ok(())
}

/// Removes what the API server adds to an object it returns: status, uid,
/// resourceVersion, generation, timestamps, managed fields, the last-applied and
/// template-generation annotations, and null fields.
pub fn strip_server_fields(v: &mut JsonValue) {
    drop_nulls(v);
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    obj.remove("status");
    if let Some(JsonValue::Object(meta)) = obj.get_mut("metadata") {
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(f);
        }
        if let Some(JsonValue::Object(a)) = meta.get_mut("annotations") {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a.remove("deprecated.daemonset.template.generation");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

/// Drops every null field at any depth (Kubernetes reads them as unset).
pub fn drop_nulls(v: &mut JsonValue) {
    match v {
        JsonValue::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        JsonValue::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Vec<JsonValue> {
        read_manifests("in.yaml", text)
            .unwrap()
            .into_iter()
            .map(|m| m.value)
            .collect()
    }

    #[test]
    fn plain_scalars_are_read_as_kubectl_reads_them() {
        let v = read(
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\ndata:\n  a: yes\n  b: '0755'\n  c: 0755\n  d: 1_000\n  e: 1.0\n  f: ~\n  g: \"on\"\n",
        );
        assert_eq!(
            v[0]["data"],
            json!({"a": true, "b": "0755", "c": 493, "d": 1000, "e": 1, "g": "on"})
        );
    }

    #[test]
    fn documents_lists_and_helm_comments_are_split_into_objects() {
        let text = "---\n# Source: chart/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n# Source: empty.yaml\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n";
        let m = read_manifests("helm.yaml", text).unwrap();
        let names: Vec<_> = m.iter().map(|m| (m.kind(), m.name())).collect();
        assert_eq!(
            names,
            [
                ("ServiceAccount", "a"),
                ("ConfigMap", "b"),
                ("ConfigMap", "c")
            ]
        );
        assert_eq!(m[0].source, "helm.yaml:1");
        assert_eq!(m[2].source, "helm.yaml:8 (item 1 of the List)");
    }

    #[test]
    fn anchors_aliases_and_merge_keys_expand() {
        let v = read(
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nbase: &b {p: 1, q: 2}\nuse:\n  <<: *b\n  q: 3\nlist: [*b]\n",
        );
        assert_eq!(v[0]["use"], json!({"q": 3, "p": 1}));
        assert_eq!(v[0]["list"], json!([{"p": 1, "q": 2}]));
    }

    #[test]
    fn what_kubectl_would_read_differently_is_refused_with_its_position() {
        for (text, want) in [
            ("a: 1\na: 2\n", "duplicate key `a`"),
            ("yes: 1\n", "the key `yes` is not a string"),
            ("a: 2001-12-14\n", "is a timestamp"),
            ("a: .inf\n", "not a finite number"),
            ("a: !custom x\n", "unsupported tag"),
            ("- 1\n", "must be a Kubernetes object"),
            ("kind: X\nmetadata: {name: a}\n", "missing `apiVersion`"),
        ] {
            let e = read_manifests("in.yaml", text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(
                e.starts_with("in.yaml:1:") || e.starts_with("in.yaml:2:"),
                "{e}"
            );
        }
    }

    #[test]
    fn null_fields_are_unset_and_server_fields_are_stripped() {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "1", "generation": 2,
                "annotations": {"deprecated.daemonset.template.generation": "2"}},
            "spec": {"template": {"metadata": {"creationTimestamp": null}}},
            "status": {"numberReady": 1}});
        strip_server_fields(&mut v);
        assert_eq!(
            v,
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a"},
                "spec": {"template": {"metadata": {}}}})
        );
        let r = read(
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nspec:\n  securityContext:\n  x: 1\n",
        );
        assert_eq!(r[0]["spec"], json!({"x": 1}));
    }
}
