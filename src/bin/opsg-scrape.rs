//! The `opsg-scrape` binary: a thin shim over the `opsg-scrape` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_scrape::run)
}
