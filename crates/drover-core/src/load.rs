//! Loading: file bytes → typed documents, each with the positions of its fields.
//!
//! Owns: encoding checks, size limits, kind dispatch and turning serde errors into
//! diagnostics with file, line, column and field. Must not: read the filesystem or
//! git (the shell hands in [`SourceFile`]s) or check rules across documents.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use super::limits::Limits;
use super::model::{API_VERSION, DaemonSpec, Document, FleetSpec, NodeGroupSpec};
use super::yaml::de::{Error as DeError, from_node};
use super::yaml::{PosIndex, ScannedDoc, join_key, scan};

/// One fleet file as read from a working tree or a git tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Slash-separated path relative to the fleet root.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A document with where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub path: String,
    pub index: Arc<PosIndex>,
    pub value: T,
}

impl<T> Located<T> {
    /// A diagnostic pointing at `field` of this document.
    pub fn diag(&self, field: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.path.clone(), self.index.pos(field), field, message)
    }
}

/// Every document of the fleet that parsed, by kind.
#[derive(Debug, Clone, Default)]
pub struct LoadedFleet {
    pub fleets: Vec<Located<Document<FleetSpec>>>,
    pub groups: Vec<Located<Document<NodeGroupSpec>>>,
    pub daemons: Vec<Located<Document<DaemonSpec>>>,
    /// `(kind, name)` of documents that failed to parse, so that validation does not
    /// also report them as missing.
    pub failed: Vec<(String, String)>,
    /// The documents under `companions/`, in path order (see [`crate::companion`]).
    pub companions: Vec<crate::companion::RawCompanion>,
    /// Every file under `config/` by path, unparsed: what `spec.configFiles` entries
    /// read (see docs/config-files.md).
    pub config_files: std::collections::BTreeMap<String, Arc<[u8]>>,
}

const KINDS: [&str; 3] = ["Fleet", "NodeGroup", "Daemon"];

/// Top-level directories of a fleet that do not hold fleet documents: plain
/// Kubernetes manifests (`companions/`, read as companion objects, see
/// [`crate::companion`]) and config files (`config/`, read as bytes for
/// `spec.configFiles`).
pub const RESERVED_DIRS: [&str; 2] = ["companions", "config"];

/// The top-level directory that holds config files.
pub const CONFIG_DIR: &str = "config";

/// Whether `path` is a config file (under [`CONFIG_DIR`]): read as bytes, whatever
/// its name.
pub fn is_config_path(path: &str) -> bool {
    path.strip_prefix(CONFIG_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `path` (relative to the fleet root) is under a [`RESERVED_DIRS`] entry.
pub fn is_reserved(path: &str) -> bool {
    RESERVED_DIRS.iter().any(|d| {
        path.strip_prefix(d)
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Parses all files, except those under `config/` (kept as bytes, see
/// [`LoadedFleet::config_files`]); those under `companions/` are read as companion
/// objects. Documents that fail to parse produce diagnostics; the
/// rest are returned so validation can report every problem at once.
pub fn load(files: &[SourceFile], limits: &Limits) -> (LoadedFleet, Diagnostics) {
    let mut out = LoadedFleet::default();
    let mut diags = Diagnostics::default();
    if files.len() > limits.max_files {
        diags.push(Diagnostic::new(
            "",
            Pos::default(),
            "",
            format!(
                "the fleet has {} YAML files, more than the limit of {}",
                files.len(),
                limits.max_files
            ),
        ));
        return (out, diags);
    }
    let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    if total > limits.max_total_bytes {
        diags.push(Diagnostic::new(
            "",
            Pos::default(),
            "",
            format!(
                "the fleet's YAML files hold {total} bytes, more than the limit of {}",
                limits.max_total_bytes
            ),
        ));
        return (out, diags);
    }
    let mut sorted: Vec<&SourceFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for file in sorted {
        if is_config_path(&file.path) {
            out.config_files
                .insert(file.path.clone(), Arc::from(file.bytes.as_slice()));
        } else if !is_reserved(&file.path) || crate::companion::is_companion_path(&file.path) {
            load_file(file, limits, &mut out, &mut diags);
        }
    }
    (out, diags)
}

fn load_file(file: &SourceFile, limits: &Limits, out: &mut LoadedFleet, diags: &mut Diagnostics) {
    let path = file.path.as_str();
    let file_diag = |msg: String| Diagnostic::new(path, Pos::default(), "", msg);
    if file.bytes.len() as u64 > limits.max_file_bytes {
        diags.push(file_diag(format!(
            "file is {} bytes, more than the limit of {}",
            file.bytes.len(),
            limits.max_file_bytes
        )));
        return;
    }
    if file.bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        diags.push(
            Diagnostic::new(
                path,
                Pos { line: 1, column: 1 },
                "",
                "file starts with a UTF-8 byte order mark",
            )
            .with_hint(Some("save the file as UTF-8 without BOM".into())),
        );
        return;
    }
    let text = match std::str::from_utf8(&file.bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &file.bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let column = good.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            diags.push(Diagnostic::new(
                path,
                Pos { line, column },
                "",
                format!("file is not valid UTF-8 (byte {})", e.valid_up_to()),
            ));
            return;
        }
    };
    if text.contains('\0') {
        diags.push(file_diag("file contains a NUL byte".into()));
        return;
    }
    if let Some(d) = deceptive_character(path, text) {
        diags.push(d);
        return;
    }
    let docs = match scan(path, text, limits) {
        Ok(d) => d,
        Err(d) => {
            diags.push(d);
            return;
        }
    };
    if crate::companion::is_companion_path(path) {
        let raw = crate::companion::from_docs(path, docs, diags);
        out.companions.extend(raw);
        return;
    }
    for doc in docs.into_iter().filter(|d| !d.empty) {
        load_document(path, doc, out, diags);
    }
}

/// A character that makes a reader see another document than the parser does,
/// refused wherever it stands (comments and quoted scalars included; inside a
/// double-quoted scalar it can still be written as an escape, `\u2028`):
///
/// - a carriage return not followed by a line feed: YAML breaks the line there, a
///   terminal (`cat`, `git diff`) returns to the start of the line and overwrites
///   what came before, and `git diff` shows one line;
/// - NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR (U+0085, U+2028, U+2029): line
///   breaks for YAML 1.1 parsers and many editors, ordinary characters for YAML 1.2;
/// - bidirectional embedding, override and isolate controls (U+202A–U+202E,
///   U+2066–U+2069, the set rustc denies in source): they reorder what is shown;
/// - control characters outside YAML 1.2's printable set (C0 but tab, LF and CR;
///   DEL; C1 but NEL; U+FFFE, U+FFFF): a terminal acts on them.
fn deceptive_character(path: &str, text: &str) -> Option<Diagnostic> {
    let mut line = 1;
    let mut column = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let why = match c {
            '\r' if chars.peek() != Some(&'\n') => Some(
                "a carriage return not followed by a line feed (old Mac line endings?); save the file with LF or CRLF line endings",
            ),
            '\u{85}' | '\u{2028}' | '\u{2029}' => Some(
                "a Unicode line break (NEL, LINE or PARAGRAPH SEPARATOR) that some YAML readers and editors break lines at and others do not; use a plain line feed, or an escape inside a double-quoted string",
            ),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => Some(
                "a bidirectional text control, which makes the file display in another order than it is read; write it as an escape inside a double-quoted string if it is really wanted",
            ),
            // YAML 1.2's printable set leaves these out; libyaml refuses them and
            // yaml-rust2 does not, so drover refuses them itself.
            '\u{0}'..='\u{8}'
            | '\u{b}'..='\u{c}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'..='\u{84}'
            | '\u{86}'..='\u{9f}'
            | '\u{fffe}'
            | '\u{ffff}' => Some(
                "control characters are not allowed in YAML; write it as an escape inside a double-quoted string",
            ),
            _ => None,
        };
        if let Some(why) = why {
            return Some(Diagnostic::new(
                path,
                Pos { line, column },
                "",
                format!("the file contains U+{:04X}: {why}", c as u32),
            ));
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else if c != '\r' {
            column += 1;
        }
    }
    None
}

fn load_document(path: &str, doc: ScannedDoc, out: &mut LoadedFleet, diags: &mut Diagnostics) {
    let index = Arc::new(doc.index);
    let at = |field: &str, msg: String| Diagnostic::new(path, index.pos(field), field, msg);
    if !doc.root_is_mapping {
        diags.push(at(
            "",
            "a document must be a mapping with apiVersion, kind, metadata and spec".into(),
        ));
        return;
    }
    match &doc.api_version {
        None => {
            diags.push(at("apiVersion", "missing field `apiVersion`".into()));
            return;
        }
        Some((v, _)) if v != API_VERSION => {
            diags.push(at(
                "apiVersion",
                format!("unsupported apiVersion `{v}`, expected `{API_VERSION}`"),
            ));
            return;
        }
        Some(_) => {}
    }
    let kind = match &doc.kind {
        None => {
            diags.push(at("kind", "missing field `kind`".into()));
            return;
        }
        Some((k, _)) => k.clone(),
    };
    let Some(root) = doc.root.as_deref() else {
        return;
    };
    let ok = match kind.as_str() {
        "Fleet" => parse_into(path, root, &index, &mut out.fleets, diags),
        "NodeGroup" => parse_into(path, root, &index, &mut out.groups, diags),
        "Daemon" => parse_into(path, root, &index, &mut out.daemons, diags),
        other => {
            diags.push(
                at(
                    "kind",
                    format!("unknown kind `{other}`, expected one of Fleet, NodeGroup, Daemon"),
                )
                .with_hint(did_you_mean(other, KINDS)),
            );
            false
        }
    };
    if !ok {
        out.failed.push((kind, doc.name.unwrap_or_default()));
    }
}

fn parse_into<S: DeserializeOwned>(
    path: &str,
    root: &super::yaml::Node,
    index: &Arc<PosIndex>,
    into: &mut Vec<Located<Document<S>>>,
    diags: &mut Diagnostics,
) -> bool {
    match from_node::<Document<S>>(root) {
        Ok(value) => {
            into.push(Located {
                path: path.to_string(),
                index: index.clone(),
                value,
            });
            true
        }
        Err(e) => {
            diags.push(de_diagnostic(path, index, &e));
            false
        }
    }
}

/// Turns a deserialisation error into a diagnostic naming the field, with a hint for
/// unknown fields and variants.
fn de_diagnostic(path: &str, index: &PosIndex, e: &DeError) -> Diagnostic {
    let node = e.path.clone().unwrap_or_default();
    let mut msg = e.message.clone();
    let mut hint = None;
    let mut field = node.clone();
    let mut pos = index.pos(&node);
    if let Some(name) = backticked(&msg, "unknown field `") {
        // The error is raised at the key, whose path already ends in its name.
        pos = index.key_pos(&node);
        let expected = expected_names(&msg);
        hint = did_you_mean(&name, expected.iter().map(String::as_str)).or_else(|| {
            (!expected.is_empty()).then(|| format!("expected one of {}", expected.join(", ")))
        });
        msg = format!("unknown field `{name}`");
    } else if let Some(name) = backticked(&msg, "missing field `") {
        // Raised by the mapping that lacks it: point at the mapping's key, as
        // FLEET-FORMAT promises.
        field = join_key(&node, &name);
        pos = index.key_pos(&node);
    } else if let Some(variant) = backticked(&msg, "unknown variant `") {
        let expected = expected_names(&msg);
        hint = did_you_mean(&variant, expected.iter().map(String::as_str));
    }
    if msg.starts_with("data did not match any variant of untagged enum IntOrPercent") {
        msg = "expected an integer or a percentage like \"10%\"".into();
    } else if msg.starts_with("data did not match any variant of untagged enum QuantityValue") {
        msg = "expected a resource quantity like 100m or 64Mi".into();
    }
    Diagnostic::new(path, pos, field, msg).with_hint(hint)
}

fn backticked(msg: &str, lead: &str) -> Option<String> {
    let rest = msg.strip_prefix(lead)?;
    Some(rest.split('`').next()?.to_string())
}

fn expected_names(msg: &str) -> Vec<String> {
    let Some((_, tail)) = msg.split_once("expected ") else {
        return Vec::new();
    };
    tail.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::limits::LIMITS;
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn unknown_field_names_line_column_field_and_hint() {
        let (_, d) = load(
            &[file(
                "daemons/x.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: x}\nspec:\n  imgae: nginx\n",
            )],
            &LIMITS,
        );
        assert_eq!(d.len(), 1, "{d}");
        let e = &d.0[0];
        assert_eq!(e.pos, Pos { line: 5, column: 3 });
        assert_eq!(e.field, "spec.imgae");
        assert_eq!(e.message, "unknown field `imgae`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `image`?"));
    }

    #[test]
    fn second_document_keeps_its_own_line_numbers() {
        let text = "apiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {name: a}\nspec: {selector: {}}\n---\napiVersion: drover.dev/v1alpha1\nkind: NodeGroup\nmetadata: {name: b}\nspec:\n  selecter: {}\n";
        let (loaded, d) = load(&[file("g.yaml", text)], &LIMITS);
        assert_eq!(loaded.groups.len(), 1);
        assert_eq!(d.0[0].pos.line, 10, "{d}");
    }

    #[test]
    fn missing_field_points_at_its_parent_key() {
        let (_, d) = load(
            &[file(
                "daemons/x.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata:\n  labels: {a: b}\nspec:\n  args: [x]\n  ports:\n    - name: m\n",
            )],
            &LIMITS,
        );
        assert_eq!(d.len(), 1, "{d}");
        assert_eq!(d.0[0].field, "metadata.name");
        assert_eq!(d.0[0].pos, Pos { line: 3, column: 1 }, "{d}");
        let (_, d) = load(
            &[file(
                "daemons/x.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: x}\nspec:\n  args: [x]\n",
            )],
            &LIMITS,
        );
        assert_eq!(d.0[0].field, "spec.image");
        assert_eq!(d.0[0].pos, Pos { line: 4, column: 1 }, "{d}");
    }

    #[test]
    fn unknown_kind_suggests_the_right_one() {
        let (_, d) = load(
            &[file(
                "x.yaml",
                "apiVersion: drover.dev/v1alpha1\nkind: DaemonSett\nmetadata: {name: x}\nspec: {}\n",
            )],
            &LIMITS,
        );
        assert_eq!(d.0[0].hint.as_deref(), Some("did you mean `Daemon`?"));
        assert_eq!(d.0[0].pos.line, 2);
    }

    #[test]
    fn companions_and_config_directories_are_not_read_as_fleet_documents() {
        let (loaded, d) = load(
            &[
                file(
                    "companions/node-exporter/serviceaccount-node-exporter.yaml",
                    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: node-exporter}\n",
                ),
                file("config/falco/falco/falco.yaml", "rules: [\n"),
                file(
                    "companionsx/a.yaml",
                    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n",
                ),
            ],
            &LIMITS,
        );
        // Only the file outside the reserved directories is read, and refused.
        assert_eq!(d.len(), 1, "{d}");
        assert_eq!(d.0[0].path, "companionsx/a.yaml");
        assert!(loaded.fleets.is_empty());
        assert!(is_reserved("config/x"));
        assert!(!is_reserved("daemons/config.yaml"));
        assert!(!is_reserved("config"));
    }

    #[test]
    fn bom_and_invalid_utf8_are_errors() {
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(b"a: 1\n");
        let (_, d) = load(
            &[
                SourceFile {
                    path: "bom.yaml".into(),
                    bytes: bom,
                },
                SourceFile {
                    path: "bad.yaml".into(),
                    bytes: b"a: \xff\n".to_vec(),
                },
            ],
            &LIMITS,
        );
        assert_eq!(d.len(), 2);
        assert!(d.0.iter().any(|e| e.message.contains("byte order mark")));
        assert!(d.0.iter().any(|e| e.message.contains("not valid UTF-8")));
    }
}

/// Reading a fixture directory in the core's own unit tests (the shell's readers,
/// with their limits and path rules, live in the `drover` crate).
#[cfg(test)]
pub(crate) mod test_support {
    use super::SourceFile;
    use std::path::Path;

    /// Every YAML file under `dir`, sorted by path, as the shell reads a tree.
    pub(crate) fn read_dir(dir: &Path) -> Vec<SourceFile> {
        fn walk(dir: &Path, rel: &str, out: &mut Vec<SourceFile>) {
            for e in std::fs::read_dir(dir).expect("fixture directory") {
                let e = e.expect("fixture entry");
                let name = e.file_name().to_string_lossy().into_owned();
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if e.file_type().expect("file type").is_dir() {
                    walk(&e.path(), &path, out);
                } else if path.ends_with(".yaml")
                    || path.ends_with(".yml")
                    || path.starts_with("config/")
                {
                    let bytes = std::fs::read(e.path()).expect("fixture file");
                    out.push(SourceFile { path, bytes });
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, "", &mut out);
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}
