//! Where the commands find their token from any directory (`--token`,
//! `$CTXMESH_TOKEN`, the data directory, the per-user credentials file of
//! `ctxmesh login` and `ctxmesh serve`), `ctxmesh mcp` refusing to start
//! without one, and agents' tokens from the command line.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::ServerProcess;

/// `ctxmesh ARGS` run from `cwd` (not the data directory's parent), with
/// `config` as its `XDG_CONFIG_HOME`.
fn ctxmesh_in(cwd: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = crate::ctxmesh_command();
    command.current_dir(cwd).env("XDG_CONFIG_HOME", config).args(args);
    command
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn credentials(config: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(config.join("ctxmesh/credentials.json")).unwrap()).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs an MCP session over the stdio of `command` (`ctxmesh mcp ...`):
/// initializes, lists the tools and calls `tool`; returns the tool names
/// and the call's result.
fn mcp_session(mut command: Command, tool: &str, arguments: Value) -> (Vec<String>, Value) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctxmesh mcp starts");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(message) = serde_json::from_str(&line) {
                let _ = tx.send(message);
            }
        }
    });
    // A request, answered; without an id, a notification.
    let mut ask = |id: Option<u64>, method: &str, params: Value| -> Value {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let Some(id) = id else {
            writeln!(stdin, "{}", json!({"jsonrpc": "2.0", "method": method})).unwrap();
            return Value::Null;
        };
        writeln!(stdin, "{request}").unwrap();
        loop {
            let message = rx.recv_timeout(Duration::from_secs(20)).expect("an answer from ctxmesh mcp");
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method}: {message}");
                return message["result"].clone();
            }
        }
    };
    let client =
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "it", "version": "0"}});
    ask(Some(1), "initialize", client);
    ask(None, "notifications/initialized", Value::Null);
    let tools = ask(Some(2), "tools/list", json!({}));
    let names = tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
    let result = ask(Some(3), "tools/call", json!({"name": tool, "arguments": arguments}));
    drop(stdin);
    let _ = child.kill();
    child.wait().unwrap();
    (names, result)
}

/// From a directory without the data directory, a command with no token
/// names every place it looked; `ctxmesh login` saves the token (checked
/// against the server) for the client commands and `ctxmesh mcp`, under
/// any loopback name; `ctxmesh logout` forgets it.
#[test]
fn login_saves_a_token_that_the_commands_find_from_any_directory() {
    let (data, config, elsewhere) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = ServerProcess::start(data.path(), &["--auth", "on"]);
    let s = server.base.as_str();
    let admin_token = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    let run = |args: &[&str]| ctxmesh_in(elsewhere.path(), config.path(), args).output().unwrap();

    let refused = run(&["ctx", "ls", "--server", s]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = stderr_of(&refused);
    let file = config.path().join("ctxmesh/credentials.json");
    for place in [
        format!("no token for {s}: looked at --token, $CTXMESH_TOKEN, ./ctxmesh-data/admin.token (absent)"),
        format!("{} (absent)", file.display()),
        format!("run \"ctxmesh login --server {s}\" or pass --token"),
    ] {
        assert!(stderr.contains(&place), "{place:?} in {stderr}");
    }

    // A token the server refuses is not saved.
    let wrong = run(&["login", "--server", s, "--token", "cmt_not_a_token"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr_of(&wrong).contains("did not accept the token; nothing was saved"), "{}", stderr_of(&wrong));
    assert!(!file.exists());

    // The token from stdin, surrounding whitespace and all.
    let mut login = ctxmesh_in(elsewhere.path(), config.path(), &["login", "--server", &format!("{s}/")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(login.stdin.take().unwrap(), "  {}  ", admin_token.trim()).unwrap();
    let said = ok(login.wait_with_output().unwrap());
    assert!(said.contains(&format!("logged in to {s} as admin (admin)")), "{said}");
    assert_eq!(credentials(config.path()), json!({"servers": {s: {"token": admin_token.trim()}}}));
    #[cfg(unix)]
    {
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
    }

    ok(run(&["ctx", "create", "from-anywhere", "--server", s]));
    let localhost = s.replace("127.0.0.1", "localhost");
    assert!(ok(run(&["ctx", "ls", "--server", &localhost])).contains("from-anywhere"), "another loopback name");

    let mut mcp = ctxmesh_in(elsewhere.path(), config.path(), &["mcp", "--server", s]);
    mcp.env("CTXMESH_LOG", "warn");
    let (tools, created) = mcp_session(mcp, "create_context", json!({"id": "via-mcp"}));
    assert!(tools.iter().any(|t| t == "put_entry"), "{tools:?}");
    assert_ne!(created["isError"], true, "{created}");
    ok(run(&["ctx", "get", "via-mcp", "--server", s]));

    assert!(ok(run(&["logout", "--server", &localhost])).contains(&format!("removed the token for {localhost}")));
    assert_eq!(credentials(config.path()), json!({"servers": {}}));
    let forgotten = run(&["ctx", "ls", "--server", s]);
    assert!(
        stderr_of(&forgotten).contains(&format!("{} (no entry for {s})", file.display())),
        "{}",
        stderr_of(&forgotten)
    );
}

/// `$CTXMESH_TOKEN` is used (trimmed); `ctxmesh mcp` with no token at all
/// does not start, and says where it looked.
#[test]
fn mcp_refuses_to_start_without_a_token_and_takes_one_from_the_environment() {
    let (data, config, elsewhere) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = ServerProcess::start(data.path(), &["--auth", "on"]);
    let s = server.base.as_str();
    let admin_token = std::fs::read_to_string(data.path().join("admin.token")).unwrap();

    let refused =
        ctxmesh_in(elsewhere.path(), config.path(), &["mcp", "--server", s]).stdin(Stdio::null()).output().unwrap();
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty(), "nothing is served");
    let stderr = stderr_of(&refused);
    let file = config.path().join("ctxmesh/credentials.json");
    for place in
        ["--token", "$CTXMESH_TOKEN", "./ctxmesh-data/admin.token (absent)", &format!("{} (absent)", file.display())]
    {
        assert!(
            stderr.contains(&format!("no token for {s}: looked at")) && stderr.contains(place),
            "{place:?} in {stderr}"
        );
    }

    let with_env = |args: &[&str]| {
        let mut command = ctxmesh_in(elsewhere.path(), config.path(), args);
        command.env("CTXMESH_TOKEN", format!("\n{}\n", admin_token.trim()));
        command
    };
    ok(with_env(&["ctx", "create", "from-env", "--server", s]).output().unwrap());
    let (_, listed) = mcp_session(with_env(&["mcp", "--server", s]), "list_contexts", json!({}));
    assert_ne!(listed["isError"], true, "{listed}");
    assert!(listed.to_string().contains("from-env"), "{listed}");
}

/// `ctxmesh serve` saves an admin token it generates for its own URL
/// (not with --no-save-credentials, not a token it did not generate).
#[test]
fn serve_saves_the_admin_token_it_generates() {
    let (data, config, elsewhere) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_home = config.path().to_str().unwrap();
    let server = ServerProcess::start_with(data.path(), &["--auth", "on"], &[("XDG_CONFIG_HOME", config_home)]);
    let s = server.base.clone();
    let admin_token = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    assert_eq!(credentials(config.path()), json!({"servers": {&s: {"token": admin_token.trim()}}}));
    #[cfg(unix)]
    {
        let file = config.path().join("ctxmesh/credentials.json");
        assert_eq!((mode(&file), mode(file.parent().unwrap())), (0o600, 0o700));
    }
    let listed = ctxmesh_in(elsewhere.path(), config.path(), &["ctx", "ls", "--server", &s]).output().unwrap();
    ok(listed);
    drop(server);

    // A restart uses the token of the data directory and writes nothing.
    let again = tempfile::tempdir().unwrap();
    let again_home = again.path().to_str().unwrap();
    drop(ServerProcess::start_with(data.path(), &["--auth", "on"], &[("XDG_CONFIG_HOME", again_home)]));
    assert!(!again.path().join("ctxmesh").exists());

    let fresh = tempfile::tempdir().unwrap();
    let flags = ["--auth", "on", "--no-save-credentials"];
    drop(ServerProcess::start_with(fresh.path(), &flags, &[("XDG_CONFIG_HOME", again_home)]));
    assert!(fresh.path().join("admin.token").exists());
    assert!(!again.path().join("ctxmesh").exists(), "--no-save-credentials");
}

/// `agents register` shows the agent's one-time token; `rotate-token`
/// issues a new one (the old one stops working), `revoke-token` ends it.
#[test]
fn agents_tokens_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &["--auth", "on"]);
    let s = server.base.as_str();
    let data_dir = data.path().to_str().unwrap();
    let admin = |args: &[&str]| {
        ok(crate::ctxmesh_command().args(args).args(["--server", s, "--data-dir", data_dir]).output().unwrap())
    };
    let as_bob = |token: &str| {
        crate::ctxmesh_command()
            .args(["agents", "heartbeat", "bob", "--server", s, "--token", token, "--data-dir", "/nonexistent"])
            .output()
            .unwrap()
    };
    let token_in = |said: &str| {
        let line = said.lines().find(|l| l.starts_with("token (shown once; store it now): ")).expect(said);
        line.rsplit(' ').next().unwrap().to_owned()
    };

    let registered = admin(&["agents", "register", "bob"]);
    assert!(registered.starts_with("registered bob"), "{registered}");
    let first = token_in(&registered);
    assert!(first.starts_with("cmt_"), "{first}");
    ok(as_bob(&first));

    let rotated = admin(&["agents", "rotate-token", "bob"]);
    let second = token_in(&rotated);
    assert_ne!(first, second);
    let stale = as_bob(&first);
    assert_eq!(stale.status.code(), Some(1), "the old token no longer works");
    assert!(stderr_of(&stale).contains("refused the token from --token"), "{}", stderr_of(&stale));
    ok(as_bob(&second));
    let answer: Value = serde_json::from_str(&admin(&["agents", "rotate-token", "bob", "--json"])).unwrap();
    let third = answer["token"].as_str().unwrap();
    assert_eq!(answer["agent"], "bob");
    ok(as_bob(third));

    assert!(admin(&["agents", "revoke-token", "bob"]).contains("revoked the token of bob"));
    assert_eq!(as_bob(third).status.code(), Some(1), "revoked");
}
