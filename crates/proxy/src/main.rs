//! `rtsp-proxy`: the command-line entry point.

use std::process::ExitCode;

use rtsp_proxy::config::{self, CliOutcome, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_else(|| "rtsp-proxy".into());
    let program = std::path::Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rtsp-proxy".into());
    let args: Vec<String> = args.collect();
    let cfg = match config::parse_args(&program, &args) {
        Ok(CliOutcome::Run(cfg)) => cfg,
        Ok(CliOutcome::Help) => {
            print!("{}", config::help(&program));
            return ExitCode::SUCCESS;
        }
        Ok(CliOutcome::Man) => {
            print!("{}", config::man_page());
            return ExitCode::SUCCESS;
        }
        Ok(CliOutcome::Version) => {
            println!("rtsp-proxy {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(CliOutcome::RegisterHelp(kind)) => {
            print!("{}", config::subcommand::usage(&program, kind));
            return ExitCode::SUCCESS;
        }
        Ok(CliOutcome::Register(cmd)) => return run_register(&cmd),
        Err(e) => {
            // live555: usage errors go to stderr with exit status 1.
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    // With --config the file is the base and the command line is parsed again on
    // top of it (its options win).
    let cfg = match cfg.config_file.clone() {
        Some(file) => match config::file::load(&file, &program, &args) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        },
        None => cfg,
    };
    init_logging(cfg.verbosity, cfg.log_format);
    raise_descriptor_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rtsp-proxy")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(rtsp_proxy::app::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Every client connection takes a descriptor: lift the soft limit to the hard one
/// and say so when even that is below the connection limit.
fn raise_descriptor_limit() {
    let wanted = rtsp_proxy::server::listener::MAX_CONNECTIONS as u64 + 256;
    match rtsp_proxy::os::raise_nofile_limit() {
        Ok((_, now)) if now < wanted => tracing::warn!(
            "the open-file limit is {now} (hard limit), below the {} client connections the proxy accepts; raise it (ulimit -Hn, LimitNOFILE=) or expect refused connections",
            rtsp_proxy::server::listener::MAX_CONNECTIONS
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

/// `rtsp-proxy register|deregister`: one request, on a small runtime of its own.
fn run_register(cmd: &config::subcommand::RegisterCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(rtsp_proxy::register_client::run(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Default: warnings and errors. `-v`: proxy events. `-V`: also every RTSP message
/// exchanged with back ends. `RUST_LOG` overrides all of it. `--log-format json`:
/// one JSON object per line (fields flattened next to the message, no spans).
fn init_logging(verbosity: u8, format: LogFormat) {
    let default = match verbosity {
        0 => "warn",
        1 => "warn,rtsp_proxy=info",
        _ => "warn,rtsp_proxy=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => {
            // Colour only for a person at a terminal, never into files or journals.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).init()
        }
    }
}
