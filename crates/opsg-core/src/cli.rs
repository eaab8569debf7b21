//! The shared `main` of every opsg binary and its stderr logging.
//!
//! `main` parses the arguments (help and version short-circuit with exit 0, usage errors exit 2),
//! runs the tool, prints an error once as `opsg-<tool>: error: …` (plus `caused by:` lines), maps it
//! to the shared exit-code table, and exits quietly when the reader of stdout went away (`| head`).
//! Nothing below it calls `process::exit`.

use crate::error::Error;
use crate::exit::ExitStatus;
use clap::{ColorChoice, CommandFactory};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::OnceLock;

static TOOL: OnceLock<String> = OnceLock::new();

/// The running tool's name (`opsg-plan`), for log prefixes.
pub fn tool() -> &'static str {
    TOOL.get().map(String::as_str).unwrap_or("opsg")
}

/// True when colour may be used on stderr: a terminal, `NO_COLOR` unset or empty, `TERM` not dumb.
pub fn color_enabled() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    !no_color && !dumb && std::io::stderr().is_terminal()
}

/// Run a tool: parse `A` from the command line, call `run`, turn the result into an exit code.
pub fn main<A, F>(run: F) -> ExitCode
where
    A: clap::Parser,
    F: FnOnce(A) -> Result<ExitStatus, Error>,
{
    let mut command = A::command();
    let _ = TOOL.set(command.get_name().to_string());
    if !color_enabled() {
        command = command.color(ColorChoice::Never);
    }
    let parsed = command.try_get_matches().and_then(|m| A::from_arg_matches(&m));
    let args = match parsed {
        Ok(args) => args,
        Err(err) => {
            // Help and version go to stdout and exit 0; usage errors to stderr with exit 2.
            let _ = err.print();
            return if err.use_stderr() { ExitStatus::Usage.into() } else { ExitCode::SUCCESS };
        }
    };
    match run(args) {
        Ok(status) => status.into(),
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            err.status().into()
        }
    }
}

/// Print an error once: `opsg-<tool>: error: …`, then one `caused by:` line per source.
pub fn report(err: &Error) {
    let mut text = format!("{}: error: {err}\n", tool());
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(&format!("  caused by: {c}\n"));
        cause = c.source();
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// A warning on stderr: `opsg-<tool>: warning: …`.
pub fn warn(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{}: warning: {message}", tool());
}

/// An informational line on stderr: `opsg-<tool>: …`.
pub fn info(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{}: {message}", tool());
}

/// Text for people on stderr, as is (timelines, `--explain`).
pub fn human(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Standard help footer: the exit-status table, for every tool's `--help`.
pub fn exit_status_help() -> String {
    format!("Exit status:\n{}", crate::exit::table())
}

/// Let a tool crate write its `Args::command()` as the docs generator needs it.
pub fn command_of<A: CommandFactory>() -> clap::Command {
    A::command()
}
