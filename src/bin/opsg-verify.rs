//! The `opsg-verify` binary: a thin shim over the `opsg-verify` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_verify::run)
}
