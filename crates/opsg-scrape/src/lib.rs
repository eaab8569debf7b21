//! opsg-scrape (skeleton; its issue builds it out).

use clap::{CommandFactory, Parser};
pub mod fetch;
pub mod normalize;
pub mod promapi;
pub mod signals;
pub mod target;

use opsg_core::{Error, ExitStatus, Result};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "opsg-scrape", version, about = "opsg-scrape", after_help = opsg_core::cli::exit_status_help())]
pub struct Args {}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

/// Run the tool.
pub fn run(_args: Args) -> Result<ExitStatus> {
    Err(Error::usage("opsg-scrape is not built yet"))
}
