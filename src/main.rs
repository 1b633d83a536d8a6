//! The `rolerelay` binary: parse the command line, load the configuration, start the runtime.

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use rolerelay::cli::{Cli, Command, CredentialProcessArgs, HealthcheckArgs, OnceArgs, StatusArgs};
use rolerelay::config::{Config, ConfigArgs, RoleName};
use rolerelay::{app, clock, doctor, healthcheck, logging, outputs, source, status};

/// Exit code for an invalid configuration or argument.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The commands that call AWS; before any thread exists, as it sets an environment variable.
    // `credential-process` and `healthcheck`, which SDKs and probes run often, skip its probing.
    if matches!(
        cli.command,
        Command::Run(_) | Command::Once(_) | Command::Doctor(_)
    ) {
        source::use_the_ca_bundle_alone();
    }
    match cli.command {
        Command::Run(args) => {
            // Listening before anything else: as PID 1 in a container, a SIGTERM that comes
            // before there is a handler is dropped, and start-up would carry on regardless.
            let runtime = runtime();
            let shutdown = listen_for_shutdown(&runtime);
            with_config(&args, |config| {
                runtime
                    .block_on(app::run(config, args.clone(), shutdown))
                    .map_or_else(fail, |()| ExitCode::SUCCESS)
            })
        }
        Command::Once(args) => with_config(&args.config, |config| once(config, &args)),
        Command::Check(args) => match Config::load(&args) {
            Ok(config) => {
                print_out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&config).expect("the configuration serializes")
                ));
                ExitCode::SUCCESS
            }
            Err(e) => config_error(e),
        },
        Command::Doctor(args) => match Config::load(&args.config) {
            Ok(config) => {
                let report = runtime().block_on(doctor::run(&config));
                match args.format.as_str() {
                    "json" => print_out(&format!(
                        "{}\n",
                        serde_json::to_string_pretty(&report).expect("the report serializes")
                    )),
                    _ => print_out(&report.text()),
                }
                if report.ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => config_error(e),
        },
        Command::Healthcheck(args) => healthcheck(&args),
        Command::CredentialProcess(args) => credential_process(&args),
        Command::Status(args) => status(&args),
    }
}

/// `rolerelay once`: exit 0 when every role was written, 1 naming the roles that still failed.
fn once(config: Config, args: &OnceArgs) -> ExitCode {
    match runtime().block_on(app::once(config, args.retry_for)) {
        Ok(failed) if failed.is_empty() => ExitCode::SUCCESS,
        Ok(failed) => {
            let list: Vec<String> = failed
                .iter()
                .map(|(name, e)| format!("{name} ({e})"))
                .collect();
            eprintln!(
                "rolerelay: {} role(s) failed: {}",
                failed.len(),
                list.join(", ")
            );
            ExitCode::FAILURE
        }
        Err(e) => fail(e),
    }
}

/// `credential-process`: prints the role's current `<role>.json`; exit 1 if it is missing or
/// expired, 2 if `--role` is not a role name (which could name a file outside the directory).
fn credential_process(args: &CredentialProcessArgs) -> ExitCode {
    let role: RoleName = match args.role.parse() {
        Ok(role) => role,
        Err(e) => {
            eprintln!("rolerelay credential-process: --role (or ROLERELAY_ROLE): {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match outputs::process_json::read_current(&args.dir, &role, clock::now()) {
        Ok(text) => {
            print_out(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rolerelay credential-process: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rolerelay healthcheck`: 0 when the URL answers 200, 1 otherwise (with why, on stderr).
fn healthcheck(args: &HealthcheckArgs) -> ExitCode {
    let checked = healthcheck_url(args)
        .and_then(|url| healthcheck::check(&url, args.timeout).map_err(|e| e.to_string()));
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rolerelay healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The URL `healthcheck` asks: `--url`, else /servingz on the server.listen of the configuration
/// that the flags or variables name, else on the default listen address.
fn healthcheck_url(args: &HealthcheckArgs) -> Result<String, String> {
    if let Some(url) = &args.url {
        return Ok(url.clone());
    }
    let listen =
        Config::server_listen(&args.config).map_err(|e| format!("configuration error: {e}"))?;
    Ok(healthcheck::default_url(listen))
}

/// `rolerelay status`: the sidecar's `/status` as text or JSON; exit 0 when every role is ready,
/// 1 when one is not, 2 when no status document could be read (or the configuration is invalid).
fn status(args: &StatusArgs) -> ExitCode {
    let url = match &args.url {
        Some(url) => status::status_url(url),
        None => match Config::server_listen(&args.config) {
            Ok(listen) => status::default_url(listen),
            Err(e) => {
                eprintln!("rolerelay status: configuration error: {e}");
                return ExitCode::from(status::EXIT_UNREACHABLE);
            }
        },
    };
    match status::fetch(&url, args.timeout) {
        Ok((document, body)) => {
            match args.format.as_str() {
                "json" => print_out(&status::render_json(&body)),
                _ => print_out(&status::render_text(&document, &url)),
            }
            ExitCode::from(status::exit_code(&document))
        }
        Err(e) => {
            eprintln!("rolerelay status: {e}");
            ExitCode::from(status::EXIT_UNREACHABLE)
        }
    }
}

/// Loads the configuration (exit 2 with one line if invalid), starts logging, and runs `f`.
fn with_config(args: &ConfigArgs, f: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match Config::load(args) {
        Ok(config) => {
            logging::init(config.logging.format, config.logging.level);
            f(config)
        }
        Err(e) => config_error(e),
    }
}

fn config_error(e: rolerelay::config::ConfigError) -> ExitCode {
    eprintln!("rolerelay: configuration error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn fail(e: anyhow::Error) -> ExitCode {
    tracing::error!(error = format!("{e:#}"), "rolerelay failed");
    eprintln!("rolerelay: {e:#}");
    ExitCode::FAILURE
}

/// One thread is plenty for a sidecar: the work is waiting on STS and timers, and file writes go
/// to the blocking pool. That pool stays small: the writes are serialized by the outputs' lock
/// anyway, and every extra thread costs a stack and a malloc arena (hundreds of roles finishing
/// their first refresh together would otherwise start hundreds of threads).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
}

/// Installs the SIGTERM and SIGINT handlers now, and returns what completes on either (a signal
/// that came in between is not lost).
fn listen_for_shutdown(runtime: &tokio::runtime::Runtime) -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _context = runtime.enter();
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    let mut int = signal(SignalKind::interrupt()).expect("cannot listen for SIGINT");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

/// Writes `text` to standard output. A reader that went away (`rolerelay check | head`) is not
/// an error worth a panic; the exit code still says how the command went.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
