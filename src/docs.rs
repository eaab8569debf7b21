//! Man pages and shell completions, generated from each tool's clap `Command`.
//!
//! Output is deterministic (no dates), checked in under `man/` and `completions/`, and
//! `tests/docs_drift.rs` fails when the checked-in files differ from what the code generates
//! (`OPSG_BLESS=1 cargo test --test docs_drift` rewrites them).

use clap_complete::Shell;
use std::path::Path;

/// Every tool, with its clap command.
pub fn tools() -> Vec<clap::Command> {
    vec![
        opsg_scrape::command(),
        opsg_triage::command(),
        opsg_plan::command(),
        opsg_gate::command(),
        opsg_exec::command(),
        opsg_verify::command(),
        opsg_audit::command(),
        opsg_sim::command(),
        opsg_replay::command(),
    ]
}

/// One generated file: its path relative to the repository root and its contents.
pub struct Generated {
    /// Relative path (`man/opsg-audit.1`).
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// Generate every man page and completion file.
pub fn generate() -> std::io::Result<Vec<Generated>> {
    let mut out = Vec::new();
    for command in tools() {
        let name = command.get_name().to_string();
        out.push(Generated { path: format!("man/{name}.1"), bytes: man_page(command.clone())? });
        for (shell, file) in [
            (Shell::Bash, format!("completions/{name}.bash")),
            (Shell::Zsh, format!("completions/_{name}")),
            (Shell::Fish, format!("completions/{name}.fish")),
        ] {
            let mut cmd = command.clone();
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut cmd, name.clone(), &mut bytes);
            out.push(Generated { path: file, bytes });
        }
    }
    Ok(out)
}

fn man_page(command: clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone()).date("").manual("opsg manual");
    let mut bytes = Vec::new();
    man.render_title(&mut bytes)?;
    man.render_name_section(&mut bytes)?;
    man.render_synopsis_section(&mut bytes)?;
    man.render_description_section(&mut bytes)?;
    man.render_options_section(&mut bytes)?;
    if command.has_subcommands() {
        man.render_subcommands_section(&mut bytes)?;
    }
    if let Some(examples) = command.get_after_long_help().or(command.get_after_help()) {
        // The tools put their worked examples and the exit-status table in `after_help`; they
        // become the EXAMPLES and EXIT STATUS sections.
        let text = examples.to_string();
        let (examples, status) = match text.find("Exit status:") {
            Some(i) => (text[..i].trim().to_string(), text[i + "Exit status:".len()..].to_string()),
            None => (text.trim().to_string(), String::new()),
        };
        let examples = examples.trim_start_matches("Examples:").trim();
        if !examples.is_empty() {
            bytes.extend_from_slice(b".SH EXAMPLES\n.nf\n");
            bytes.extend_from_slice(roff_escape(examples).as_bytes());
            bytes.extend_from_slice(b"\n.fi\n");
        }
        bytes.extend_from_slice(b".SH \"EXIT STATUS\"\n.nf\n");
        let status = if status.trim().is_empty() { opsg_core::exit::table() } else { status };
        bytes.extend_from_slice(roff_escape(status.trim_matches('\n')).as_bytes());
        bytes.extend_from_slice(b"\n.fi\n");
    }
    man.render_version_section(&mut bytes)?;
    Ok(bytes)
}

fn roff_escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e");
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Write every generated file under `root`.
pub fn write_all(root: &Path) -> std::io::Result<()> {
    for file in generate()? {
        let path = root.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, file.bytes)?;
    }
    Ok(())
}
