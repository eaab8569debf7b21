//! The `opsg-sim` binary: a thin shim over the `opsg-sim` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_sim::run)
}
