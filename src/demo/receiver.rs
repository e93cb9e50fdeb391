//! The demo's webhook receiver: a Standard Webhooks endpoint on loopback that checks every
//! signature, keeps what it got, and appends each delivery (headers and body, as received)
//! to a JSON-lines file, so anyone can verify them again with another implementation.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::webhook::sign;

/// The path the receiver listens on.
pub const PATH: &str = "/webhooks";

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// The parsed body.
    pub body: Value,
    /// The signature verified with the demo secret.
    pub verified: bool,
}

struct Inner {
    secret: sign::Secret,
    got: Mutex<Vec<Received>>,
    log: Option<PathBuf>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Receiver {
    /// Starts on 127.0.0.1 (a free port) on the current tokio runtime. `log`: the JSON-lines
    /// file each delivery is appended to.
    pub async fn start(secret: &str, log: Option<PathBuf>) -> io::Result<Receiver> {
        let secret = sign::Secret::parse(secret)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let inner = Arc::new(Inner {
            secret,
            got: Mutex::new(Vec::new()),
            log,
        });
        let app = axum::Router::new()
            .route(PATH, post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { addr, inner })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, in arrival order; `take` empties the list.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.inner.got.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let verified = ts
        .parse::<i64>()
        .is_ok_and(|t| sign::verify(&inner.secret, &id, t, &body, &sig));
    if let Some(path) = &inner.log {
        let line = json!({
            "headers": {"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig},
            "body": String::from_utf8_lossy(&body),
        });
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner
        .got
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            id,
            body: parsed,
            verified,
        });
    if verified {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}
