//! Keeping an agent's lease alive while its process works: a task that
//! sends heartbeats at a third of the lease and ends with its handle, so
//! that only a process that died (or hung) loses the agent's locks.

use std::time::Duration;

use crate::{Client, ClientError, Method};

/// The wait between heartbeats until the server has named the lease: a
/// third of the default lease of 30 s.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The longest wait before retrying a heartbeat that did not get through.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Why a keepalive ended by itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeepAliveEnd {
    /// The agent is not registered (any more): the server answered `404`.
    Unregistered,
    /// The server refused the heartbeat (`401`, `403`, ...): sending it
    /// again would not help.
    Refused(ClientError),
}

/// A running lease keepalive (from [`Client::keep_alive`]). Dropping it
/// stops the heartbeats.
#[derive(Debug)]
pub struct KeepAlive {
    agent: String,
    task: Option<tokio::task::JoinHandle<KeepAliveEnd>>,
    end: Option<KeepAliveEnd>,
}

impl Client {
    /// Keeps `agent`'s lease alive until the returned handle is dropped:
    /// a heartbeat now (`POST /v1/agents/{agent}/heartbeat`), then one
    /// every third of the lease the server answers with (`lease_ms`), so
    /// that a change of the agent's lease is followed. A heartbeat that
    /// does not get through (the server is unreachable, busy or failing)
    /// is retried within a second; a `404` ends the keepalive quietly, as
    /// does any other refusal (see [`KeepAlive::ended`]).
    ///
    /// Must be called within a Tokio runtime, which runs the heartbeats.
    pub fn keep_alive(&self, agent: &str) -> KeepAlive {
        let task = tokio::spawn(heartbeats(self.clone(), agent.to_owned()));
        KeepAlive { agent: agent.to_owned(), task: Some(task), end: None }
    }
}

impl KeepAlive {
    /// The agent whose lease is kept alive.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Whether heartbeats are still being sent.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|task| !task.is_finished())
    }

    /// Waits until the keepalive ends by itself, and says why; it runs
    /// for as long as the server accepts its heartbeats. Cancel-safe; once
    /// ended, it answers at once.
    pub async fn ended(&mut self) -> &KeepAliveEnd {
        if let Some(task) = &mut self.task {
            let end = match task.await {
                Ok(end) => end,
                // The task is aborted only when the handle drops: it panicked.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            self.task = None;
            self.end = Some(end);
        }
        self.end.as_ref().expect("a keepalive without a task has ended")
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Sends heartbeats for `agent` until the server refuses one.
async fn heartbeats(client: Client, agent: String) -> KeepAliveEnd {
    let path = format!("/v1/agents/{agent}/heartbeat");
    let mut interval = DEFAULT_INTERVAL;
    loop {
        // A heartbeat that hangs longer than the wait before the next one
        // is given up and retried, lest the lease run out meanwhile.
        let request = client.request(Method::POST, &path).timeout(interval);
        let wait = match client.send::<serde_json::Value>(request).await {
            Ok(agent) => {
                interval = interval_of(&agent).unwrap_or(interval);
                interval
            }
            Err(ClientError::Api { status: 404, .. }) => return KeepAliveEnd::Unregistered,
            Err(ClientError::Api { status, .. }) if status == 429 || status >= 500 => interval.min(RETRY_INTERVAL),
            Err(e @ (ClientError::Api { .. } | ClientError::Tls(_) | ClientError::Certificate(_))) => {
                return KeepAliveEnd::Refused(e);
            }
            Err(ClientError::Transport(_) | ClientError::Decode(_)) => interval.min(RETRY_INTERVAL),
        };
        tokio::time::sleep(wait).await;
    }
}

/// A third of the lease of the agent record `agent`.
fn interval_of(agent: &serde_json::Value) -> Option<Duration> {
    let lease_ms = agent["lease_ms"].as_u64().filter(|&ms| ms > 0)?;
    Some(Duration::from_millis((lease_ms / 3).max(10)))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A server that answers each request with the next of `answers`
    /// (status, body), the last one forever; it records the request lines.
    async fn scripted(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter().peekable();
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            loop {
                let mut chunk = [0u8; 1024];
                let n = socket.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = buffer.drain(..end + 4).collect();
                    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
                    log.lock().unwrap().push(line);
                    let (status, body) =
                        if answers.len() > 1 { answers.next() } else { answers.peek().copied() }.expect("an answer");
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    socket.write_all(response.as_bytes()).await.unwrap();
                }
            }
        });
        (base, seen)
    }

    const LEASE_30_MS: &str = r#"{"id": "a", "status": "active", "lease_ms": 30}"#;
    const NOT_FOUND: &str = r#"{"error": {"code": "not_found", "message": "no agent a"}}"#;

    /// Heartbeats go out one after the other, at a third of the lease the
    /// server names, and a 404 ends them quietly.
    #[tokio::test]
    async fn heartbeats_until_the_agent_is_gone() {
        let (base, seen) =
            scripted(vec![(200, LEASE_30_MS), (200, LEASE_30_MS), (200, LEASE_30_MS), (404, NOT_FOUND)]).await;
        let mut keep_alive = Client::new(&base).keep_alive("a");
        assert_eq!(keep_alive.agent(), "a");
        assert!(matches!(keep_alive.ended().await, KeepAliveEnd::Unregistered));
        assert!(!keep_alive.is_running());
        assert_eq!(*seen.lock().unwrap(), vec!["POST /v1/agents/a/heartbeat HTTP/1.1"; 4]);
        assert!(matches!(keep_alive.ended().await, KeepAliveEnd::Unregistered), "answers again at once");
    }

    /// A failing server is retried; a refusal ends the keepalive with the
    /// server's error.
    #[tokio::test]
    async fn retries_failures_and_ends_on_a_refusal() {
        let unavailable = r#"{"error": {"code": "unavailable", "message": "busy"}}"#;
        let forbidden = r#"{"error": {"code": "forbidden", "message": "not yours"}}"#;
        let (base, seen) = scripted(vec![(503, unavailable), (200, LEASE_30_MS), (403, forbidden)]).await;
        let mut keep_alive = Client::new(&base).keep_alive("a");
        match keep_alive.ended().await {
            KeepAliveEnd::Refused(e) => assert_eq!(e.code(), Some("forbidden")),
            other => panic!("{other:?}"),
        }
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[test]
    fn the_interval_is_a_third_of_the_lease() {
        let agent = serde_json::json!({"lease_ms": 30_000});
        assert_eq!(interval_of(&agent), Some(Duration::from_secs(10)));
        assert_eq!(interval_of(&serde_json::json!({"lease_ms": 0})), None);
        assert_eq!(interval_of(&serde_json::json!({})), None);
    }
}
