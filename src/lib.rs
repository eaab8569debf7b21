//! The `opsg` package: it owns the binaries (`src/bin/`, thin shims over the tool crates in
//! `crates/`) and the end-to-end tests in `tests/`. It also builds the man pages and shell
//! completions from the tools' clap definitions ([`docs`]), which a test keeps in sync.

pub mod docs;
