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

/// Escapes control characters (ANSI escape sequences included) so that text from a
/// repository can never drive the operator's terminal.
pub fn escape_control(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != ' ') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
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
    fn suggests_the_closest_name() {
        assert_eq!(
            did_you_mean("canery", ["canary", "general", "gpu"]).as_deref(),
            Some("did you mean `canary`?")
        );
        assert_eq!(did_you_mean("zzz", ["canary"]), None);
    }
}
