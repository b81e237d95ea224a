//! Diagnostics: what went wrong, where (file:line:col), the offending text, and a hint.

use std::fmt;

/// One problem found in the manifests.
///
/// Rendered (by [`fmt::Display`]) as:
///
/// ```text
/// error: unknown field `memroy` in `spec.resources`
///   --> nodes.yaml:7:25
///    |   resources: {cores: 2, memroy: 4GiB}
///    |                         ^^^^^^
///    = help: did you mean `memory`?
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as it was named to the loader (path or the name passed to `load_str`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// How many characters of the line the problem covers (at least 1).
    pub width: usize,
    /// What is wrong.
    pub message: String,
    /// The source line holding the offending text (empty when there is none, e.g. an unreadable file).
    pub source_line: String,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl Diagnostic {
    /// Ordering key: file, line, column, then message, so output is stable.
    fn sort_key(&self) -> (&str, usize, usize, &str) {
        (&self.file, self.line, self.col, &self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        write!(f, "  --> {}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        writeln!(f)?;
        if !self.source_line.is_empty() {
            let line = self.source_line.trim_end();
            writeln!(f, "   | {line}")?;
            let pad = " ".repeat(self.col.saturating_sub(1));
            writeln!(f, "   | {pad}{}", "^".repeat(self.width.max(1)))?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "   = help: {help}")?;
        }
        Ok(())
    }
}

/// All problems found in one load, in a stable order (file, line, column, message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts and de-duplicates the given diagnostics.
    pub fn new(mut items: Vec<Diagnostic>) -> Self {
        items.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        items.dedup();
        Diagnostics(items)
    }

    /// The diagnostics, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The diagnostics as a slice.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.0
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    /// Every diagnostic, separated by blank lines, then one summary line
    /// (`error: manifests are invalid: 3 errors`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "error: manifests are invalid: {n} error{}",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// Source text of one file, split into lines, used to build diagnostics.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub name: String,
    pub text: String,
    lines: Vec<String>,
}

impl SourceFile {
    pub fn new(name: &str, text: &str) -> Self {
        SourceFile {
            name: name.to_string(),
            text: text.to_string(),
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// Builds a diagnostic pointing at `span` in this file.
    pub fn diagnostic(
        &self,
        span: crate::yaml::Span,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        let source_line = span
            .start
            .line
            .checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .cloned()
            .unwrap_or_default();
        Diagnostic {
            file: self.name.clone(),
            line: span.start.line,
            col: span.start.col,
            width: span.width_on_first_line(),
            message: message.into(),
            source_line,
            help,
        }
    }
}
