//! The parse error: where (1-based line and byte column) and what.

use std::fmt;

/// A problem in the input, located by 1-based line and 1-based byte column.
///
/// Displayed as `line:column: message`. Column 0 never occurs for a problem inside a line; a
/// problem about the input as a whole (such as a missing `# EOF`) points one line past the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: u64,
    /// 1-based byte column within the line.
    pub column: u64,
    /// What is wrong, lower-case, values in backticks.
    pub message: String,
}

impl ParseError {
    /// A new error at `line`:`column`.
    pub fn new(line: u64, column: u64, message: impl Into<String>) -> Self {
        ParseError { line, column, message: message.into() }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}
