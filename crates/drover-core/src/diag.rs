//! Diagnostics: what is wrong, where (file, line, column, field) and a hint.
//!
//! Owns: the error record every validation step produces and its one-line rendering.
//! Must not: print; callers decide where diagnostics go.

use std::fmt;

/// A position in a source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One problem found in the fleet repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Diagnostic {
    pub path: String,
    pub pos: Pos,
    /// Dotted field path inside the document, e.g. `spec.stages[1].groups[0]`.
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        path: impl Into<String>,
        pos: Pos,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            path: path.into(),
            pos,
            field: field.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}", escape_control(&self.path))?;
            if self.pos.line > 0 {
                write!(f, ":{}:{}", self.pos.line, self.pos.column)?;
            }
            f.write_str(": ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", escape_control(&self.field))?;
        }
        f.write_str(&escape_control(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, " ({})", escape_control(hint))?;
        }
        Ok(())
    }
}

/// A list of diagnostics, sorted by file and position for stable output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn sorted(mut self) -> Self {
        self.0.sort();
        self.0.dedup();
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Characters that are invisible or change how the text around them is shown:
/// Unicode's format characters (category Cf: bidirectional marks, embeddings,
/// overrides and isolates such as U+202E and U+2066–U+2069, U+200E/U+200F,
/// U+061C; the zero-width U+200B–U+200D, U+2060, U+FEFF; soft hyphen, invisible
/// operators, tag characters, ...), the line and paragraph separators U+2028 and
/// U+2029, and the Hangul fillers that render as blank.
///
/// The Cf ranges are Unicode 16's (`DerivedGeneralCategory.txt`), written out here:
/// a crate for one property table would be a dependency for twenty lines.
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// Escapes control characters (ANSI escape sequences included, C1 controls too) and
/// invisible or reordering characters ([`is_deceptive`]) so that text from a
/// repository can never drive the operator's terminal or show a reviewer something
/// other than what it is.
pub fn escape_control(s: &str) -> String {
    let escaped = |c: char| c.is_control() || is_deceptive(c);
    if !s.chars().any(escaped) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// "did you mean" for a misspelt name among known ones.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(wrong, c);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_ansi_sequences() {
        assert_eq!(escape_control("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(escape_control("plain"), "plain");
    }

    #[test]
    fn escapes_c1_bidi_and_zero_width_characters_and_nothing_visible() {
        for c in [
            '\u{85}',
            '\u{9b}',
            '\u{202e}',
            '\u{202a}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200e}',
            '\u{200f}',
            '\u{61c}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{2060}',
            '\u{feff}',
            '\u{2028}',
            '\u{2029}',
            '\u{e0041}',
            '\u{ad}',
            '\u{3164}',
        ] {
            let e = escape_control(&format!("a{c}b"));
            assert_eq!(e, format!("a\\u{{{:x}}}b", c as u32), "{:x}", c as u32);
        }
        for s in ["é", "e\u{301}", "日本語", "emoji 🦀", "ß", "a-b_c.d/e"] {
            assert_eq!(escape_control(s), s);
        }
    }

    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(
            did_you_mean("canery", ["canary", "general", "gpu"]).as_deref(),
            Some("did you mean `canary`?")
        );
        assert_eq!(did_you_mean("zzz", ["canary"]), None);
    }
}
