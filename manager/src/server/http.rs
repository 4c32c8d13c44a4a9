//! The HTTP front door: `/client/api` (GET and POST form) and `/healthz`.
//!
//! A request goes: parameters parsed (case-insensitive names) → caller
//! authenticated (API key + signature, or a login session) → command looked
//! up and its role checked → required parameters checked → handler → reply
//! wrapped in CloudStack's envelope, JSON or XML.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::api::{ApiError, Format, Params, response, response_name};
use crate::server::auth;
use crate::server::context::{App, Ctx};
use crate::server::registry::{Kind, Reply};

/// The API and health routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/client/api", get(api).post(api))
        .route("/client/api/", get(api).post(api))
        .route("/healthz", get(healthz))
        .with_state(app)
}

/// How long `/healthz` may take: a load balancer's probe needs an answer
/// (503 with the reason) while the database is down, not a hang.
const HEALTH_BUDGET: std::time::Duration = std::time::Duration::from_millis(800);

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.db.health(HEALTH_BUDGET).await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {why}\n"),
        )
            .into_response(),
    }
}

/// A rendered API answer with its status and extra headers.
struct Answer {
    status: StatusCode,
    format: Format,
    body: Value,
    cookies: Vec<String>,
    description: Option<String>,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.format.render(&self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.format.content_type()),
        );
        for cookie in self.cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        if let Some(text) = self
            .description
            .and_then(|d| HeaderValue::from_str(&d).ok())
        {
            headers.insert("X-Description", text);
        }
        response
    }
}

fn error_answer(format: Format, wrapper: &str, error: &ApiError) -> Answer {
    Answer {
        status: StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        format,
        body: error.to_body(wrapper),
        cookies: Vec::new(),
        description: Some(error.text.clone()),
    }
}

/// Whether a command only reads (its name starts with list, get, query or
/// find), so it may come by GET when POST is enforced.
pub fn is_read_command(command: &str) -> bool {
    ["list", "get", "query", "find"]
        .iter()
        .any(|p| command.starts_with(p) && command.len() > p.len())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn api(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let body = if method == Method::POST && is_form(&headers) {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        String::new()
    };
    let params = Params::parse_request(query.as_deref().unwrap_or(""), &body);
    let format = Format::from_params(&params);
    let command = params.get("command").unwrap_or_default().to_string();
    let mut account = None;
    let answer = match handle(&app, &method, &headers, &params, &command, &mut account).await {
        Ok(answer) => answer,
        Err((wrapper, error)) => error_answer(format, &wrapper, &error),
    };
    // The one line per request, at INFO whatever the status: a refused
    // request is the tenant's business, not the manager's fault.
    tracing::info!(
        command = %command,
        account = %account.as_deref().unwrap_or("-"),
        status = answer.status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "api request"
    );
    Answer { format, ..answer }.into_response()
}

/// Runs one request; errors carry the wrapper key they are reported under.
async fn handle(
    app: &Arc<App>,
    method: &Method,
    headers: &HeaderMap,
    params: &Params,
    command: &str,
    account: &mut Option<String>,
) -> Result<Answer, (String, ApiError)> {
    let unknown_wrapper = || "errorresponse".to_string();
    params.validate().map_err(|e| (unknown_wrapper(), e))?;
    if command.is_empty() {
        return Err((unknown_wrapper(), ApiError::unknown_command("")));
    }
    let wrapper = response_name(command);
    let format = Format::from_params(params);

    match command {
        "login" => {
            if method != Method::POST {
                return Err((
                    wrapper,
                    ApiError::method_not_allowed("login must be sent with POST"),
                ));
            }
            let (body, cookies) = auth::login(app, params, app.settings.tls())
                .await
                .map_err(|e| (wrapper.clone(), e))?;
            return Ok(Answer {
                status: StatusCode::OK,
                format,
                body: response::strip_nulls(body),
                cookies,
                description: None,
            });
        }
        "logout" => {
            let body = auth::logout(app, headers, params)
                .await
                .map_err(|e| (wrapper.clone(), e))?;
            let expired = auth::session_cookie("", app.settings.tls());
            return Ok(Answer {
                status: StatusCode::OK,
                format,
                body,
                cookies: vec![expired],
                description: None,
            });
        }
        _ => {}
    }

    let caller = auth::authenticate(app, headers, params)
        .await
        .map_err(|e| (wrapper.clone(), e))?;
    *account = Some(caller.account_name.clone());
    let spec = match app.registry.get(command) {
        Some(spec) => spec,
        None => return Err((unknown_wrapper(), ApiError::unknown_command(command))),
    };
    if !spec.allows(caller.role) {
        return Err((unknown_wrapper(), ApiError::not_allowed(command)));
    }
    // `enforce.post.requests.and.timestamps`: CloudStack then accepts
    // state-changing commands by POST only; reads (list, get, query, find)
    // keep GET.
    if method != Method::POST && !is_read_command(command) {
        let enforced =
            crate::store::config::value_bool(&app.db, "enforce.post.requests.and.timestamps")
                .await
                .map_err(|e| (wrapper.clone(), e.into()))?
                .unwrap_or(false);
        if enforced {
            return Err((
                wrapper,
                ApiError::method_not_allowed(format!(
                    "{command} changes state: send it with POST (enforce.post.requests.and.timestamps)"
                )),
            ));
        }
    }
    spec.check_params(params)
        .map_err(|e| (wrapper.clone(), e))?;
    let custom_job_id = if spec.kind == Kind::Sync {
        None
    } else {
        let given = params
            .string("customjobid")
            .map_err(|e| (wrapper.clone(), e))?;
        crate::server::jobs::check_custom_job_id(&app.db, given.as_deref())
            .await
            .map_err(|e| (wrapper.clone(), e))?
    };
    let ctx = Ctx {
        app: app.clone(),
        caller,
        command: spec.name,
        custom_job_id,
        http_post: method == Method::POST,
    };
    let reply = (spec.handler)(&ctx, params)
        .await
        .map_err(|e| (wrapper.clone(), e))?;
    let body = match reply {
        Reply::Object(item) => response::object(command, spec.object, item),
        Reply::List { count, items } => response::list(command, spec.object, count, items),
        Reply::Success => response::success(command, None),
        Reply::Job { job_id } => {
            debug_assert_eq!(spec.kind, Kind::Async);
            response::job(command, &job_id)
        }
        Reply::Created { id, job_id } => response::async_create(command, &id, &job_id),
        Reply::Raw(content) => serde_json::json!({ wrapper.clone(): content }),
    };
    Ok(Answer {
        status: StatusCode::OK,
        format,
        body: response::strip_nulls(body),
        cookies: Vec::new(),
        description: None,
    })
}

/// The TLS acceptor of the API from a PEM certificate chain and key.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the API certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the API key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the API certificate and key")?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` over TLS until `shutdown` resolves. Each connection's
/// handshake runs in its own task, so a slow client never holds up others.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
