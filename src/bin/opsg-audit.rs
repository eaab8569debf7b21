//! The `opsg-audit` binary: a thin shim over the `opsg-audit` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_audit::run)
}
