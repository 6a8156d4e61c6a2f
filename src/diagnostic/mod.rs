//! Diagnostics are data: a message, labelled spans into a source file, a help
//! line. Stages return them beside their results; renderers (miette for
//! humans, GitHub annotations, JSON) live apart from the stages, in
//! [`render`]; [`suggest`] finds the "did you mean" for a misspelt name.

pub mod render;
pub mod suggest;

pub use render::{render_github, render_human, to_json};

use std::path::PathBuf;
use std::sync::Arc;

/// One source text that diagnostics point into.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user gave it (relative paths stay relative in messages).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// A shared source file.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            path: path.into(),
            text: text.into(),
        })
    }

    /// 1-based line and column of a byte offset; the column counts
    /// characters, not bytes.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

/// The largest char boundary of `text` at or before `offset`.
pub(crate) fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl miette::SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner =
            self.text
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.path.display().to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// A byte range in a [`SourceFile`].
pub type Span = std::ops::Range<usize>;

/// A span of the source with a note on what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where, in bytes.
    pub span: Span,
    /// What to say about it (may be empty).
    pub text: String,
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The stage cannot go on.
    Error,
    /// Worth saying; nothing stops.
    Warning,
}

/// A problem found in a stack file (or with what it names).
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `cairn::unknown_attribute`.
    pub code: &'static str,
    /// One line saying what is wrong.
    pub message: String,
    /// The file the labels point into; `None` for problems with no location.
    pub source: Option<Arc<SourceFile>>,
    /// Primary label first.
    pub labels: Vec<Label>,
    /// How to fix it, when there is something useful to say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with no location yet.
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            source: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// A warning with no location yet.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Points the diagnostic into `source`.
    pub fn in_file(mut self, source: &Arc<SourceFile>) -> Self {
        self.source = Some(source.clone());
        self
    }

    /// Adds a label; the first one added is the primary one.
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Diagnostics collected by a stage. A stage that found any error returns
/// `Err(Diagnostics)` and its caller does nothing further.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// Whether any of them is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}
