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
    print: std::sync::atomic::AtomicBool,
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
            print: std::sync::atomic::AtomicBool::new(false),
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

    /// From now on, print one line per event received on stdout.
    pub fn print_as_they_arrive(&self) {
        self.inner
            .print
            .store(true, std::sync::atomic::Ordering::SeqCst);
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
    if inner.print.load(std::sync::atomic::Ordering::SeqCst) {
        println!(
            "webhook received{}: {}",
            if verified { "" } else { " (BAD SIGNATURE)" },
            describe(&parsed)
        );
    }
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

/// One line about a received event.
pub fn describe(body: &serde_json::Value) -> String {
    let d = &body["data"];
    let who = d["work_email"]
        .as_str()
        .or(d["source"].as_str())
        .unwrap_or_default();
    let mut line = format!("{} {who}", body["type"].as_str().unwrap_or("?"));
    if let Some(changes) = d["changes"].as_array() {
        let fields: Vec<String> = changes
            .iter()
            .filter(|c| c["field"] != "hris_status")
            .map(|c| {
                format!(
                    "{}: {} -> {}",
                    c["field"].as_str().unwrap_or("?"),
                    c["old"].as_str().unwrap_or("(empty)"),
                    c["new"].as_str().unwrap_or("(empty)")
                )
            })
            .collect();
        line.push_str(&format!(" ({})", fields.join("; ")));
    }
    if let (Some(old), Some(new)) = (
        d["old_manager_email"].as_str(),
        d["new_manager_email"].as_str(),
    ) {
        line.push_str(&format!(" ({old} -> {new})"));
    }
    if d["pre_hire"] == true {
        line.push_str(" (pre-hire)");
    }
    line
}
