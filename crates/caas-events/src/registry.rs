//! A small client of the Confluent schema registry REST API (the subset the codec needs).
//!
//! Works against Confluent's registry and Apicurio's compatibility layer (`/apis/ccompat/v7`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::error::RegistryError;

/// The media type the Confluent API speaks.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Client of a Confluent-compatible schema registry. Cheap to clone (shares the connection pool).
#[derive(Debug, Clone)]
pub struct RegistryClient {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8081/apis/ccompat/v7`.
    base_url: String,
    /// Pooled HTTP client with connect and request timeouts, so a hung registry surfaces as a
    /// retryable error instead of a stuck consumer.
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
}

#[derive(Deserialize)]
struct SchemaId {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

impl RegistryClient {
    /// A client for the registry at `base_url`, with a 2 s connect and 10 s request timeout.
    pub fn new(base_url: impl Into<String>) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(RegistryError::Client)?;
        Ok(Self::with_http_client(base_url, http))
    }

    /// A client using a preconfigured HTTP client (timeouts, TLS, auth headers).
    pub fn with_http_client(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        Self { base_url, http }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The schema text registered under a global id (`GET /schemas/ids/{id}`).
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base_url);
        let request = self.http.get(&url).header("Accept", CONTENT_TYPE);
        let body: SchemaById = send("GET", url.clone(), request).await?;
        Ok(body.schema)
    }

    /// The id of `schema` if it is registered under `subject` (`POST /subjects/{subject}`);
    /// `None` if the subject or the schema is not there.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let url = format!("{}/subjects/{subject}", self.base_url);
        let request = self
            .http
            .post(&url)
            .header("Content-Type", CONTENT_TYPE)
            .header("Accept", CONTENT_TYPE)
            .json(&json!({ "schema": schema, "schemaType": "AVRO" }));
        match send::<SchemaId>("POST", url.clone(), request).await {
            Ok(body) => Ok(Some(body.id)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Registers `schema` under `subject` (`POST /subjects/{subject}/versions`) and returns its
    /// id; registering a schema that is already there returns the existing id. The registry
    /// refuses a schema incompatible with the subject's compatibility level (409).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.base_url);
        let request = self
            .http
            .post(&url)
            .header("Content-Type", CONTENT_TYPE)
            .header("Accept", CONTENT_TYPE)
            .json(&json!({ "schema": schema, "schemaType": "AVRO" }));
        let body: SchemaId = send("POST", url.clone(), request).await?;
        Ok(body.id)
    }
}

/// Sends a request and reads a JSON answer, classifying failures.
async fn send<T: for<'de> Deserialize<'de>>(
    method: &'static str,
    url: String,
    request: reqwest::RequestBuilder,
) -> Result<T, RegistryError> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(source) => return Err(RegistryError::Unreachable { url, source }),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(source) => return Err(RegistryError::Unreachable { url, source }),
    };
    if !status.is_success() {
        let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let (error_code, message) = match parsed {
            Some(ErrorBody {
                error_code,
                message,
            }) => (
                error_code,
                message.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
            ),
            None => (None, String::from_utf8_lossy(&body).into_owned()),
        };
        return Err(RegistryError::Status {
            method,
            url,
            status: status.as_u16(),
            error_code,
            message,
        });
    }
    serde_json::from_slice(&body).map_err(|error| RegistryError::InvalidResponse {
        url,
        reason: error.to_string(),
    })
}
