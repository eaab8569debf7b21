//! The `opsg-replay` binary: a thin shim over the `opsg-replay` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_replay::run)
}
