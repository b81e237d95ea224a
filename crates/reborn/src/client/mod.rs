//! The HTTP client of the operator API (what every client subcommand talks through).

mod tls;

use std::time::Duration;

use operator::api::wire::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::exit_code::ExitStatus;

/// The default server when neither `--server` nor `REBORN_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7480";

/// Why a call to the operator API failed. `Display` is one line for a person; the token never
/// appears in it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is malformed.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidServer {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// Nothing answered at the server address.
    #[error(
        "cannot reach the reborn API at {server} (is `reborn run` running? set --server or REBORN_SERVER)"
    )]
    Unreachable {
        /// The server URL.
        server: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("{}", .body.error)]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The JSON error body.
        body: ErrorBody,
    },
    /// The server's answer could not be read.
    #[error("unexpected answer from the reborn API: {0}")]
    Decode(String),
}

impl ClientError {
    /// The documented exit code for this failure.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            ClientError::InvalidServer { .. } => ExitStatus::InvalidInput,
            ClientError::Setup(_) | ClientError::Decode(_) => ExitStatus::Unexpected,
            ClientError::Unreachable { .. } => ExitStatus::Unreachable,
            ClientError::Api { status, .. } => match *status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ExitStatus::Unauthorized,
                StatusCode::NOT_FOUND => ExitStatus::NotFound,
                StatusCode::CONFLICT => ExitStatus::Conflict,
                StatusCode::SERVICE_UNAVAILABLE => ExitStatus::Unreachable,
                s if s.is_client_error() => ExitStatus::InvalidInput,
                _ => ExitStatus::Unexpected,
            },
        }
    }

    /// Extra lines to print after the headline (manifest diagnostics rendered by the server).
    pub fn details(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => body.rendered.as_deref(),
            _ => None,
        }
    }
}

/// A client of one operator API.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Client {
    /// A client of `server` (`http://` or `https://`), sending `token` as a bearer token.
    ///
    /// # Errors
    /// A malformed URL or a TLS set-up failure.
    pub fn new(server: &str, token: Option<String>) -> Result<Self, ClientError> {
        let url = reqwest::Url::parse(server).map_err(|e| ClientError::InvalidServer {
            url: server.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::InvalidServer {
                url: server.to_owned(),
                reason: "expected an http:// or https:// URL".to_owned(),
            });
        }
        let tls = tls::client_config().map_err(ClientError::Setup)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("reborn-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                server: self.base.clone(),
                source,
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
            error: format!("HTTP {status}: {}", text.trim()),
            code: "unknown".to_owned(),
            diagnostics: Vec::new(),
            rendered: None,
        });
        Err(ClientError::Api { status, body })
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path` decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send(self.request(Method::GET, path)).await?;
        Self::decode(resp).await
    }

    /// `GET path` with query parameters, decoded as `T`.
    pub async fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let resp = self
            .send(self.request(Method::GET, path).query(query))
            .await?;
        Self::decode(resp).await
    }

    /// `POST path` with a JSON body, decoded as `T`.
    pub async fn post_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp = self
            .send(self.request(Method::POST, path).json(body))
            .await?;
        Self::decode(resp).await
    }

    /// `POST path` with a YAML text body, decoded as `T`.
    pub async fn post_yaml<T: DeserializeOwned>(
        &self,
        path: &str,
        yaml: String,
    ) -> Result<T, ClientError> {
        let req = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(yaml);
        let resp = self.send(req).await?;
        Self::decode(resp).await
    }

    /// `DELETE path` with query parameters, decoded as `T`.
    pub async fn delete<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let resp = self
            .send(self.request(Method::DELETE, path).query(query))
            .await?;
        Self::decode(resp).await
    }

    /// `GET path` as a stream of lines (the events follow stream); calls `line` for each until
    /// the server ends the stream or `line` returns false.
    pub async fn stream_lines<Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        mut line: impl FnMut(&str) -> bool,
    ) -> Result<(), ClientError> {
        let mut resp = self
            .send(self.request(Method::GET, path).query(query))
            .await?;
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|source| ClientError::Unreachable {
                    server: self.base.clone(),
                    source,
                })?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            pending.extend_from_slice(&chunk);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let rest = pending.split_off(pos + 1);
                let text = String::from_utf8_lossy(&pending[..pos]).into_owned();
                pending = rest;
                if !text.trim().is_empty() && !line(&text) {
                    return Ok(());
                }
            }
        }
    }
}

/// Percent-encodes one path segment (resource names are DNS-like, but be safe).
pub fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
