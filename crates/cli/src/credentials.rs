//! Where the client commands find their bearer token, and the per-user
//! credentials file that `ctxmesh login` and `ctxmesh serve` write.
//!
//! The lookup, first found wins: `--token`; `$CTXMESH_TOKEN`; the admin
//! token file of the data directory (`--data-dir`, default
//! `./ctxmesh-data/admin.token`); the server's entry in
//! `$XDG_CONFIG_HOME/ctxmesh/credentials.json` (default
//! `~/.config/ctxmesh/credentials.json`). That file, mode 0600 in a
//! directory of mode 0700, is shaped
//! `{"servers": {"http://127.0.0.1:7600": {"token": "cmt_..."}}}`, keyed by
//! the server's URL reduced to `scheme://host:port`; `localhost`,
//! `127.0.0.1` and `[::1]` name the same server. The Python SDK reads the
//! same file. Tokens are trimmed of surrounding whitespace wherever they
//! come from.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

/// A token and where it was found, or the places where none was.
#[derive(Debug)]
pub(crate) struct Lookup {
    /// The server, as given (reduced to `scheme://host:port` when it parses).
    pub(crate) server: String,
    /// The token found and its source (`--token`, a file's path...).
    pub(crate) found: Option<(String, String)>,
    /// Each place looked at before, with what was there.
    looked: Vec<String>,
}

impl Lookup {
    /// The token found, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.found.as_ref().map(|(token, _)| token.as_str())
    }

    /// The error of a command that needs a token and found none.
    pub(crate) fn missing(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "no token for {server}: looked at {}; run \"ctxmesh login --server {server}\" or pass --token",
            self.looked.join(", "),
            server = self.server
        )
    }

    /// `error` explained when it is the server's `401`: where a token
    /// was looked for, or where the refused one came from.
    pub(crate) fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        let refused = matches!(
            error.downcast_ref::<ctxmesh_client::ClientError>(),
            Some(ctxmesh_client::ClientError::Api { status: 401, .. })
        );
        match (&self.found, refused) {
            (_, false) => error,
            (None, true) => self.missing(),
            (Some((_, source)), true) => error.context(format!(
                "{} refused the token from {source} (run \"ctxmesh login --server {}\" to save another)",
                self.server, self.server
            )),
        }
    }
}

/// Looks for the token of `server`: `flag` (`--token`), `$CTXMESH_TOKEN`,
/// the admin token in `data_dir`, the credentials file.
pub(crate) fn find_token(server: &str, flag: Option<&str>, data_dir: &Path) -> Lookup {
    let server = normalize(server).unwrap_or_else(|_| server.trim_end_matches('/').to_owned());
    let mut lookup = Lookup { server, found: None, looked: Vec::new() };
    let env = std::env::var("CTXMESH_TOKEN").ok();
    for (value, source) in [(flag, "--token"), (env.as_deref(), "$CTXMESH_TOKEN")] {
        match value.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => {
                lookup.found = Some((token.to_owned(), source.to_owned()));
                return lookup;
            }
            None => lookup.looked.push(source.to_owned()),
        }
    }
    let admin = data_dir.join(crate::serve::ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&admin) {
        Ok(token) if !token.trim().is_empty() => {
            lookup.found = Some((token.trim().to_owned(), admin.display().to_string()));
            return lookup;
        }
        Ok(_) => lookup.looked.push(format!("{} (empty)", admin.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            lookup.looked.push(format!("{} (absent)", admin.display()))
        }
        Err(e) => lookup.looked.push(format!("{} (unreadable: {e})", admin.display())),
    }
    let Some(path) = path() else {
        lookup.looked.push("the per-user credentials file (neither $XDG_CONFIG_HOME nor $HOME is set)".into());
        return lookup;
    };
    match read(&path) {
        Ok(None) => lookup.looked.push(format!("{} (absent)", path.display())),
        Ok(Some(file)) => match entry(&file, &lookup.server) {
            Some(token) => lookup.found = Some((token, path.display().to_string())),
            None => lookup.looked.push(format!("{} (no entry for {})", path.display(), lookup.server)),
        },
        Err(e) => lookup.looked.push(format!("{} ({e:#})", path.display())),
    }
    lookup
}

/// The per-user credentials file: `$XDG_CONFIG_HOME/ctxmesh/credentials.json`,
/// else `$HOME/.config/ctxmesh/credentials.json`.
pub(crate) fn path() -> Option<PathBuf> {
    // The XDG base directory specification ignores a relative value.
    let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let config =
        xdg.or_else(|| std::env::home_dir().filter(|h| !h.as_os_str().is_empty()).map(|h| h.join(".config")))?;
    Some(config.join("ctxmesh").join("credentials.json"))
}

/// `url` reduced to `scheme://host:port` (the port spelled out, no path,
/// no trailing slash): the key of the credentials file.
pub(crate) fn normalize(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url.trim()).with_context(|| format!("{url:?} is not a URL"))?;
    let host = parsed.host_str().filter(|h| !h.is_empty()).with_context(|| format!("{url:?} names no host"))?;
    let port = parsed.port_or_known_default().with_context(|| format!("{url:?} names no port"))?;
    Ok(format!("{}://{host}:{port}", parsed.scheme()))
}

/// Whether two URLs name the same server, the loopback names alike.
fn same_server(a: &str, b: &str) -> bool {
    fn key(url: &str) -> Option<(String, String, u16)> {
        let parsed = reqwest::Url::parse(url.trim()).ok()?;
        let host = match parsed.host_str()? {
            "localhost" | "127.0.0.1" | "[::1]" => "loopback".to_owned(),
            other => other.to_owned(),
        };
        Some((parsed.scheme().to_owned(), host, parsed.port_or_known_default()?))
    }
    key(a).is_some_and(|k| Some(k) == key(b))
}

/// The credentials file at `path`: `None` when absent.
fn read(path: &Path) -> anyhow::Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("unreadable"),
    };
    let file: Value = serde_json::from_str(&text).context("not valid JSON")?;
    anyhow::ensure!(file.is_object(), "not a JSON object");
    Ok(Some(file))
}

/// The token of `server` in the credentials `file`.
fn entry(file: &Value, server: &str) -> Option<String> {
    let servers = file["servers"].as_object()?;
    // An exact key first, then another name of the same server.
    let exact = servers.get(server);
    let alias = || servers.iter().find(|(url, _)| same_server(url, server)).map(|(_, e)| e);
    let token = exact.or_else(alias)?["token"].as_str()?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Saves `token` as `server`'s in the credentials file (replacing the
/// entries of other names of the same server); returns the file's path.
pub(crate) fn save(server: &str, token: &str) -> anyhow::Result<PathBuf> {
    let server = normalize(server)?;
    let path = path().context("cannot find the per-user config directory: set $XDG_CONFIG_HOME or $HOME")?;
    let mut file = read(&path)
        .with_context(|| format!("cannot use {}: fix or delete it", path.display()))?
        .unwrap_or_else(|| json!({}));
    if !file["servers"].is_object() {
        file["servers"] = json!({});
    }
    let servers = file["servers"].as_object_mut().expect("an object");
    servers.retain(|url, _| !same_server(url, &server));
    servers.insert(server, json!({ "token": token.trim() }));
    write(&path, &file)?;
    Ok(path)
}

/// Removes `server`'s entries (under any of its names) from the
/// credentials file; returns the file's path and whether there was one.
pub(crate) fn remove(server: &str) -> anyhow::Result<(PathBuf, bool)> {
    let server = normalize(server)?;
    let path = path().context("cannot find the per-user config directory: set $XDG_CONFIG_HOME or $HOME")?;
    let Some(mut file) = read(&path).with_context(|| format!("cannot use {}: fix or delete it", path.display()))?
    else {
        return Ok((path, false));
    };
    let Some(servers) = file["servers"].as_object_mut() else { return Ok((path, false)) };
    let before = servers.len();
    servers.retain(|url, _| !same_server(url, &server));
    if servers.len() == before {
        return Ok((path, false));
    }
    write(&path, &file)?;
    Ok((path, true))
}

/// Replaces the file at `path` with `file`, atomically: a reader sees the
/// old file or the new one, never a part. The directory is created with
/// mode 0700, the file with 0600.
fn write(path: &Path, file: &Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().context("the credentials file has no directory")?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let context = || format!("cannot write {}", path.display());
    // A temporary file of the same directory is created with mode 0600.
    let mut temp = tempfile::Builder::new().prefix(".credentials").tempfile_in(dir).with_context(context)?;
    let mut text = serde_json::to_string_pretty(file)?;
    text.push('\n');
    temp.write_all(text.as_bytes()).with_context(context)?;
    temp.as_file().sync_all().with_context(context)?;
    temp.persist(path).map_err(|e| e.error).with_context(context)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_reduced_to_scheme_host_and_port() {
        assert_eq!(normalize("http://127.0.0.1:7600/").unwrap(), "http://127.0.0.1:7600");
        assert_eq!(normalize("HTTP://LocalHost:7600/v1").unwrap(), "http://localhost:7600");
        assert_eq!(normalize("https://mesh.example.com").unwrap(), "https://mesh.example.com:443");
        assert_eq!(normalize("http://[::1]:7600").unwrap(), "http://[::1]:7600");
        assert!(normalize("127.0.0.1:7600").is_err());
    }

    #[test]
    fn the_loopback_names_are_one_server() {
        let file = json!({"servers": {
            "http://localhost:7600": {"token": " cmt_loop \n"},
            "http://10.0.0.5:7600": {"token": "cmt_far"},
        }});
        for url in ["http://127.0.0.1:7600", "http://[::1]:7600", "http://localhost:7600"] {
            assert_eq!(entry(&file, url).as_deref(), Some("cmt_loop"), "{url}");
        }
        assert_eq!(entry(&file, "http://10.0.0.5:7600").as_deref(), Some("cmt_far"));
        assert_eq!(entry(&file, "http://127.0.0.1:7601"), None, "another port");
        assert_eq!(entry(&file, "https://127.0.0.1:7600"), None, "another scheme");
        assert_eq!(entry(&json!({}), "http://127.0.0.1:7600"), None);
    }
}
