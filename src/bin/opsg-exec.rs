//! The `opsg-exec` binary: a thin shim over the `opsg-exec` crate.

fn main() -> std::process::ExitCode {
    opsg_core::cli::main(opsg_exec::run)
}
