//! The `opsg-gate` binary: a thin shim over the `opsg-gate` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_gate::run)
}
