//! The `opsg-triage` binary: a thin shim over the `opsg-triage` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_triage::run)
}
