//! The one parse of a YAML file: document boundaries, the node tree of every document,
//! the position of every field and the limits that protect everything after it.
//!
//! Owns: splitting a file into documents, building each document's [`Node`] tree
//! (which [`de`] deserialises: no second parser ever reads the text), the field-path
//! → position index used to point errors at a line and column, duplicate-key
//! detection, nesting depth and alias-expansion limits. Must not: interpret documents
//! (see [`crate::load`]).
//!
//! Why one parse: two parsers disagree at the edges (serde_yaml treated U+2028,
//! U+2029 and U+0085 in a comment as line breaks, the scanner did not), and then a
//! field hidden where one of them sees a comment is applied although every check ran
//! on the other's reading.

pub mod de;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

use super::diag::{Diagnostic, Pos};
use super::limits::Limits;

/// Field path → position of the key (mappings) or item (sequences).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PosIndex {
    map: HashMap<String, Pos>,
    /// Positions of scalar values, where they differ from their key's.
    values: HashMap<String, Pos>,
    /// Where the document starts; the fallback position.
    pub start: Pos,
}

impl PosIndex {
    /// Position of `field`, or of its nearest ancestor that exists in the file.
    pub fn pos(&self, field: &str) -> Pos {
        if let Some(p) = self.values.get(field) {
            return *p;
        }
        let mut f = field;
        loop {
            if let Some(p) = self.map.get(f) {
                return *p;
            }
            match parent_path(f) {
                Some(parent) => f = parent,
                None => return self.start,
            }
        }
    }

    /// Whether the exact field is present in the document.
    pub fn contains(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// Position of the key (or sequence item) `field` itself, not of its value; the
    /// nearest ancestor's when it is not in the file.
    pub fn key_pos(&self, field: &str) -> Pos {
        match self.map.get(field) {
            Some(p) => *p,
            None => self.pos(field),
        }
    }

    /// The deepest field at `pos`, if any (used to name the field of a parse error).
    pub fn field_at(&self, pos: Pos) -> Option<&str> {
        self.map
            .iter()
            .filter(|(_, p)| **p == pos)
            .map(|(k, _)| k.as_str())
            .max_by_key(|k| (k.len(), *k))
    }
}

fn parent_path(field: &str) -> Option<&str> {
    if field.is_empty() {
        return None;
    }
    let cut = field.rfind(['.', '[']).unwrap_or(0);
    Some(&field[..cut])
}

/// Appends a mapping key to a field path: `a.b`, or `a["x.y/z"]` for keys that are
/// not plain identifiers.
pub fn join_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// Appends a sequence index to a field path.
pub fn join_index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A node of a document as the parser read it. Aliases share the node their anchor
/// names (never copied), so the tree of an alias-heavy document stays as small as
/// its text; the expansion limit is enforced while scanning.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar {
        value: String,
        /// Plain scalars are resolved (null, bool, int, float, string); quoted and
        /// block scalars are always strings.
        plain: bool,
        /// The core-schema tag (`!!str`, `!!int`, ...), by its suffix.
        tag: Option<CoreTag>,
    },
    Seq(Vec<Rc<Node>>),
    /// Keys are scalars (complex keys are refused), unique, in document order.
    Map(Vec<(String, Rc<Node>)>),
}

/// The tags of the YAML core schema drover accepts; any other tag is refused, since
/// what it would mean is up to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreTag {
    Str,
    Int,
    Float,
    Bool,
    Null,
    Map,
    Seq,
}

impl CoreTag {
    fn parse(tag: &Tag) -> Option<CoreTag> {
        if tag.handle == "!" && tag.suffix.is_empty() {
            // The non-specific tag `!`: a string.
            return Some(CoreTag::Str);
        }
        if tag.handle != "tag:yaml.org,2002:" {
            return None;
        }
        Some(match tag.suffix.as_str() {
            "str" => CoreTag::Str,
            "int" => CoreTag::Int,
            "float" => CoreTag::Float,
            "bool" => CoreTag::Bool,
            "null" => CoreTag::Null,
            "map" => CoreTag::Map,
            "seq" => CoreTag::Seq,
            _ => return None,
        })
    }
}

/// One document of a file, as scanned.
#[derive(Debug, Clone)]
pub struct ScannedDoc {
    /// First line of the document's text (its `---` line if it has one).
    pub first_line: usize,
    /// One past its last line.
    pub end_line: usize,
    pub index: PosIndex,
    pub api_version: Option<(String, Pos)>,
    pub kind: Option<(String, Pos)>,
    /// `metadata.name`, when it is a plain scalar.
    pub name: Option<String>,
    /// A document with no content (a stray `---`, or only comments).
    pub empty: bool,
    /// Whether the root node is a mapping.
    pub root_is_mapping: bool,
    /// The document's node tree (`None` for an empty document).
    pub root: Option<Rc<Node>>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        keys: HashSet<String>,
        anchor: usize,
        start_count: usize,
        entries: Vec<(String, Rc<Node>)>,
    },
    Seq {
        path: String,
        next: usize,
        anchor: usize,
        start_count: usize,
        items: Vec<Rc<Node>>,
    },
}

/// Places a finished node: into the enclosing collection (a mapping's pending key
/// names it), or as the document's root.
fn attach(frames: &mut [Frame], root: &mut Option<Rc<Node>>, node: Rc<Node>) {
    match frames.last_mut() {
        None => *root = Some(node),
        Some(Frame::Map { key, entries, .. }) => {
            // The key was taken when the value started; it is kept for here.
            if let Some(k) = key.take() {
                entries.push((k, node));
            }
        }
        Some(Frame::Seq { items, .. }) => items.push(node),
    }
}

fn tag_of(
    tag: Option<&Tag>,
    pos: Pos,
    field: &str,
    err: &dyn Fn(Pos, &str, String) -> Diagnostic,
) -> Result<Option<CoreTag>, Diagnostic> {
    match tag {
        None => Ok(None),
        Some(t) => CoreTag::parse(t).map(Some).ok_or_else(|| {
            err(
                pos,
                field,
                format!(
                    "YAML tag `{}{}` is not supported (only the core schema's !!str, !!int, !!float, !!bool, !!null, !!map, !!seq)",
                    if t.handle == "tag:yaml.org,2002:" {
                        "!!"
                    } else {
                        t.handle.as_str()
                    },
                    t.suffix
                ),
            )
        }),
    }
}

/// Scans `text` (the contents of `path`) into documents.
///
/// # Errors
/// A diagnostic for the first syntax error, duplicate key, unsupported tag or limit
/// exceeded; the scan stops there, before any further work on the file.
pub fn scan(path: &str, text: &str, limits: &Limits) -> Result<Vec<ScannedDoc>, Diagnostic> {
    let err = |pos: Pos, field: &str, msg: String| Diagnostic::new(path, pos, field, msg);
    let mut parser = Parser::new_from_str(text);
    let mut docs: Vec<ScannedDoc> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut cur: Option<ScannedDoc> = None;
    let mut expanded: usize = 0;
    let mut anchor_sizes: HashMap<usize, usize> = HashMap::new();
    let mut anchors: HashMap<usize, Rc<Node>> = HashMap::new();
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(x) => x,
            Err(e) => {
                let m = e.marker();
                let pos = Pos {
                    line: m.line(),
                    column: m.col() + 1,
                };
                if e.info().contains("recursion limit") {
                    return Err(err(
                        pos,
                        "",
                        format!("nesting deeper than {} levels", limits.max_depth),
                    ));
                }
                return Err(err(pos, "", format!("invalid YAML: {}", e.info())));
            }
        };
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                if docs.len() >= limits.max_documents_per_file {
                    return Err(err(
                        pos,
                        "",
                        format!(
                            "more than {} documents in one file",
                            limits.max_documents_per_file
                        ),
                    ));
                }
                let index = PosIndex {
                    start: pos,
                    ..Default::default()
                };
                cur = Some(ScannedDoc {
                    first_line: pos.line,
                    end_line: pos.line,
                    index,
                    api_version: None,
                    kind: None,
                    name: None,
                    empty: true,
                    root_is_mapping: false,
                    root: None,
                });
                expanded = 0;
                anchor_sizes.clear();
                anchors.clear();
            }
            Event::DocumentEnd => {
                if let Some(d) = cur.take() {
                    docs.push(d);
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some(frame) = frames.pop() else {
                    return Err(err(pos, "", "invalid YAML: unbalanced collection".into()));
                };
                let (anchor, start_count, node) = match frame {
                    Frame::Map {
                        anchor,
                        start_count,
                        entries,
                        ..
                    } => (anchor, start_count, Node::Map(entries)),
                    Frame::Seq {
                        anchor,
                        start_count,
                        items,
                        ..
                    } => (anchor, start_count, Node::Seq(items)),
                };
                let node = Rc::new(node);
                if anchor > 0 {
                    anchor_sizes.insert(anchor, expanded - start_count);
                    anchors.insert(anchor, node.clone());
                }
                if let Some(doc) = cur.as_mut() {
                    attach(&mut frames, &mut doc.root, node);
                }
            }
            Event::Scalar(..)
            | Event::Alias(_)
            | Event::MappingStart(..)
            | Event::SequenceStart(..) => {
                let Some(doc) = cur.as_mut() else {
                    continue;
                };
                // Where does this node sit: a key, a value, a sequence item, the root?
                let mut node_path = String::new();
                let mut is_key = false;
                match frames.last_mut() {
                    None => {}
                    Some(Frame::Map {
                        path, key, keys, ..
                    }) => match key {
                        None => {
                            is_key = true;
                            let Event::Scalar(k, ..) = &ev else {
                                return Err(err(
                                    pos,
                                    path,
                                    "complex mapping keys are not supported".into(),
                                ));
                            };
                            if !keys.insert(k.clone()) {
                                let field = join_key(path, k);
                                return Err(err(pos, &field, format!("duplicate key `{k}`")));
                            }
                            if keys.len() == 1 {
                                // A block mapping's start mark sits after its first key;
                                // point the mapping (and a sequence item) at that key.
                                if let Some(p) = doc.index.map.get_mut(path.as_str())
                                    && pos < *p
                                {
                                    *p = pos;
                                }
                            }
                            let field = join_key(path, k);
                            doc.index.map.insert(field, pos);
                            *key = Some(k.clone());
                        }
                        Some(k) => {
                            node_path = join_key(path, k);
                        }
                    },
                    Some(Frame::Seq { path, next, .. }) => {
                        node_path = join_index(path, *next);
                        *next += 1;
                        doc.index.map.insert(node_path.clone(), pos);
                    }
                }
                doc.end_line = doc.end_line.max(pos.line + 1);
                let size = match &ev {
                    Event::Alias(id) => anchor_sizes.get(id).copied().unwrap_or(1),
                    _ => 1,
                };
                expanded = expanded.saturating_add(size);
                if expanded > limits.max_expanded_nodes {
                    return Err(err(
                        pos,
                        &node_path,
                        format!(
                            "document expands to more than {} nodes (YAML alias bomb?)",
                            limits.max_expanded_nodes
                        ),
                    ));
                }
                if is_key {
                    if let Event::Scalar(_, _, anchor, tag) = &ev {
                        if *anchor > 0 {
                            return Err(err(
                                pos,
                                &node_path,
                                "anchors on mapping keys are not supported".into(),
                            ));
                        }
                        if tag.is_some() {
                            return Err(err(
                                pos,
                                &node_path,
                                "tags on mapping keys are not supported".into(),
                            ));
                        }
                    }
                    continue;
                }
                let top_level = frames.len() == 1;
                let is_map_start = matches!(ev, Event::MappingStart(..));
                match ev {
                    Event::Scalar(value, style, anchor, tag) => {
                        let tag = tag_of(tag.as_ref(), pos, &node_path, &err)?;
                        if anchor > 0 {
                            anchor_sizes.insert(anchor, 1);
                        }
                        let plain = style == TScalarStyle::Plain;
                        if frames.is_empty() {
                            doc.empty = plain
                                && tag.is_none()
                                && (value == "~" || value.is_empty() || value == "null");
                        } else {
                            doc.empty = false;
                            doc.index.values.insert(node_path.clone(), pos);
                        }
                        if node_path == "metadata.name" {
                            doc.name = Some(value.clone());
                        }
                        if top_level {
                            if node_path == "apiVersion" {
                                doc.api_version = Some((value.clone(), pos));
                            } else if node_path == "kind" {
                                doc.kind = Some((value.clone(), pos));
                            }
                        }
                        let node = Rc::new(Node::Scalar { value, plain, tag });
                        if anchor > 0 {
                            anchors.insert(anchor, node.clone());
                        }
                        attach(&mut frames, &mut doc.root, node);
                    }
                    Event::Alias(id) => {
                        doc.empty = false;
                        // The parser refuses unknown anchors; an anchor still open (an
                        // alias inside its own node) is not in the table yet.
                        let Some(node) = anchors.get(&id).cloned() else {
                            return Err(err(
                                pos,
                                &node_path,
                                "an alias must follow its anchor's complete node in the same document"
                                    .into(),
                            ));
                        };
                        attach(&mut frames, &mut doc.root, node);
                    }
                    Event::MappingStart(anchor, tag) | Event::SequenceStart(anchor, tag) => {
                        let is_map = is_map_start;
                        let tag = tag_of(tag.as_ref(), pos, &node_path, &err)?;
                        let fits = match tag {
                            None => true,
                            Some(CoreTag::Map) => is_map,
                            Some(CoreTag::Seq) => !is_map,
                            Some(_) => false,
                        };
                        if !fits {
                            return Err(err(
                                pos,
                                &node_path,
                                format!(
                                    "a YAML tag that does not fit a {}",
                                    if is_map { "mapping" } else { "sequence" }
                                ),
                            ));
                        }
                        doc.empty = false;
                        if frames.is_empty() {
                            doc.root_is_mapping = is_map;
                        }
                        if frames.len() >= limits.max_depth {
                            return Err(err(
                                pos,
                                &node_path,
                                format!("nesting deeper than {} levels", limits.max_depth),
                            ));
                        }
                        let start_count = expanded;
                        frames.push(if is_map {
                            Frame::Map {
                                path: node_path,
                                key: None,
                                keys: HashSet::new(),
                                anchor,
                                start_count,
                                entries: Vec::new(),
                            }
                        } else {
                            Frame::Seq {
                                path: node_path,
                                next: 0,
                                anchor,
                                start_count,
                                items: Vec::new(),
                            }
                        });
                    }
                    Event::StreamStart
                    | Event::StreamEnd
                    | Event::DocumentStart
                    | Event::DocumentEnd
                    | Event::MappingEnd
                    | Event::SequenceEnd
                    | Event::Nothing => {}
                }
            }
        }
    }
    // Each document's text ends where the next begins.
    let total_lines = docs.last().map_or(0, |d| d.end_line);
    for i in 0..docs.len() {
        let next = docs
            .get(i + 1)
            .map(|d| d.first_line)
            .unwrap_or(total_lines + 1);
        docs[i].end_line = next;
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::super::limits::LIMITS;
    use super::*;

    #[test]
    fn indexes_fields_with_one_based_positions() {
        let docs = scan(
            "f.yaml",
            "kind: Daemon\nspec:\n  image: x\n  ports:\n    - name: a\n",
            &LIMITS,
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d.kind.as_ref().unwrap().0, "Daemon");
        // Scalars point at their value, collections at their key or first key.
        assert_eq!(
            d.index.pos("spec.image"),
            Pos {
                line: 3,
                column: 10
            }
        );
        assert_eq!(d.index.pos("spec.ports"), Pos { line: 4, column: 3 });
        assert_eq!(d.index.pos("spec.ports[0]"), Pos { line: 5, column: 7 });
        assert_eq!(
            d.index.pos("spec.ports[0].name"),
            Pos {
                line: 5,
                column: 13
            }
        );
        assert_eq!(d.index.pos("spec.missing"), Pos { line: 2, column: 1 });
    }

    #[test]
    fn splits_documents_by_their_lines() {
        let docs = scan("f.yaml", "a: 1\n---\nb: 2\n---\n", &LIMITS).unwrap();
        let non_empty: Vec<_> = docs.iter().filter(|d| !d.empty).collect();
        assert_eq!(non_empty.len(), 2);
        assert_eq!(non_empty[1].first_line, 2);
    }

    #[test]
    fn rejects_duplicate_keys() {
        let e = scan("f.yaml", "spec:\n  a: 1\n  a: 2\n", &LIMITS).unwrap_err();
        assert!(e.message.contains("duplicate key `a`"), "{e}");
        assert_eq!(e.pos.line, 3);
    }

    #[test]
    fn rejects_alias_bombs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let e = scan("bomb.yaml", &text, &LIMITS).unwrap_err();
        assert!(e.message.contains("alias bomb"), "{e}");
    }

    #[test]
    fn rejects_deep_nesting() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = scan("deep.yaml", &text, &LIMITS).unwrap_err();
        assert!(e.message.contains("nesting deeper than 64"), "{e}");
    }
}
