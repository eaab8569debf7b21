//! Man pages (`man/*.1`) and completions (`completions/`) are generated from the tools' clap
//! definitions and checked in; this test fails when they drift from the code.
//!
//! Regenerate with `OPSG_BLESS=1 cargo test --test docs_drift` and commit the result.

use std::path::Path;

#[test]
fn man_pages_and_completions_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("OPSG_BLESS").is_some() {
        opsg::docs::write_all(root).expect("write generated docs");
        return;
    }
    let mut stale = Vec::new();
    for file in opsg::docs::generate().expect("generate docs") {
        let on_disk = std::fs::read(root.join(&file.path)).unwrap_or_default();
        if on_disk != file.bytes {
            stale.push(file.path);
        }
    }
    assert!(
        stale.is_empty(),
        "generated docs are out of date: {stale:?}\nrun `OPSG_BLESS=1 cargo test --test docs_drift` and commit"
    );
}

#[test]
fn every_man_page_has_examples_and_exit_status() {
    for file in opsg::docs::generate().expect("generate docs") {
        if file.path.starts_with("man/") {
            let text = String::from_utf8(file.bytes).expect("man page is UTF-8");
            assert!(text.contains(".SH EXAMPLES"), "{} has no EXAMPLES section", file.path);
            assert!(
                text.contains(".SH \"EXIT STATUS\""),
                "{} has no EXIT STATUS section",
                file.path
            );
            assert!(text.contains("tamper detected"), "{} lacks the exit-code table", file.path);
        }
    }
}

#[test]
fn clap_definitions_are_consistent() {
    for command in opsg::docs::tools() {
        command.debug_assert();
    }
}
