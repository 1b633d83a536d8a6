//! Logs: JSON lines (the default) or text, on standard error so stdout stays for command output.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. rolerelay's own events use `level`; other crates' (the AWS
/// SDK's) are shown from warnings up, or from debug up when `level` is debug or trace — never
/// their trace events, which can carry whole requests and replies.
pub fn init(format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let others = if level >= LevelFilter::DEBUG {
        // Never trace: that is where the SDK prints whole requests and replies (with
        // `LOG_SENSITIVE_BODIES=true`, an AssumeRole reply's secret key and session token).
        LevelFilter::DEBUG
    } else {
        LevelFilter::WARN.min(level)
    };
    let filter = Targets::new()
        .with_target("rolerelay", level)
        .with_default(others);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Json => {
            let layer = layer
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false);
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .init();
        }
        LogFormat::Text => {
            tracing_subscriber::registry()
                .with(layer.with_ansi(false).with_filter(filter))
                .init();
        }
    }
}
