//! `ctxmesh`: runs the server (`serve`) and talks to one (`ctx ...`).
//!
//! Exit codes: 0 success; 1 any other error; 2 bad usage; 3 not found;
//! 4 precondition failed or conflict; 5 the server cannot be reached. A
//! command whose output is no longer read (`| head`) ends quietly with 0.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ctxmesh_client::ErrorCode;

/// `println!` for what the commands print: when the reader has gone
/// (`ctxmesh ctx list | head -1`), the command ends quietly, with success,
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::print_line(format_args!($($arg)*))
    };
}

mod backup;
mod bench;
mod coord;
mod credentials;
mod ctx;
mod jwt_args;
mod login;
mod mcp;
mod serve;
mod table;
mod telemetry;
mod tls;
mod watch;

/// Writes one line to stdout (see `outln!`).
pub(crate) fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // Nothing more can be said to anyone: stop here.
            std::process::exit(0);
        }
        panic!("cannot write to stdout: {e}");
    }
}

/// Shared, versioned context for AI agents.
#[derive(Parser, Debug)]
#[command(name = "ctxmesh", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Work with contexts and entries on a running server.
    Ctx(ctx::CtxArgs),
    /// Register, list and watch agents.
    Agents(coord::AgentsArgs),
    /// Acquire, release and list locks (with fencing tokens).
    Locks(coord::LocksArgs),
    /// Hand work from one agent to another.
    Handoff(coord::HandoffArgs),
    /// Print a context's events as they arrive (resumes after disconnects);
    /// as an agent, keep its lease alive meanwhile.
    Watch(watch::WatchArgs),
    /// Run a benchmark scenario against a server (started for it by default).
    Bench(bench::BenchArgs),
    /// Serve MCP over stdio, against a server or the embedded store.
    Mcp(mcp::McpArgs),
    /// Check a token against a server and save it for the client commands.
    Login(login::LoginArgs),
    /// Forget the token saved for a server.
    Logout(login::LogoutArgs),
    /// Back up the embedded store (of a running server, or of a data directory).
    Backup(backup::BackupArgs),
    /// Restore a backup into a data directory.
    Restore(backup::RestoreArgs),
    /// Check the consistency of a store (or of a backup).
    Check(backup::CheckArgs),
}

impl Command {
    /// The options of a command that talks to a server as a client.
    fn client_opts(&self) -> Option<&ctx::ClientOpts> {
        match self {
            Command::Ctx(args) => Some(&args.opts),
            Command::Agents(args) => Some(&args.opts),
            Command::Locks(args) => Some(&args.opts),
            Command::Handoff(args) => Some(&args.opts),
            Command::Watch(args) => Some(&args.opts),
            Command::Serve(_) | Command::Bench(_) | Command::Mcp(_) | Command::Login(_) | Command::Logout(_) => None,
            Command::Backup(_) | Command::Restore(_) | Command::Check(_) => None,
        }
    }
}

/// jemalloc, for Rust and (as the process's `malloc`) for SQLite: small
/// allocations cost less than with the C library's allocator, which the
/// server's hot paths make many of (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any HTTP client (reqwest) or TLS configuration is built.
    ctxmesh_tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // A server's `401` is explained with where the token was looked for.
    let client_opts = cli.command.client_opts().cloned();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Ctx(args) => ctx::run(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Agents(args) => coord::agents(args).await,
            Command::Locks(args) => coord::locks(args).await,
            Command::Handoff(args) => coord::handoff(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Mcp(args) => mcp::run(args).await,
            Command::Login(args) => login::login(args).await,
            Command::Logout(args) => login::logout(args),
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Check(args) => backup::check(args).await,
        }
    });
    let result = match client_opts {
        Some(opts) => result.map_err(|e| opts.token_lookup().explain(e)),
        None => result,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<ctxmesh_client::ClientError>() {
        Some(ctxmesh_client::ClientError::Transport(_) | ctxmesh_client::ClientError::Certificate(_)) => 5,
        Some(err) => err.error_code().map_or(1, exit_code_of),
        None => 1,
    }
}

/// The exit code of a server's error (see the top of this file). No
/// wildcard: a new code has to be given its exit code here.
fn exit_code_of(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::NotFound => 3,
        ErrorCode::PreconditionFailed
        | ErrorCode::Conflict
        | ErrorCode::AlreadyExists
        | ErrorCode::Fenced
        | ErrorCode::InvalidTransition
        | ErrorCode::NotHolder
        | ErrorCode::Disconnected => 4,
        ErrorCode::InvalidJson
        | ErrorCode::InvalidBody
        | ErrorCode::InvalidArgument
        | ErrorCode::InvalidId
        | ErrorCode::InvalidKey
        | ErrorCode::InvalidTxn
        | ErrorCode::InvalidPatch
        | ErrorCode::InvalidSchema
        | ErrorCode::Unauthenticated
        | ErrorCode::Forbidden
        | ErrorCode::MethodNotAllowed
        | ErrorCode::Compacted
        | ErrorCode::TooLarge
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::SchemaViolation
        | ErrorCode::PreconditionRequired
        | ErrorCode::RateLimited
        | ErrorCode::Internal
        | ErrorCode::Unavailable
        | ErrorCode::StorageFull => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxmesh_client::ClientError;

    fn api(code: &str) -> anyhow::Error {
        ClientError::Api { status: 400, code: code.to_owned(), message: String::new(), details: serde_json::json!({}) }
            .into()
    }

    /// Every code exits as documented at the top of this file: 3 not
    /// found, 4 precondition failed or conflict, else 1.
    #[test]
    fn every_code_has_its_exit_code() {
        let conflicts = [
            "precondition_failed",
            "conflict",
            "already_exists",
            "fenced",
            "invalid_transition",
            "not_holder",
            "disconnected",
        ];
        for &code in ErrorCode::ALL {
            let expected = match code.as_str() {
                "not_found" => 3,
                name if conflicts.contains(&name) => 4,
                _ => 1,
            };
            assert_eq!(exit_code(&api(code.as_str())), expected, "{code}");
        }
        assert_eq!(exit_code(&api("from_a_newer_server")), 1);
        assert_eq!(exit_code(&ClientError::Transport("refused".into()).into()), 5);
        assert_eq!(exit_code(&ClientError::Certificate("not trusted".into()).into()), 5);
        assert_eq!(exit_code(&anyhow::anyhow!("bad input")), 1);
    }
}
