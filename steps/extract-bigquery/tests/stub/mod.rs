//! A stub of BigQuery's REST API for the CLI tests: an HTTP/1.1 server on loopback that
//! answers each request with what the test's handler returns (the documented JSON shapes,
//! written out by the tests) and records every request it got.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A request the stub got.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The value of a query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.replace("%2B", "+").replace("%3D", "="))
        })
    }
}

type Handler = dyn Fn(&Request, usize) -> (u16, String) + Send + Sync;

pub struct Stub {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Stub {
    /// Serves `handler(request, n)` where `n` counts the requests from 0.
    pub fn start(handler: impl Fn(&Request, usize) -> (u16, String) + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (handler, seen) = (handler.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &*handler, &seen));
            }
        });
        Stub { port, requests }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/bigquery/v2", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<Request>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Request {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let n = {
            let mut all = seen.lock().unwrap();
            all.push(request.clone());
            all.len() - 1
        };
        let (status, body) = handler(&request, n);
        if status == 0 {
            return; // the handler asked to drop the connection
        }
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// The schema of the repo's features.yaml source, as BigQuery writes it.
pub fn schema() -> serde_json::Value {
    serde_json::json!({"fields": [
        {"name": "user_id", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "event_timestamp", "type": "TIMESTAMP", "mode": "NULLABLE"},
        {"name": "amount", "type": "FLOAT", "mode": "NULLABLE"},
        {"name": "merchant_id", "type": "INTEGER", "mode": "NULLABLE"},
    ]})
}

/// A result page of `rows` (each cell a JSON value: a string or null), with a next page token.
pub fn page(rows: &[Vec<serde_json::Value>], token: Option<&str>, schema: serde_json::Value) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::json!({"f": r.iter().map(|v| serde_json::json!({"v": v})).collect::<Vec<_>>()}))
        .collect();
    let mut page = serde_json::json!({
        "kind": "bigquery#queryResponse",
        "jobReference": {"projectId": "demo", "jobId": "job_1", "location": "US"},
        "jobComplete": true,
        "schema": schema,
        "rows": rows,
        "totalRows": rows.len().to_string(),
        "totalBytesProcessed": "1234",
    });
    if let Some(t) = token {
        page["pageToken"] = serde_json::json!(t);
    }
    page.to_string()
}

/// jobs.get of the finished job.
pub fn job() -> String {
    serde_json::json!({
        "jobReference": {"projectId": "demo", "jobId": "job_1", "location": "US"},
        "status": {"state": "DONE"},
        "statistics": {"query": {"totalBytesProcessed": "1234", "totalBytesBilled": "10485760"}},
    })
    .to_string()
}

/// BigQuery's error envelope.
pub fn error(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message,
        "errors": [{"reason": reason, "message": message}], "status": "X"}})
    .to_string()
}
