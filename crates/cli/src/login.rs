//! `ctxmesh login` and `ctxmesh logout`: a server's token in the per-user
//! credentials file, where the client commands and `ctxmesh mcp` find it
//! from any directory (see `credentials`).

use anyhow::{Context as _, bail};
use clap::Args;
use ctxmesh_client::Client;

use crate::credentials;

/// Options of `ctxmesh login`.
#[derive(Args, Debug)]
pub(crate) struct LoginArgs {
    /// The server's URL.
    #[arg(long, env = "CTXMESH_SERVER", default_value = "http://127.0.0.1:7600")]
    server: String,
    /// The token to save (an agent's, or the admin token). Without it, the
    /// first line of stdin, asked for (without echo) on a terminal.
    #[arg(long)]
    token: Option<String>,
}

/// Options of `ctxmesh logout`.
#[derive(Args, Debug)]
pub(crate) struct LogoutArgs {
    /// The server's URL.
    #[arg(long, env = "CTXMESH_SERVER", default_value = "http://127.0.0.1:7600")]
    server: String,
}

/// Checks the token against the server (`GET /v1/whoami`), then saves it.
pub(crate) async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let server = credentials::normalize(&args.server)?;
    let token = match args.token {
        Some(token) => token,
        None => read_token(&server)?,
    };
    let token = token.trim();
    if token.is_empty() {
        bail!("no token given: pass --token, or type it (or pipe it) in");
    }
    let identity = Client::new(&args.server)
        .with_token(token)
        .whoami()
        .await
        .with_context(|| format!("{server} did not accept the token; nothing was saved"))?;
    let path = credentials::save(&server, token)?;
    let role = if identity["admin"] == true { " (admin)" } else { "" };
    let agent = identity["agent"].as_str().unwrap_or("?");
    outln!("logged in to {server} as {agent}{role}; the token is saved in {}", path.display());
    Ok(())
}

/// Removes the server's entry from the credentials file.
pub(crate) fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let server = credentials::normalize(&args.server)?;
    match credentials::remove(&server)? {
        (path, true) => outln!("removed the token for {server} from {}", path.display()),
        (path, false) => outln!("no token for {server} in {}", path.display()),
    }
    Ok(())
}

/// The first line of stdin; on a terminal, after a prompt and without echo.
fn read_token(server: &str) -> anyhow::Result<String> {
    use std::io::{BufRead as _, IsTerminal as _};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if !stdin.is_terminal() {
        stdin.lock().read_line(&mut line).context("cannot read the token from stdin")?;
        return Ok(line);
    }
    eprint!("token for {server}: ");
    let echo = EchoOff::new();
    let read = stdin.lock().read_line(&mut line);
    drop(echo);
    eprintln!();
    read.context("cannot read the token")?;
    Ok(line)
}

/// The terminal on stdin without echo, for as long as this lives.
struct EchoOff {
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

impl EchoOff {
    #[cfg(unix)]
    fn new() -> Self {
        // SAFETY: `termios` is plain data, filled in by `tcgetattr` for
        // file descriptor 0 before it is read; both calls only read or
        // write the struct given.
        unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut termios) != 0 {
                return EchoOff { saved: None };
            }
            let saved = termios;
            termios.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &termios) != 0 {
                return EchoOff { saved: None };
            }
            EchoOff { saved: Some(saved) }
        }
    }

    #[cfg(not(unix))]
    fn new() -> Self {
        EchoOff {}
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read by `tcgetattr` above.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}
