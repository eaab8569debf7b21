//! One error type for every opsg binary, carrying its exit status and where it happened.
//!
//! Context is attached where the error is made (file, line, field, URL), so the one-line message a
//! user sees names the place and the reason: `stdin:3: field `body.class`: unknown class `foo``.

use crate::exit::ExitStatus;
use std::fmt;

/// The result type used across opsg.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the input an error was found. Every part is optional; present parts are printed as
/// `file:line: field `name`: …`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file (or `stdin`, or a URL) the input came from.
    pub source: Option<String>,
    /// 1-based line number.
    pub line: Option<u64>,
    /// 1-based column, where the format has one.
    pub column: Option<u64>,
    /// The field, as a JSON pointer-like dotted path (`body.actions[0].params`).
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(source) = &self.source {
            write!(f, "{source}")?;
            wrote = true;
        }
        if let Some(line) = self.line {
            write!(f, "{}{line}", if wrote { ":" } else { "line " })?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
            wrote = true;
        }
        if let Some(field) = &self.field {
            write!(f, "{}field `{field}`", if wrote { ": " } else { "" })?;
        }
        Ok(())
    }
}

impl Location {
    fn is_empty(&self) -> bool {
        self.source.is_none() && self.line.is_none() && self.field.is_none()
    }
}

/// An opsg error: a message for people, where it happened, the exit status it maps to, and the
/// underlying cause (if any) for `caused by:` lines.
///
/// Boxed so that `Result<T, Error>` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: ExitStatus,
    location: Location,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error with an explicit exit status.
    pub fn new(status: ExitStatus, message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            status,
            location: Location::default(),
            message: message.into(),
            source: None,
        }))
    }

    /// Invalid input (exit 3): malformed JSON, a schema violation, a bad config value.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ExitStatus::InvalidInput, message)
    }

    /// Tampering detected (exit 5): a hash mismatch or a broken chain link.
    pub fn tamper(message: impl Into<String>) -> Error {
        Error::new(ExitStatus::Tamper, message)
    }

    /// A usage error (exit 2) found after argument parsing (conflicting flags, say).
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(ExitStatus::Usage, message)
    }

    /// An internal error (exit 1): a bug.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ExitStatus::Internal, message)
    }

    /// An I/O error (exit 4) on `what` (usually a path), keeping the `io::Error` as the cause.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Error {
        let message = match err.kind() {
            std::io::ErrorKind::NotFound => format!("`{what}`: not found"),
            std::io::ErrorKind::PermissionDenied => format!("`{what}`: permission denied"),
            _ => format!("`{what}`: {err}"),
        };
        Error::new(ExitStatus::Io, message).with_source(err)
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.0.source = Some(Box::new(source));
        self
    }

    /// Name the input source (file path, `stdin`, URL).
    pub fn in_source(mut self, source: impl Into<String>) -> Error {
        self.0.location.source = Some(source.into());
        self
    }

    /// Name the 1-based line.
    pub fn at_line(mut self, line: u64) -> Error {
        self.0.location.line = Some(line);
        self
    }

    /// Name the 1-based column.
    pub fn at_column(mut self, column: u64) -> Error {
        self.0.location.column = Some(column);
        self
    }

    /// Name the field (dotted path). An inner field already set is kept and prefixed.
    pub fn at_field(mut self, field: impl Into<String>) -> Error {
        let field = field.into();
        self.0.location.field = Some(match self.0.location.field.take() {
            Some(inner) if !field.is_empty() => format!("{field}.{inner}"),
            Some(inner) => inner,
            None => field,
        });
        self
    }

    /// Set the source and line only where they are not set yet (outer context).
    pub fn or_at(mut self, source: &str, line: u64) -> Error {
        if self.0.location.source.is_none() {
            self.0.location.source = Some(source.to_string());
        }
        if self.0.location.line.is_none() {
            self.0.location.line = Some(line);
        }
        self
    }

    /// The exit status this error maps to.
    pub fn status(&self) -> ExitStatus {
        self.0.status
    }

    /// Where it happened.
    pub fn location(&self) -> &Location {
        &self.0.location
    }

    /// The message without location.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// True when a broken pipe (the reader went away, as in `| head -1`) is anywhere in the cause
    /// chain: the binary then exits quietly.
    pub fn is_broken_pipe(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = cause {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return true;
            }
            cause = err.source();
        }
        false
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.location.is_empty() {
            f.write_str(&self.0.message)
        } else {
            write!(f, "{}: {}", self.0.location, self.0.message)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::new(ExitStatus::Io, "i/o error").with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_source_line_and_field() {
        let err = Error::invalid("expected a string")
            .at_field("class")
            .at_field("body")
            .at_line(3)
            .in_source("stdin");
        assert_eq!(err.to_string(), "stdin:3: field `body.class`: expected a string");
        assert_eq!(err.status().code(), 3);
    }

    #[test]
    fn broken_pipe_is_found_through_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        let err = Error::io("stdout", io);
        assert!(err.is_broken_pipe());
        assert!(!Error::invalid("x").is_broken_pipe());
    }
}
