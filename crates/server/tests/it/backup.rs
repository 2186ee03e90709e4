//! `GET /v1/backup`: the admin only, every request in the audit log; the
//! embedded store answers its database file, PostgreSQL a clear refusal.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestServer, status_json};

const ADMIN: &str = "admin-secret-for-tests";

on_both_stores!(backups_are_for_the_admin_only);

async fn call(s: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = s.req(Method::GET, path);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    status_json(req.send().await.unwrap()).await
}

async fn backups_are_for_the_admin_only(s: TestServer) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (status, agent) = status_json(
        s.req(Method::POST, "/v1/agents").bearer_auth(ADMIN).json(&json!({"id": "bob"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let bob = agent["token"].as_str().unwrap().to_owned();
    let (status, body) = call(&s, "/v1/backup", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
    let (status, body) = call(&s, "/v1/backup", Some(&bob)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");

    let answer = s.req(Method::GET, "/v1/backup").bearer_auth(ADMIN).send().await.unwrap();
    match &s.backend {
        Backend::Sqlite => {
            assert_eq!(answer.status(), 200);
            assert_eq!(answer.headers()["content-type"], "application/vnd.sqlite3");
            let length: u64 = answer.headers()["content-length"].to_str().unwrap().parse().unwrap();
            let bytes = answer.bytes().await.unwrap();
            assert_eq!(bytes.len() as u64, length);
            assert!(bytes.starts_with(b"SQLite format 3\0"), "a SQLite database file");
            // The snapshot file beside the database is gone once sent.
            let left: Vec<_> = std::fs::read_dir(s.dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains(".snapshot-"))
                .collect();
            assert!(left.is_empty(), "snapshot files left: {left:?}");
        }
        Backend::Postgres(_) => {
            let (status, body) = status_json(answer).await;
            assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
            assert_eq!(body["error"]["details"]["store"], "postgres");
            assert!(body["error"]["message"].as_str().unwrap().contains("pg_dump"), "{body}");
        }
    }

    // Both requests are in the audit log.
    let logged = async {
        loop {
            let (status, page) = call(&s, "/v1/audit?context=*", Some(ADMIN)).await;
            assert_eq!(status, 200, "{page}");
            let records = page["records"].as_array().unwrap().clone();
            if records.len() >= 2 {
                return records;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let records = tokio::time::timeout(std::time::Duration::from_secs(10), logged).await.expect("backups are logged");
    let seen: Vec<(&str, bool, &str)> = records
        .iter()
        .map(|r| (r["agent"].as_str().unwrap(), r["allowed"].as_bool().unwrap(), r["action"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("bob", false, "backup"), ("admin", true, "backup")]);
    assert!(records.iter().all(|r| r["resource"] == "GET /v1/backup"));
}
