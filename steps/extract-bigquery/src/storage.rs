//! The BigQuery Storage Read API, for large pulls: a read session over the table holding a
//! query's result, its streams read in parallel as Arrow record batches.
//!
//! gRPC is spoken over the HTTP/2 client the binary already has (reqwest; no second stack):
//! a call is a POST of one length-prefixed protobuf message, the answer one or more such
//! messages and a `grpc-status` in the trailers (or, when the call fails at once, in the
//! headers). The messages are the few fields of `google.cloud.bigquery.storage.v1` this step
//! uses, by their field numbers. A stream that fails for now is read again from the row it
//! stopped at (ReadRows' `offset`).

use std::time::Duration;

use arrow::buffer::Buffer;
use arrow::record_batch::RecordBatch;
use bytes::{Buf, BytesMut};
use featurekit::exit::{Error, Kind, Result};
use featurekit::retry::Backoff;
use http_body_util::BodyExt;
use prost::Message;

use crate::rest::Auth;

#[derive(Clone, PartialEq, Message)]
struct CreateReadSessionRequest {
    #[prost(string, tag = "1")]
    parent: String,
    #[prost(message, optional, tag = "2")]
    read_session: Option<ReadSession>,
    #[prost(int32, tag = "3")]
    max_stream_count: i32,
}

#[derive(Clone, PartialEq, Message)]
struct ReadSession {
    #[prost(string, tag = "1")]
    name: String,
    /// ARROW = 2.
    #[prost(int32, tag = "3")]
    data_format: i32,
    #[prost(message, optional, tag = "5")]
    arrow_schema: Option<ArrowSchema>,
    #[prost(string, tag = "6")]
    table: String,
    #[prost(message, optional, tag = "8")]
    read_options: Option<TableReadOptions>,
    #[prost(message, repeated, tag = "10")]
    streams: Vec<ReadStream>,
}

#[derive(Clone, PartialEq, Message)]
struct TableReadOptions {
    #[prost(string, repeated, tag = "1")]
    selected_fields: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ReadStream {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct ArrowSchema {
    #[prost(bytes = "vec", tag = "1")]
    serialized_schema: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ReadRowsRequest {
    #[prost(string, tag = "1")]
    read_stream: String,
    #[prost(int64, tag = "2")]
    offset: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ReadRowsResponse {
    #[prost(message, optional, tag = "4")]
    arrow_record_batch: Option<ArrowRecordBatch>,
    #[prost(int64, tag = "6")]
    row_count: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ArrowRecordBatch {
    #[prost(bytes = "vec", tag = "1")]
    serialized_record_batch: Vec<u8>,
    #[prost(int64, tag = "2")]
    row_count: i64,
}

const ARROW: i32 = 2;
const SERVICE: &str = "google.cloud.bigquery.storage.v1.BigQueryRead";

/// A read session: its streams and the Arrow schema their batches follow.
pub struct Session {
    pub streams: Vec<String>,
    schema: Vec<u8>,
}

/// The Storage Read API of one endpoint.
pub struct StorageClient {
    http: reqwest::Client,
    base: String,
    backoff: Backoff,
}

impl StorageClient {
    pub fn new(endpoint: &str, backoff: Backoff) -> Result<StorageClient> {
        let base = endpoint.trim_end_matches('/').to_string();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("featurekit-extract-bigquery/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30));
        if base.starts_with("http://") {
            // gRPC without TLS (an emulator) is HTTP/2 from the first byte
            builder = builder.http2_prior_knowledge();
        }
        let http = builder
            .build()
            .map_err(|e| Error::config(format!("the Storage Read API client: {e}")))?;
        Ok(StorageClient { http, base, backoff })
    }

    /// CreateReadSession over `table` (`projects/P/datasets/D/tables/T`) with up to `streams`
    /// streams, billed to `project`, reading only `columns`.
    pub async fn session(
        &self,
        auth: &Auth,
        project: &str,
        table: &str,
        columns: &[String],
        streams: u16,
    ) -> Result<Session> {
        let request = CreateReadSessionRequest {
            parent: format!("projects/{project}"),
            read_session: Some(ReadSession {
                table: table.to_string(),
                data_format: ARROW,
                read_options: Some(TableReadOptions {
                    selected_fields: columns.to_vec(),
                }),
                ..Default::default()
            }),
            max_stream_count: i32::from(streams),
        };
        let params = format!("read_session.table={table}");
        let mut retry = 0;
        let session: ReadSession = loop {
            match self.call(auth, "CreateReadSession", &params, &request).await {
                Ok(mut messages) => match messages.next_message().await {
                    Ok(Some(bytes)) => break decode(&bytes)?,
                    Ok(None) => return Err(Error::transient("CreateReadSession answered nothing")),
                    Err(e) => self.again(&mut retry, e, "CreateReadSession").await?,
                },
                Err(e) => self.again(&mut retry, e, "CreateReadSession").await?,
            }
        };
        let schema = session.arrow_schema.map(|s| s.serialized_schema).unwrap_or_default();
        Ok(Session {
            streams: session.streams.into_iter().map(|s| s.name).collect(),
            schema: strip_end_of_stream(schema),
        })
    }

    /// Reads a stream whole, handing each batch to `each`; a transient failure resumes at the
    /// row reached.
    pub async fn read(
        &self,
        auth: &Auth,
        session: &Session,
        stream: &str,
        mut each: impl AsyncFnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let mut offset: i64 = 0;
        let mut retry = 0;
        let params = format!("read_stream={stream}");
        loop {
            let request = ReadRowsRequest {
                read_stream: stream.to_string(),
                offset,
            };
            let mut messages = match self.call(auth, "ReadRows", &params, &request).await {
                Ok(m) => m,
                Err(e) => {
                    self.again(&mut retry, e, "ReadRows").await?;
                    continue;
                }
            };
            let mut decoder = arrow::ipc::reader::StreamDecoder::new();
            let mut schema = Buffer::from(session.schema.clone());
            decoder
                .decode(&mut schema)
                .map_err(|e| Error::transient(format!("the read session's Arrow schema: {e}")))?;
            loop {
                match messages.next_message().await {
                    Ok(Some(bytes)) => {
                        let rows: ReadRowsResponse = decode(&bytes)?;
                        let Some(batch) = rows.arrow_record_batch else { continue };
                        let mut buffer = Buffer::from(batch.serialized_record_batch);
                        while !buffer.is_empty() {
                            let decoded = decoder
                                .decode(&mut buffer)
                                .map_err(|e| Error::transient(format!("ReadRows: a record batch: {e}")))?;
                            if let Some(b) = decoded {
                                offset += b.num_rows() as i64;
                                each(b).await?;
                            }
                        }
                        retry = 0;
                    }
                    Ok(None) => return Ok(offset as u64),
                    Err(e) => {
                        self.again(&mut retry, e, "ReadRows").await?;
                        break;
                    }
                }
            }
        }
    }

    /// Waits before retry `retry` of a transient failure; any other error is returned.
    async fn again(&self, retry: &mut u32, e: Error, what: &str) -> Result<()> {
        *retry += 1;
        if e.kind() != Kind::Transient || *retry >= self.backoff.attempts {
            return Err(e.context(format!("BigQuery Storage Read API {what}")));
        }
        let wait = self.backoff.delay(*retry);
        tracing::warn!(call = what, attempt = *retry, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    async fn call(&self, auth: &Auth, method: &str, params: &str, request: &impl Message) -> Result<Messages> {
        let mut body = Vec::with_capacity(request.encoded_len() + 5);
        body.push(0);
        body.extend_from_slice(&(request.encoded_len() as u32).to_be_bytes());
        request
            .encode(&mut body)
            .map_err(|e| Error::bug(format!("encoding {method}: {e}")))?;
        let mut req = self
            .http
            .post(format!("{}/{SERVICE}/{method}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/grpc")
            .header(reqwest::header::TE, "trailers")
            .header("x-goog-request-params", params)
            .body(body);
        if let Some(token) = auth.token().await? {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::transient(format!("{method}: {e}")))?;
        if let Some(status) = grpc_status(resp.headers()) {
            status?;
        }
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let kind = if code == 429 || code >= 500 {
                Kind::Transient
            } else {
                Kind::Config
            };
            return Err(Error::msg(kind, format!("{method}: HTTP {code}")));
        }
        let body: http::Response<reqwest::Body> = resp.into();
        Ok(Messages {
            body: body.into_body(),
            buffer: BytesMut::new(),
            method: method.to_string(),
            done: false,
        })
    }
}

/// The messages of a gRPC answer, as they arrive.
struct Messages {
    body: reqwest::Body,
    buffer: BytesMut,
    method: String,
    done: bool,
}

impl Messages {
    /// The next message, `None` after the last one when the call ended well.
    async fn next_message(&mut self) -> Result<Option<bytes::Bytes>> {
        loop {
            if self.buffer.len() >= 5 {
                let len = u32::from_be_bytes([self.buffer[1], self.buffer[2], self.buffer[3], self.buffer[4]]) as usize;
                if self.buffer[0] != 0 {
                    return Err(Error::config(format!(
                        "{}: a compressed message, never asked for",
                        self.method
                    )));
                }
                if self.buffer.len() >= 5 + len {
                    self.buffer.advance(5);
                    return Ok(Some(self.buffer.split_to(len).freeze()));
                }
            }
            if self.done {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(Error::transient(format!(
                        "{}: the answer ended inside a message",
                        self.method
                    )))
                };
            }
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            match grpc_status(trailers) {
                                Some(status) => status.map_err(|e| e.context(self.method.clone()))?,
                                None => {
                                    return Err(Error::transient(format!(
                                        "{}: trailers without a status",
                                        self.method
                                    )));
                                }
                            }
                            self.done = true;
                        }
                    }
                },
                Some(Err(e)) => return Err(Error::transient(format!("{}: {e}", self.method))),
                None => {
                    // an answer must end with its status
                    return Err(Error::transient(format!(
                        "{}: the answer ended without a status",
                        self.method
                    )));
                }
            }
        }
    }
}

/// `grpc-status` and `grpc-message`, when present: transient for UNAVAILABLE,
/// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED and INTERNAL; the rest (INVALID_ARGUMENT,
/// NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED...) are not worth another try.
fn grpc_status(headers: &http::HeaderMap) -> Option<Result<()>> {
    let code: u32 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(|m| m.replace("%20", " "))
        .unwrap_or_default();
    let kind = if matches!(code, 4 | 8 | 10 | 13 | 14) {
        Kind::Transient
    } else {
        Kind::Config
    };
    Some(Err(Error::msg(kind, format!("gRPC status {code}: {message}"))))
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::transient(format!("a message of the Storage Read API: {e}")))
}

/// The emulator sends the schema as a whole IPC stream, ending in the end-of-stream marker;
/// BigQuery sends the bare message. The decoder must not see an end before the batches.
fn strip_end_of_stream(mut schema: Vec<u8>) -> Vec<u8> {
    const EOS: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    if schema.ends_with(&EOS) {
        schema.truncate(schema.len() - EOS.len());
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let mut h = http::HeaderMap::new();
        assert!(grpc_status(&h).is_none());
        h.insert("grpc-status", "0".parse().unwrap());
        assert!(grpc_status(&h).unwrap().is_ok());
        h.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(grpc_status(&h).unwrap().unwrap_err().kind(), Kind::Transient);
        h.insert("grpc-status", "5".parse().unwrap());
        h.insert("grpc-message", "Table%20not%20found".parse().unwrap());
        let e = grpc_status(&h).unwrap().unwrap_err();
        assert_eq!(e.kind(), Kind::Config);
        assert!(e.to_string().contains("Table not found"), "{e}");
    }

    #[test]
    fn the_end_of_stream_marker_is_stripped_only_when_there() {
        assert_eq!(
            strip_end_of_stream(vec![1, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
            vec![1, 2]
        );
        assert_eq!(strip_end_of_stream(vec![1, 2, 3]), vec![1, 2, 3]);
    }
}
