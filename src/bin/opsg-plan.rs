//! The `opsg-plan` binary: a thin shim over the `opsg-plan` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_plan::run)
}
