//! The HTTP core: builder, authentication (token or ticket), request execution, read retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::error::{Endpoint, Error, classify};
use crate::form::Params;
use crate::ids::{Secret, TokenId};
use crate::tls::{TlsError, TlsMode, client_config};

/// Tickets live 2 h; renew well before.
const DEFAULT_TICKET_RENEW_AFTER: Duration = Duration::from_secs(90 * 60);

/// Why a [`PveClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The base URL is not an `https://` (or `http://`) URL.
    #[error("invalid PVE base URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// Neither `.token(..)` nor `.ticket(..)` was called.
    #[error("no authentication configured: call .token(..) or .ticket(..)")]
    MissingAuth,
    /// The secret contains characters that cannot go into an HTTP header.
    #[error("the API token secret contains characters not allowed in an HTTP header")]
    InvalidSecret,
    /// The TLS configuration failed.
    #[error("TLS set-up failed")]
    Tls(#[source] TlsError),
    /// reqwest refused the configuration.
    #[error("HTTP client set-up failed")]
    Http(#[source] reqwest::Error),
}

enum AuthConfig {
    Token(TokenId, Secret),
    Ticket { user: String, password: Secret },
}

/// Builder for [`PveClient`]; see [`PveClient::builder`].
pub struct PveClientBuilder {
    url: String,
    auth: Option<AuthConfig>,
    tls: TlsMode,
    connect_timeout: Duration,
    request_timeout: Duration,
    read_attempts: usize,
    retry_min_delay: Duration,
    ticket_renew_after: Duration,
}

impl std::fmt::Debug for PveClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Some(AuthConfig::Token(id, _)) => format!("token {id}"),
            Some(AuthConfig::Ticket { user, .. }) => format!("ticket {user}"),
            None => "none".to_owned(),
        };
        f.debug_struct("PveClientBuilder")
            .field("url", &self.url)
            .field("auth", &auth)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl PveClientBuilder {
    /// Authenticate every request with an API token (`PVEAPIToken=USER@REALM!ID=SECRET`).
    /// Tokens need no CSRF token and never expire on their own. Preferred.
    pub fn token(mut self, id: TokenId, secret: Secret) -> Self {
        self.auth = Some(AuthConfig::Token(id, secret));
        self
    }

    /// Authenticate with a user and password through `/access/ticket`; the ticket is sent as
    /// cookie, writes carry the CSRF token, and the ticket is renewed before its 2 h expiry.
    pub fn ticket(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.auth = Some(AuthConfig::Ticket {
            user: user.into(),
            password,
        });
        self
    }

    /// How the server certificate is checked (default: [`TlsMode::System`]).
    pub fn tls(mut self, mode: TlsMode) -> Self {
        self.tls = mode;
        self
    }

    /// TCP+TLS connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whole-request timeout (default 60 s; pveproxy itself gives up after 30 s of silence).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often an idempotent read is tried in total (default 4: one try and 3 retries with
    /// jittered exponential backoff). `1` disables retries. Mutations are never retried.
    pub fn read_attempts(mut self, attempts: usize) -> Self {
        self.read_attempts = attempts.max(1);
        self
    }

    /// First retry delay (default 200 ms; doubles per retry, capped at 5 s, jittered).
    pub fn retry_min_delay(mut self, delay: Duration) -> Self {
        self.retry_min_delay = delay;
        self
    }

    /// With ticket auth: renew the ticket (POST `/access/ticket` with the current ticket as
    /// password) once it is this old (default 90 min; PVE tickets expire after 2 h).
    pub fn ticket_renew_after(mut self, age: Duration) -> Self {
        self.ticket_renew_after = age;
        self
    }

    /// Builds the client. No request is made yet.
    pub fn build(self) -> Result<PveClient, BuildError> {
        let api_base = api_base(&self.url)?;
        let auth = match self.auth.ok_or(BuildError::MissingAuth)? {
            AuthConfig::Token(id, secret) => {
                let mut value = HeaderValue::from_str(&format!(
                    "PVEAPIToken={}={}",
                    id.as_str(),
                    secret.expose()
                ))
                .map_err(|_| BuildError::InvalidSecret)?;
                value.set_sensitive(true);
                Auth::Token { header: value }
            }
            AuthConfig::Ticket { user, password } => Auth::Ticket {
                user,
                password,
                state: Mutex::new(None),
            },
        };
        let tls = client_config(&self.tls).map_err(BuildError::Tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .user_agent(concat!("reborn-pve-client/", env!("CARGO_PKG_VERSION")))
            .http1_only()
            .build()
            .map_err(BuildError::Http)?;
        Ok(PveClient {
            inner: Arc::new(Inner {
                http,
                api_base,
                auth,
                read_attempts: self.read_attempts,
                retry_min_delay: self.retry_min_delay,
                ticket_renew_after: self.ticket_renew_after,
            }),
        })
    }
}

fn api_base(url: &str) -> Result<String, BuildError> {
    let bad = |why: &str| BuildError::InvalidUrl {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(bad("scheme must be https"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    let mut base = parsed.as_str().trim_end_matches('/').to_owned();
    if let Some(stripped) = base.strip_suffix("/api2/json") {
        base = stripped.to_owned();
    }
    Ok(format!("{base}/api2/json"))
}

enum Auth {
    Token {
        header: HeaderValue,
    },
    Ticket {
        user: String,
        password: Secret,
        state: Mutex<Option<TicketState>>,
    },
}

#[derive(Clone)]
struct TicketState {
    ticket: Secret,
    csrf: Secret,
    obtained: Instant,
}

#[derive(Deserialize)]
struct TicketAnswer {
    ticket: String,
    #[serde(rename = "CSRFPreventionToken")]
    csrf: String,
}

struct Inner {
    http: reqwest::Client,
    api_base: String,
    auth: Auth,
    read_attempts: usize,
    retry_min_delay: Duration,
    ticket_renew_after: Duration,
}

/// An async Proxmox VE API client. Cheap to clone (shares one connection pool).
///
/// Errors: every call returns [`Error`] with the method and path it concerns. Reads (GET) are
/// retried with jittered exponential backoff on transport errors, proxy timeouts and generic
/// 5xx answers; writes are never retried — on [`Error::outcome_unknown`] re-read state.
#[derive(Clone)]
pub struct PveClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.inner.auth {
            Auth::Token { .. } => "token".to_owned(),
            Auth::Ticket { user, .. } => format!("ticket {user}"),
        };
        f.debug_struct("PveClient")
            .field("api_base", &self.inner.api_base)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// The `{"data": ..., "total": ...}` envelope of a successful answer.
#[derive(Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) data: T,
    #[serde(default, deserialize_with = "crate::lenient::opt_u64")]
    pub(crate) total: Option<u64>,
}

impl PveClient {
    /// Starts building a client for `url` (e.g. `https://pve1.example:8006`; a trailing
    /// `/api2/json` is accepted).
    pub fn builder(url: impl Into<String>) -> PveClientBuilder {
        PveClientBuilder {
            url: url.into(),
            auth: None,
            tls: TlsMode::System,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            read_attempts: 4,
            retry_min_delay: Duration::from_millis(200),
            ticket_renew_after: DEFAULT_TICKET_RENEW_AFTER,
        }
    }

    /// `https://host:8006/api2/json`.
    pub fn api_base(&self) -> &str {
        &self.inner.api_base
    }

    /// Sends one call and decodes the `data` (and `total`) of the answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<Envelope<T>, Error> {
        let (endpoint, body) = self.call_raw(method, path, params).await?;
        crate::decode::envelope(&body).map_err(|source| Error::Decode { endpoint, source })
    }

    /// Sends one call (reads with retries) and returns the raw success body.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<(Endpoint, bytes::Bytes), Error> {
        let endpoint = Endpoint {
            method: method.clone(),
            path: path.to_owned(),
        };
        let body = if method == Method::GET {
            let backoff = ExponentialBuilder::default()
                .with_min_delay(self.inner.retry_min_delay)
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(self.inner.read_attempts.saturating_sub(1))
                .with_jitter();
            (|| self.send_authenticated(&endpoint, params))
                .retry(backoff)
                .sleep(tokio::time::sleep)
                .when(Error::is_transient)
                .notify(|err, delay| {
                    tracing::debug!(%endpoint, error = %err, ?delay, "retrying PVE read");
                })
                .await?
        } else {
            self.send_authenticated(&endpoint, params).await?
        };
        Ok((endpoint, body))
    }

    /// One attempt; with ticket auth a 401 triggers one fresh login and one resend (a 401
    /// means PVE did not execute the request, so this is safe for writes too).
    async fn send_authenticated(
        &self,
        endpoint: &Endpoint,
        params: &Params,
    ) -> Result<bytes::Bytes, Error> {
        match self.send_once(endpoint, params, false).await {
            Err(Error::Unauthenticated {
                endpoint: failed, ..
            }) if matches!(self.inner.auth, Auth::Ticket { .. })
                && failed.path != "/access/ticket" =>
            {
                tracing::info!(%endpoint, "PVE ticket rejected; logging in again");
                self.send_once(endpoint, params, true).await
            }
            other => other,
        }
    }

    async fn send_once(
        &self,
        endpoint: &Endpoint,
        params: &Params,
        fresh_login: bool,
    ) -> Result<bytes::Bytes, Error> {
        let headers = self.auth_headers(endpoint, fresh_login).await?;
        self.send_raw(endpoint, params, headers).await
    }

    async fn send_raw(
        &self,
        endpoint: &Endpoint,
        params: &Params,
        headers: HeaderMap,
    ) -> Result<bytes::Bytes, Error> {
        let mut url = format!("{}{}", self.inner.api_base, endpoint.path);
        let has_body = matches!(endpoint.method, Method::POST | Method::PUT);
        if !has_body && !params.is_empty() {
            url.push('?');
            url.push_str(&params.encode());
        }
        let mut req = self
            .inner
            .http
            .request(endpoint.method.clone(), url)
            .headers(headers);
        if has_body {
            req = req
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(params.encode());
        }
        let started = Instant::now();
        let transport = |source| Error::Transport {
            endpoint: endpoint.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .and_then(|r| std::str::from_utf8(r.as_bytes()).ok())
            .map(str::to_owned)
            .or_else(|| status.canonical_reason().map(str::to_owned));
        let body = resp.bytes().await.map_err(transport)?;
        tracing::debug!(
            %endpoint,
            params = ?params.keys(),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PVE call"
        );
        if status.is_success() {
            Ok(body)
        } else {
            Err(classify(
                endpoint.clone(),
                status.as_u16(),
                reason.as_deref(),
                &body,
            ))
        }
    }

    async fn auth_headers(&self, endpoint: &Endpoint, fresh: bool) -> Result<HeaderMap, Error> {
        let mut headers = HeaderMap::new();
        match &self.inner.auth {
            Auth::Token { header } => {
                headers.insert(AUTHORIZATION, header.clone());
            }
            Auth::Ticket {
                user,
                password,
                state,
            } => {
                let ticket = {
                    let mut guard = state.lock().await;
                    let current = if fresh { None } else { guard.clone() };
                    let renewed = match current {
                        Some(t) if t.obtained.elapsed() < self.inner.ticket_renew_after => t,
                        Some(t) => match self.login(user, &t.ticket).await {
                            Ok(t) => {
                                tracing::debug!(user, "renewed PVE ticket");
                                t
                            }
                            Err(err) => {
                                tracing::info!(error = %err, "PVE ticket renewal failed; logging in with the password");
                                self.login(user, password).await?
                            }
                        },
                        None => self.login(user, password).await?,
                    };
                    *guard = Some(renewed.clone());
                    renewed
                };
                let mut cookie =
                    HeaderValue::from_str(&format!("PVEAuthCookie={}", ticket.ticket.expose()))
                        .map_err(|_| self.bad_ticket(endpoint))?;
                cookie.set_sensitive(true);
                headers.insert(COOKIE, cookie);
                if endpoint.method != Method::GET {
                    let mut csrf = HeaderValue::from_str(ticket.csrf.expose())
                        .map_err(|_| self.bad_ticket(endpoint))?;
                    csrf.set_sensitive(true);
                    headers.insert("CSRFPreventionToken", csrf);
                }
            }
        }
        Ok(headers)
    }

    fn bad_ticket(&self, endpoint: &Endpoint) -> Error {
        Error::Unauthenticated {
            endpoint: endpoint.clone(),
            reason: "PVE returned a ticket that cannot be sent as a header".to_owned(),
        }
    }

    /// `POST /access/ticket` with a password or (for renewal) the current ticket.
    async fn login(&self, user: &str, password: &Secret) -> Result<TicketState, Error> {
        let endpoint = Endpoint {
            method: Method::POST,
            path: "/access/ticket".to_owned(),
        };
        let mut params = Params::new();
        params
            .push("username", user)
            .push("password", password.expose());
        let body = self.send_raw(&endpoint, &params, HeaderMap::new()).await?;
        let answer: Envelope<TicketAnswer> =
            crate::decode::envelope(&body).map_err(|source| Error::Decode {
                endpoint: endpoint.clone(),
                source,
            })?;
        tracing::debug!(user, "obtained PVE ticket");
        Ok(TicketState {
            ticket: Secret::new(answer.data.ticket),
            csrf: Secret::new(answer.data.csrf),
            obtained: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_normalised_to_api2_json() {
        for url in [
            "https://pve1:8006",
            "https://pve1:8006/",
            "https://pve1:8006/api2/json",
            "https://pve1:8006/api2/json/",
        ] {
            assert_eq!(api_base(url).expect(url), "https://pve1:8006/api2/json");
        }
        assert!(api_base("ftp://pve1").is_err());
        assert!(api_base("pve1:8006").is_err());
        assert!(api_base("https://pve1:8006/?x=1").is_err());
    }

    #[test]
    fn builder_requires_auth_and_hides_secret() {
        let err = PveClient::builder("https://pve1:8006")
            .tls(TlsMode::Insecure)
            .build()
            .expect_err("no auth");
        assert!(matches!(err, BuildError::MissingAuth));

        let id: TokenId = "root@pam!reborn".parse().expect("valid");
        let builder = PveClient::builder("https://pve1:8006")
            .token(id, Secret::new("s3cr3t-value"))
            .tls(TlsMode::Insecure);
        assert!(!format!("{builder:?}").contains("s3cr3t"));
        let client = builder.build().expect("builds");
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert_eq!(client.api_base(), "https://pve1:8006/api2/json");
    }

    #[test]
    fn secret_with_newline_is_rejected_without_echoing_it() {
        let id: TokenId = "root@pam!reborn".parse().expect("valid");
        let err = PveClient::builder("https://pve1:8006")
            .token(id, Secret::new("bad\nsecret"))
            .tls(TlsMode::Insecure)
            .build()
            .expect_err("invalid header");
        assert!(matches!(err, BuildError::InvalidSecret));
        assert!(!err.to_string().contains("bad"));
    }
}
