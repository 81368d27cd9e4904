//! Problems found in a flow file, with file, line, column, the offending line and a hint.

use std::fmt;

use serde::Serialize;

use super::yaml::Span;

/// How bad a problem is. Only errors make a flow invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The flow cannot be loaded or run.
    Error,
    /// Worth fixing, but the flow runs.
    Warning,
}

/// One problem in a flow file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable short name of the kind of problem, e.g. `unknown_key`.
    pub code: &'static str,
    /// The file, when the flow came from one.
    pub file: Option<String>,
    /// Line, from 1; 0 when the problem concerns the whole file.
    pub line: usize,
    /// Column in characters, from 1; 0 when the problem concerns the whole file.
    pub column: usize,
    /// Characters the caret underlines.
    pub width: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The offending line as written.
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            file: None,
            line: span.line,
            column: span.column,
            width: span.width(),
            message: message.into(),
            hint: None,
            snippet: None,
        }
    }

    /// An error about the whole file (it cannot be read, ...).
    pub fn file_error(code: &'static str, file: &str, message: impl Into<String>) -> Self {
        let mut diagnostic = Diagnostic::error(code, Span::default(), message);
        diagnostic.file = Some(file.to_string());
        diagnostic
    }

    /// The same diagnostic with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same diagnostic as a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    fn attach(&mut self, file: Option<&str>, lines: &[&str]) {
        if self.file.is_none() {
            self.file = file.map(str::to_string);
        }
        if self.snippet.is_none() && self.line > 0 {
            self.snippet = lines.get(self.line - 1).map(|l| l.trim_end_matches('\r').to_string());
        }
    }
}

impl fmt::Display for Diagnostic {
    /// Renders like rustc: header, location arrow, the line with a caret, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{severity}[{}]: {}", self.code, self.message)?;
        let file = self.file.as_deref().unwrap_or("<flow>");
        let gutter = " ".repeat(self.line.to_string().len());
        if self.line == 0 {
            write!(f, "{gutter}--> {file}")?;
        } else {
            write!(f, "{gutter}--> {file}:{}:{}", self.line, self.column)?;
        }
        if let Some(snippet) = &self.snippet {
            let pad: String = snippet
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{gutter} |\n{} | {snippet}\n{gutter} | {pad}{}",
                self.line,
                "^".repeat(self.width.max(1))
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{gutter} = hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one flow file, in the order they appear in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The diagnostics that are errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// All diagnostics.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// How many diagnostics there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Names the file and copies each offending line from `source` into its diagnostic.
    pub fn attach_source(&mut self, file: Option<&str>, source: &str) {
        let lines: Vec<&str> = source.split('\n').collect();
        for diagnostic in &mut self.0 {
            diagnostic.attach(file, &lines);
        }
    }

    /// Orders by position and drops exact repeats.
    pub(crate) fn normalize(&mut self) {
        self.0.sort_by(|a, b| (a.line, a.column, a.code).cmp(&(b.line, b.column, b.code)));
        self.0.dedup();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_snippet_caret_and_hint() {
        let mut diagnostics = Diagnostics::from(
            Diagnostic::error("unknown_key", Span::at(2, 3, 8), "unknown key `run_afer`")
                .with_hint("did you mean `run_after`?"),
        );
        diagnostics.attach_source(Some("f.yaml"), "a:\n  run_afer: {}\n");
        let text = diagnostics.to_string();
        assert_eq!(
            text,
            "error[unknown_key]: unknown key `run_afer`\n --> f.yaml:2:3\n  |\n2 |   run_afer: {}\n  |   ^^^^^^^^\n  = hint: did you mean `run_after`?"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("run_afer", ["run_after", "retry", "timeout"]), Some("run_after"));
        assert_eq!(did_you_mean("zzz", ["run_after", "retry"]), None);
    }
}
