//! BigQuery's REST API, the three calls an extract needs: jobs.query (start the query, wait
//! for it, first page), jobs.getQueryResults (the next pages by token) and jobs.get (the
//! bytes billed). Every call is retried on what is transient (429, 5xx, rateLimitExceeded,
//! backendError, a timeout or a lost connection) with the shared backoff; anything else is
//! an error at once, BigQuery's own message included. A job that completes with `errors` is a
//! failed job, whatever the HTTP status (an emulator answers 200).

use std::time::Duration;

use chrono::{DateTime, Utc};
use featurekit::exit::{Error, Kind, Result};
use featurekit::retry::Backoff;
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder};
use serde::Deserialize;
use serde_json::json;

use crate::decode::{BqField, Row};

/// How long one call asks BigQuery to wait for the job before answering (`timeoutMs`).
const WAIT_MS: u64 = 10_000;

/// The reasons of BigQuery's errors that are worth another try (those Google's clients retry).
const RETRIED_REASONS: [&str; 7] = [
    "backendError",
    "rateLimitExceeded",
    "internalError",
    "badGateway",
    "jobBackendError",
    "jobInternalError",
    "jobRateLimitExceeded",
];

/// Where tokens come from.
pub enum Auth {
    /// No Authorization header: a local emulator.
    Anonymous,
    /// Application default credentials, cached and refreshed by object_store's Google client.
    Google(GcpCredentialProvider),
}

impl Auth {
    /// GOOGLE_APPLICATION_CREDENTIALS' service-account key or user login, gcloud's
    /// application default login, else the metadata server (GKE workload identity).
    pub fn application_default() -> Result<Auth> {
        let retry = object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        };
        let store = GoogleCloudStorageBuilder::from_env()
            .with_bucket_name("credentials-only")
            .with_retry(retry)
            .build()
            .map_err(|e| Error::config(format!("application default credentials: {e}")))?;
        Ok(Auth::Google(store.credentials().clone()))
    }

    pub(crate) async fn token(&self) -> Result<Option<String>> {
        match self {
            Auth::Anonymous => Ok(None),
            Auth::Google(provider) => match provider.get_credential().await {
                Ok(c) => Ok(Some(c.bearer.clone())),
                Err(e) => Err(Error::config(format!(
                    "no Google credentials ({e}); set GOOGLE_APPLICATION_CREDENTIALS to a key file, run \
                     `gcloud auth application-default login`, or run where the metadata server answers \
                     (--anonymous for an emulator)"
                ))),
            },
        }
    }
}

/// A BigQuery project's jobs, over REST.
pub struct Client {
    http: reqwest::Client,
    base: String,
    project: String,
    location: Option<String>,
    auth: Auth,
    backoff: Backoff,
}

/// What a query is and where its results go.
#[derive(Clone, Copy)]
pub struct Query<'q> {
    pub sql: &'q str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub labels: &'q [(String, String)],
    pub max_bytes_billed: Option<u64>,
    pub page_rows: Option<u32>,
    pub dry_run: bool,
}

/// A page of a query's result, or the answer that the job still runs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<'a> {
    #[serde(default)]
    pub job_complete: Option<bool>,
    pub job_reference: Option<JobReference>,
    pub page_token: Option<String>,
    pub schema: Option<TableSchema>,
    #[serde(borrow, default)]
    pub rows: Vec<Row<'a>>,
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
    pub total_bytes_processed: Option<String>,
}

impl<'a> Page<'a> {
    /// An answer of jobs.query or getQueryResults; a job that completed with errors is its error.
    pub fn parse(body: &'a [u8]) -> Result<Page<'a>> {
        let page: Page = serde_json::from_slice(body)
            .map_err(|e| Error::transient(format!("BigQuery answered with a page that is not one: {e}")))?;
        match job_failed(&page.errors) {
            Some(e) => Err(e),
            None => Ok(page),
        }
    }

    /// The job this answer names, else the one an earlier answer named.
    pub fn job(&self, earlier: Option<JobReference>) -> Result<JobReference> {
        self.job_reference
            .clone()
            .filter(|j| !j.job_id.is_empty())
            .or(earlier)
            .ok_or_else(|| Error::transient("BigQuery answered without a job reference"))
    }
}

/// A fresh jobs.query `requestId`: a retried call with it is the same job.
pub fn request_id() -> String {
    format!("featurekit-{}", uuid::Uuid::new_v4())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    /// Empty in a dry run's answer, which runs no job.
    #[serde(default)]
    pub job_id: String,
    pub location: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TableSchema {
    #[serde(default)]
    pub fields: Vec<BqField>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorProto {
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// What BigQuery says a finished job cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Billing {
    pub processed: u64,
    pub billed: u64,
}

impl Client {
    pub fn new(
        endpoint: &str,
        project: &str,
        location: Option<String>,
        auth: Auth,
        backoff: Backoff,
        timeout: Duration,
    ) -> Result<Client> {
        let base = endpoint.trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|e| Error::config(format!("--endpoint `{base}`: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("featurekit-extract-bigquery/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            project: project.to_string(),
            location,
            auth,
            backoff,
        })
    }

    /// jobs.query: starts the query and returns its first answer (the first page when the job
    /// finished within the wait). The request id makes a retried call the same job.
    pub async fn query(&self, q: &Query<'_>, request_id: &str) -> Result<bytes::Bytes> {
        let mut body = json!({
            "query": q.sql,
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": parameters(q),
            "timeoutMs": WAIT_MS,
            "formatOptions": {"useInt64Timestamp": true},
            "requestId": request_id,
            "dryRun": q.dry_run,
            "labels": labels(q),
        });
        if let Some(rows) = q.page_rows {
            body["maxResults"] = json!(rows);
        }
        if let Some(bytes) = q.max_bytes_billed {
            body["maximumBytesBilled"] = json!(bytes.to_string());
        }
        if let Some(location) = &self.location {
            body["location"] = json!(location);
        }
        let url = format!("{}/projects/{}/queries", self.base, self.project);
        let body = serde_json::to_vec(&body).map_err(|e| Error::bug(e.to_string()))?;
        self.call("jobs.query", || {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await
    }

    /// jobs.getQueryResults: the page after `token` (the first with none), once the job is done.
    pub async fn results(
        &self,
        job: &JobReference,
        token: Option<&str>,
        page_rows: Option<u32>,
    ) -> Result<bytes::Bytes> {
        let mut url = self.job_url("queries", job)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("timeoutMs", &WAIT_MS.to_string());
            q.append_pair("formatOptions.useInt64Timestamp", "true");
            if let Some(t) = token {
                q.append_pair("pageToken", t);
            }
            if let Some(n) = page_rows {
                q.append_pair("maxResults", &n.to_string());
            }
        }
        self.call("jobs.getQueryResults", || self.http.get(url.clone())).await
    }

    /// jobs.get: the bytes the finished job processed and billed.
    pub async fn billing(&self, job: &JobReference) -> Result<Billing> {
        let url = self.job_url("jobs", job)?;
        let body = self.call("jobs.get", || self.http.get(url.clone())).await?;
        let job: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| Error::transient(format!("jobs.get: not JSON: {e}")))?;
        let stat = |key: &str| {
            job["statistics"]["query"][key]
                .as_str()
                .or_else(|| job["statistics"][key].as_str())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        Ok(Billing {
            processed: stat("totalBytesProcessed"),
            billed: stat("totalBytesBilled"),
        })
    }

    /// tables.get: a table's schema.
    pub async fn table_schema(&self, t: &TableRef) -> Result<Vec<BqField>> {
        let url = format!(
            "{}/projects/{}/datasets/{}/tables/{}",
            self.base, t.project, t.dataset, t.table
        );
        let body = self.call("tables.get", || self.http.get(&url)).await?;
        #[derive(Deserialize)]
        struct Table {
            schema: Option<TableSchema>,
        }
        let table: Table =
            serde_json::from_slice(&body).map_err(|e| Error::transient(format!("tables.get: not a table: {e}")))?;
        Ok(table.schema.map(|s| s.fields).unwrap_or_default())
    }

    /// The table a finished query job wrote its result to (jobs.get).
    pub async fn destination(&self, job: &JobReference) -> Result<TableRef> {
        let url = self.job_url("jobs", job)?;
        let body = self.call("jobs.get", || self.http.get(url.clone())).await?;
        let job: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| Error::transient(format!("jobs.get: not JSON: {e}")))?;
        let t = &job["configuration"]["query"]["destinationTable"];
        match (t["projectId"].as_str(), t["datasetId"].as_str(), t["tableId"].as_str()) {
            (Some(project), Some(dataset), Some(table)) => Ok(TableRef {
                project: project.into(),
                dataset: dataset.into(),
                table: table.into(),
            }),
            _ => Err(Error::transient("jobs.get: the job names no destination table")),
        }
    }

    /// tables.delete; a table already gone is fine.
    pub async fn delete_table(&self, t: &TableRef) -> Result<()> {
        let url = format!(
            "{}/projects/{}/datasets/{}/tables/{}",
            self.base, t.project, t.dataset, t.table
        );
        self.call_taking("tables.delete", &[404], || self.http.delete(&url))
            .await?;
        Ok(())
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    fn job_url(&self, collection: &str, job: &JobReference) -> Result<url::Url> {
        let raw = format!("{}/projects/{}/{collection}/{}", self.base, self.project, job.job_id);
        let mut url = url::Url::parse(&raw).map_err(|e| Error::config(format!("`{raw}`: {e}")))?;
        if let Some(location) = job.location.as_ref().or(self.location.as_ref()) {
            url.query_pairs_mut().append_pair("location", location);
        }
        Ok(url)
    }

    /// One call, retried while what fails is transient.
    async fn call(&self, what: &str, request: impl Fn() -> reqwest::RequestBuilder) -> Result<bytes::Bytes> {
        self.call_taking(what, &[], request).await
    }

    /// [`call`](Self::call), with the statuses in `fine` answered as success (an empty body).
    async fn call_taking(
        &self,
        what: &str,
        fine: &[u16],
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes> {
        let mut retry = 0;
        loop {
            let mut req = request();
            if let Some(token) = self.auth.token().await? {
                req = req.bearer_auth(token);
            }
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if (200..300).contains(&status) => return Ok(body),
                        Ok(_) if fine.contains(&status) => return Ok(bytes::Bytes::new()),
                        Ok(body) => Failure::of_response(status, &body),
                        Err(e) => Failure::of_transport(&e),
                    }
                }
                Err(e) => Failure::of_transport(&e),
            };
            retry += 1;
            if failure.kind != Kind::Transient || retry >= self.backoff.attempts {
                let tries = if failure.kind == Kind::Transient {
                    format!(" (after {retry} attempts)")
                } else {
                    String::new()
                };
                return Err(Error::msg(
                    failure.kind,
                    format!("BigQuery {what}: {}{tries}", failure.message),
                ));
            }
            let wait = self.backoff.delay(retry);
            tracing::warn!(call = what, attempt = retry, wait_ms = wait.as_millis() as u64, error = %failure.message, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A table: `projects/P/datasets/D/tables/T` to the Storage Read API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

impl TableRef {
    pub fn path(&self) -> String {
        format!(
            "projects/{}/datasets/{}/tables/{}",
            self.project, self.dataset, self.table
        )
    }
}

/// `@start` and `@end`, named TIMESTAMP parameters.
fn parameters(q: &Query<'_>) -> serde_json::Value {
    let param = |name: &str, t: DateTime<Utc>| {
        json!({
            "name": name,
            "parameterType": {"type": "TIMESTAMP"},
            "parameterValue": {"value": t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()},
        })
    };
    json!([param("start", q.start), param("end", q.end)])
}

fn labels(q: &Query<'_>) -> serde_json::Map<String, serde_json::Value> {
    q.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
}

/// Why a call failed, and whether to try again.
struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    fn of_response(status: u16, body: &[u8]) -> Failure {
        #[derive(Deserialize)]
        struct Envelope {
            error: Option<Body>,
        }
        #[derive(Deserialize)]
        struct Body {
            message: Option<String>,
            #[serde(default)]
            errors: Vec<ErrorProto>,
        }
        let parsed = serde_json::from_slice::<Envelope>(body).ok().and_then(|e| e.error);
        let reason = parsed
            .as_ref()
            .and_then(|b| b.errors.first())
            .and_then(|e| e.reason.clone())
            .unwrap_or_default();
        let message = parsed.and_then(|b| b.message).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.chars().take(200).collect::<String>().replace('\n', " ")
        });
        let transient = status == 429 || status >= 500 || RETRIED_REASONS.contains(&reason.as_str());
        let kind = if transient { Kind::Transient } else { Kind::Config };
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(" {reason}")
        };
        Failure {
            kind,
            message: format!("HTTP {status}{reason}: {message}"),
        }
    }

    fn of_transport(e: &reqwest::Error) -> Failure {
        let kind = if e.is_builder() { Kind::Config } else { Kind::Transient };
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        Failure { kind, message }
    }
}

/// A job that completed with errors has failed: the first error decides whether a rerun may
/// help (a backend error) or not (an invalid query, a missing table, a refused permission).
pub fn job_failed(errors: &[ErrorProto]) -> Option<Error> {
    let first = errors.first()?;
    let reason = first.reason.clone().unwrap_or_default();
    let message = first.message.clone().unwrap_or_default();
    let kind = if RETRIED_REASONS.contains(&reason.as_str()) {
        Kind::Transient
    } else {
        Kind::Config
    };
    Some(Error::msg(kind, format!("BigQuery job failed: {reason}: {message}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_and_reason() {
        let body = br#"{"error":{"code":400,"message":"Syntax error: at [1:8]","errors":[{"reason":"invalidQuery","message":"Syntax error"}],"status":"INVALID_ARGUMENT"}}"#;
        let f = Failure::of_response(400, body);
        assert_eq!(f.kind, Kind::Config);
        assert_eq!(f.message, "HTTP 400 invalidQuery: Syntax error: at [1:8]");
        let limited =
            br#"{"error":{"code":403,"message":"Exceeded rate limits","errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert_eq!(Failure::of_response(403, limited).kind, Kind::Transient);
        let denied = br#"{"error":{"code":403,"message":"Access Denied","errors":[{"reason":"accessDenied"}]}}"#;
        assert_eq!(Failure::of_response(403, denied).kind, Kind::Config);
        assert_eq!(
            Failure::of_response(503, b"<html>unavailable</html>").kind,
            Kind::Transient
        );
        assert_eq!(Failure::of_response(429, b"").kind, Kind::Transient);
        assert_eq!(Failure::of_response(401, b"{}").kind, Kind::Config);
    }

    #[test]
    fn a_job_with_errors_has_failed() {
        let e = |reason: &str| ErrorProto {
            reason: Some(reason.into()),
            message: Some("m".into()),
        };
        assert!(job_failed(&[]).is_none());
        assert_eq!(job_failed(&[e("notFound")]).unwrap().kind(), Kind::Config);
        assert_eq!(job_failed(&[e("backendError")]).unwrap().kind(), Kind::Transient);
    }
}
