//! Operator-facing output: decides whether a stream gets colour (only on a terminal,
//! never with `NO_COLOR`). The styling itself is [`drover_core::style`].

use std::io::IsTerminal;

pub use crate::core::style::{Style, table};

/// Colour when `stream_is_tty` and `NO_COLOR` is unset or empty.
pub fn detect(stream_is_tty: bool) -> Style {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Style {
        color: stream_is_tty && !no_color,
    }
}

/// The style for standard output.
pub fn stdout_style() -> Style {
    detect(std::io::stdout().is_terminal())
}

/// The style for standard error.
pub fn stderr_style() -> Style {
    detect(std::io::stderr().is_terminal())
}
