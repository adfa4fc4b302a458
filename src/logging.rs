//! Structured logs on stderr with `tracing`: human text or JSON lines.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` wins over `verbose`.
pub fn init(format: LogFormat, verbose: u8) {
    // kube-client logs every failed request at ERROR: while the API server is away
    // that is a line per request per second. drover reports what a failure means
    // (a stage unobserved, a step retried) once; the raw lines come with -vv.
    let default = match verbose {
        0 => "warn,kube_client=off",
        1 => "info,drover=info,kube_client=off",
        2 => "info,drover=debug",
        _ => "debug,drover=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(crate::ui::stderr_style().color)
            .try_init(),
    };
}
