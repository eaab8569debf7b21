//! Progress bars on stderr, only for people: hidden when stderr is not a terminal or with `-q`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A progress bar of `len` steps (bytes or items), drawn on stderr only when it is a terminal
/// and `quiet` is false; otherwise a hidden bar whose calls cost next to nothing.
pub fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = if crate::cli::color_enabled() {
        "{msg} [{bar:30.cyan/blue}] {percent:>3}% {binary_bytes_per_sec} eta {eta}"
    } else {
        "{msg} [{bar:30}] {percent:>3}% eta {eta}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
