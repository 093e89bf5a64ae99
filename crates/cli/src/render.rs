//! Terminal rendering helpers: the miette hook (colour only on a terminal, so piped output and
//! snapshots stay plain).

use std::io::IsTerminal;

/// Installs the miette report handler.
pub(crate) fn install_hook() {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = miette::set_hook(Box::new(move |_| {
        let theme = if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
        Box::new(miette::GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false))
    }));
}
