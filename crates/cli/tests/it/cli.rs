//! The `ctxmesh ctx` client commands: output and exit codes.

use std::process::Output;

use serde_json::Value;

use crate::ServerProcess;

fn ctxmesh(server: &str, args: &[&str]) -> Output {
    crate::ctxmesh_command().arg("ctx").args(["--server", server]).args(args).output().expect("the ctxmesh binary runs")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

#[test]
fn client_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let s = server.base.as_str();

    let created = json_of(&ctxmesh(
        s,
        &["--json", "create", "demo", "--label", "team=a", "--retention", r#"{"max_revisions":50}"#],
    ));
    assert_eq!(created["revision"], 1);
    assert_eq!(created["labels"]["team"], "a");

    let put = json_of(&ctxmesh(
        s,
        &[
            "--json",
            "--agent",
            "researcher",
            "put",
            "demo",
            "findings/a",
            r#"{"x":1}"#,
            "--kind",
            "finding",
            "--tag",
            "t1",
        ],
    ));
    assert_eq!((put["revision"].as_u64(), put["author"].as_str()), (Some(2), Some("researcher")));
    let human = ctxmesh(s, &["put", "demo", "findings/a", "2", "--if-match", "2"]);
    assert!(human.status.success());
    assert!(String::from_utf8_lossy(&human.stdout).contains("findings/a = revision 3"));

    // A stale precondition exits with 4, a missing entry with 3.
    let stale = ctxmesh(s, &["put", "demo", "findings/a", "3", "--if-match", "2"]);
    assert_eq!(stale.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("precondition_failed"));
    assert_eq!(ctxmesh(s, &["get", "demo", "nothing"]).status.code(), Some(3));
    assert_eq!(ctxmesh(s, &["put", "demo", "k", "{not json"]).status.code(), Some(1));

    let got = json_of(&ctxmesh(s, &["--json", "get", "demo", "findings/a", "--at", "2"]));
    assert_eq!(got["value"]["x"], 1);
    assert_eq!(ctxmesh(s, &["patch", "demo", "obj", "{}"]).status.code(), Some(3), "patching a missing entry");
    json_of(&ctxmesh(s, &["--json", "put", "demo", "obj", r#"{"a":1}"#]));
    let patched = json_of(&ctxmesh(s, &["--json", "patch", "demo", "obj", r#"{"b":2}"#]));
    assert_eq!(patched["value"], serde_json::json!({"a": 1, "b": 2}));

    let list = ctxmesh(s, &["ls", "demo"]);
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(table.lines().next().unwrap().starts_with("KEY"), "{table}");
    assert!(table.contains("findings/a") && table.contains("obj"), "{table}");
    let contexts = json_of(&ctxmesh(s, &["--json", "ls"]));
    assert_eq!(contexts[0]["id"], "demo");

    let history = json_of(&ctxmesh(s, &["--json", "history", "demo"]));
    assert_eq!(history["commits"][0]["revision"], 5);
    let versions = json_of(&ctxmesh(s, &["--json", "history", "demo", "findings/a"]));
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    let diff = json_of(&ctxmesh(s, &["--json", "diff", "demo", "--from", "2", "--to", "3"]));
    assert_eq!(diff["changes"][0]["key"], "findings/a");
    let rb = json_of(&ctxmesh(s, &["--json", "rollback", "demo", "--to", "2"]));
    assert_eq!(rb["revision"], 6);
    let forked = json_of(&ctxmesh(s, &["--json", "fork", "demo", "demo-copy", "--at", "3"]));
    assert_eq!(forked["forked_from"]["revision"], 3);
    let rm = json_of(&ctxmesh(s, &["--json", "rm", "demo", "findings/a"]));
    assert_eq!(rm["revision"], 7);
    assert_eq!(ctxmesh(s, &["rm", "demo"]).status.code(), Some(1), "deleting a context needs --context");
    assert!(ctxmesh(s, &["rm", "demo-copy", "--context"]).status.success());
    assert_eq!(ctxmesh(s, &["get", "demo-copy"]).status.code(), Some(3));

    // A server that cannot be reached exits with 5.
    assert_eq!(ctxmesh("http://127.0.0.1:9", &["ls"]).status.code(), Some(5));
}

#[test]
fn watch_prints_events_as_they_arrive() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let s = server.base.as_str();
    json_of(&ctxmesh(s, &["--json", "create", "live"]));
    json_of(&ctxmesh(s, &["--json", "put", "live", "before", "0"]));
    let mut watcher = crate::ctxmesh_command()
        .args(["watch", "live", "--after", "1", "--json", "--server", s])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    json_of(&ctxmesh(s, &["--json", "put", "live", "after", "1", "--priority", "high"]));
    let mut lines = Vec::new();
    while lines.len() < 2 {
        lines.push(rx.recv_timeout(Duration::from_secs(20)).expect("watch prints each event"));
    }
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    let events: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events[0]["revision"], 2, "--after 1 starts with revision 2");
    assert_eq!(events[0]["key"], "before");
    assert_eq!((events[1]["key"].as_str(), events[1]["priority"].as_str()), (Some("after"), Some("high")));
    // Watching a context that does not exist fails with the not-found exit code.
    let missing = crate::ctxmesh_command().args(["watch", "nope", "--server", s]).output().unwrap();
    assert_eq!(missing.status.code(), Some(3));
}

fn run(server: &str, args: &[&str]) -> Output {
    crate::ctxmesh_command().args(args).args(["--server", server]).output().expect("runs")
}

#[test]
fn agents_locks_and_handoffs_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let s = server.base.as_str();
    assert!(ctxmesh(s, &["create", "launch"]).status.success());

    let a = json_of(&run(s, &["agents", "register", "researcher", "--capability", "search", "--json"]));
    assert_eq!((a["id"].as_str(), a["status"].as_str()), (Some("researcher"), Some("active")));
    json_of(&run(s, &["agents", "register", "writer", "--objective", "write the post", "--json"]));
    let dup = run(s, &["agents", "register", "writer"]);
    assert_eq!(dup.status.code(), Some(4), "a taken id is a conflict");
    let listed = String::from_utf8_lossy(&run(s, &["agents", "ls", "--capability", "search"]).stdout).into_owned();
    assert!(listed.contains("researcher") && !listed.contains("writer"), "{listed}");

    let got = json_of(&run(s, &["locks", "acquire", "launch", "deploy", "--agent", "researcher", "--json"]));
    assert_eq!((got["acquired"].as_bool(), got["fencing_token"].as_u64()), (Some(true), Some(1)));
    let busy = run(s, &["locks", "acquire", "launch", "deploy", "--agent", "writer"]);
    assert_eq!(busy.status.code(), Some(4), "held by another agent");
    assert!(String::from_utf8_lossy(&busy.stdout).contains("held by researcher"));
    let not_holder = run(s, &["locks", "release", "launch", "deploy", "--agent", "writer"]);
    assert_eq!(not_holder.status.code(), Some(4));
    assert!(run(s, &["locks", "release", "launch", "deploy", "--agent", "researcher"]).status.success());
    let locks = String::from_utf8_lossy(&run(s, &["locks", "ls", "launch"]).stdout).into_owned();
    assert!(locks.contains("deploy"), "{locks}");

    let h = json_of(&run(
        s,
        &[
            "handoff",
            "request",
            "launch",
            "writer",
            "--intent",
            "draft it",
            "--key",
            "findings/*",
            "--agent",
            "researcher",
            "--json",
        ],
    ));
    let id = h["id"].as_str().unwrap().to_owned();
    let wrong = run(s, &["handoff", "accept", &id, "--agent", "researcher"]);
    assert_eq!(wrong.status.code(), Some(1), "only the target accepts");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("forbidden"));
    assert!(run(s, &["handoff", "accept", &id, "--agent", "writer"]).status.success());
    let done = json_of(&run(s, &["handoff", "complete", &id, "--result", "drafts/1", "--agent", "writer", "--json"]));
    assert_eq!((done["status"].as_str(), done["outcome"].as_str()), (Some("completed"), Some("drafts/1")));
    let again = run(s, &["handoff", "complete", &id, "--agent", "writer"]);
    assert_eq!(again.status.code(), Some(4), "an illegal transition is a conflict");
    let inbox = json_of(&run(s, &["agents", "inbox", "writer", "--json"]));
    let kinds: Vec<&str> = inbox["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["handoff.requested", "handoff.accepted", "handoff.completed"]);
    assert!(run(s, &["agents", "rm", "writer"]).status.success());
    assert_eq!(run(s, &["agents", "get", "writer"]).status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_by_default_with_the_admin_token_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--auth", "on"]);
    let s = server.base.as_str();
    let token_file = dir.path().join("admin.token");
    let token = std::fs::read_to_string(&token_file).expect("the admin token is generated");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let r = reqwest::get(format!("{s}/v1/contexts")).await.unwrap();
    assert_eq!(r.status(), 401, "no token, no access");

    // The CLI finds the admin token in the local data directory.
    let data_dir = dir.path().to_str().unwrap();
    let created = run(s, &["ctx", "create", "secure", "--data-dir", data_dir, "--json"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let denied = run(s, &["ctx", "ls", "--data-dir", "/nonexistent"]);
    assert_eq!(denied.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("no token for") && stderr.contains("/nonexistent/admin.token (absent)"), "{stderr}");
    let explicit = run(s, &["ctx", "ls", "--token", token.trim(), "--data-dir", "/nonexistent"]);
    assert!(explicit.status.success());
    drop(server);

    // A restart keeps the same token.
    let server = ServerProcess::start(dir.path(), &["--auth", "on"]);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert!(run(&server.base, &["ctx", "ls", "--data-dir", data_dir]).status.success());

    // No authentication is refused on a non-loopback address.
    let refused = crate::ctxmesh_command()
        .args(["serve", "--auth", "off", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("without authentication"));

    // A second server on the same data directory is refused (after a
    // wait of a few seconds for the first to let go).
    let second = crate::ctxmesh_command()
        .args(["serve", "--auth", "off", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another ctxmesh process"));
    drop(server);
}

/// An agent refused for want of a grant is told the command that adds it;
/// `ctx grant`, `ctx grants` and `ctx revoke` share a context and end it.
#[test]
fn grants_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--auth", "on"]);
    let s = server.base.as_str();
    let data_dir = dir.path().to_str().unwrap();
    let admin = |args: &[&str]| {
        let out = run(s, &[args, &["--data-dir", data_dir]].concat());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    admin(&["ctx", "create", "plan"]);
    let registered: Value = serde_json::from_slice(&admin(&["agents", "register", "bob", "--json"]).stdout).unwrap();
    let bob_token = registered["token"].as_str().expect("the registration answers the token").to_owned();
    let as_bob = |args: &[&str]| run(s, &[args, &["--token", &bob_token, "--data-dir", "/nonexistent"]].concat());

    let refused = as_bob(&["ctx", "put", "plan", "step", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no grant") && stderr.contains("`ctxmesh ctx grant plan bob write`"), "{stderr}");

    let granted = admin(&["ctx", "grant", "plan", "bob", "read", "write"]);
    assert!(String::from_utf8_lossy(&granted.stdout).contains("granted read, write on plan to bob"));
    assert!(as_bob(&["ctx", "put", "plan", "step", "1"]).status.success());
    let listed: Value = serde_json::from_slice(&admin(&["ctx", "grants", "plan", "--json"]).stdout).unwrap();
    assert_eq!(listed["grants"][0]["agent"], "bob");
    assert_eq!(listed["grants"][0]["permissions"], serde_json::json!(["read", "write"]));
    let table = admin(&["ctx", "grants", "plan"]);
    assert!(String::from_utf8_lossy(&table.stdout).lines().nth(1).unwrap().starts_with("bob"));
    assert!(!as_bob(&["ctx", "grant", "plan", "bob", "admin"]).status.success(), "bob may not share");
    let bad = run(s, &["ctx", "grant", "plan", "bob", "everything", "--data-dir", data_dir]);
    assert_eq!(bad.status.code(), Some(2), "an unknown permission is a usage error");

    admin(&["ctx", "revoke", "plan", "bob"]);
    assert_eq!(as_bob(&["ctx", "get", "plan", "step"]).status.code(), Some(1), "revoked");
}

/// `handoff show` prints the handoff field by field, note and outcome
/// included; JSON only with `--json`.
#[test]
fn handoff_show_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let s = server.base.as_str();
    assert!(ctxmesh(s, &["create", "launch"]).status.success());
    for agent in ["researcher", "writer"] {
        json_of(&run(s, &["agents", "register", agent, "--json"]));
    }
    let request = [
        "handoff",
        "request",
        "launch",
        "writer",
        "--key",
        "findings/*",
        "--key",
        "brief",
        "--note",
        "the numbers are in findings/",
        "--agent",
        "researcher",
        "--json",
    ];
    let id = json_of(&run(s, &request))["id"].as_str().unwrap().to_owned();
    assert!(run(s, &["handoff", "accept", &id, "--agent", "writer"]).status.success());
    let result = r#"{"draft": "drafts/1"}"#;
    assert!(run(s, &["handoff", "complete", &id, "--result", result, "--agent", "writer"]).status.success());

    let shown = run(s, &["handoff", "show", &id]);
    assert!(shown.status.success());
    let text = String::from_utf8(shown.stdout).unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "not JSON without --json: {text}");
    for line in [
        format!("id:       {id}"),
        "status:   completed".into(),
        "agents:   researcher → writer".into(),
        "context:  launch@1".into(),
        "keys:     findings/*, brief".into(),
        "note:     the numbers are in findings/".into(),
        r#"outcome:  {"draft":"drafts/1"}"#.into(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    for label in ["deadline: ", "created:  ", "updated:  "] {
        assert!(text.lines().any(|l| l.starts_with(label) && l.len() > label.len() + 10), "{label:?} in:\n{text}");
    }
    let json = json_of(&run(s, &["handoff", "show", &id, "--json"]));
    assert_eq!((json["id"].as_str(), json["note"].as_str()), (Some(id.as_str()), Some("the numbers are in findings/")));
}
