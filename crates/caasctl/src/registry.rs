//! A small client for the Confluent-compatible schema registry API (Apicurio's `ccompat/v7` in
//! the local stack, Confluent's registry elsewhere): only the calls `caasctl` needs.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// The environment variable that overrides the registry URL.
pub const REGISTRY_URL_VARIABLE: &str = "CAAS_SCHEMA_REGISTRY_URL";
/// The local stack's registry.
pub const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:8081/apis/ccompat/v7";

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer (connection refused, timeout, TLS).
    #[error("schema registry at {url} did not answer: {cause}; is it running (`make up`)?")]
    Unreachable {
        /// The request URL.
        url: String,
        /// The transport error.
        cause: reqwest::Error,
    },
    /// An answer other than the expected one.
    #[error("schema registry answered {status} to {method} {url}: {body}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The request URL.
        url: String,
        /// The status code.
        status: StatusCode,
        /// The body, which carries the registry's message.
        body: String,
    },
    /// A 2xx answer whose body is not what the API documents.
    #[error("schema registry sent an unexpected body to {method} {url}: {cause}")]
    Body {
        /// The HTTP method.
        method: &'static str,
        /// The request URL.
        url: String,
        /// The decoding error.
        cause: reqwest::Error,
    },
}

/// A registered schema version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The global schema id (what the Confluent wire format carries).
    pub id: u32,
    /// The version within the subject.
    pub version: u32,
}

/// The client.
#[derive(Debug, Clone)]
pub struct Registry {
    base_url: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct LookupBody {
    id: u32,
    version: u32,
}

#[derive(Deserialize)]
struct CompatibilityBody {
    is_compatible: bool,
}

#[derive(Deserialize)]
struct ConfigBody {
    #[serde(alias = "compatibility", rename = "compatibilityLevel")]
    compatibility_level: String,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

impl Registry {
    /// A client for the registry at `base_url` (e.g. `http://127.0.0.1:8081/apis/ccompat/v7`).
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|cause| RegistryError::Unreachable {
                url: base_url.to_string(),
                cause,
            })?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The base URL, for messages.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn send(
        &self,
        method: &'static str,
        url: String,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, reqwest::Response, String), RegistryError> {
        let mut request = match method {
            "GET" => self.http.get(&url),
            "PUT" => self.http.put(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url),
        };
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|cause| RegistryError::Unreachable {
                url: url.clone(),
                cause,
            })?;
        Ok((response.status(), response, url))
    }

    async fn expect_json<T: serde::de::DeserializeOwned>(
        method: &'static str,
        url: String,
        status: StatusCode,
        response: reqwest::Response,
    ) -> Result<T, RegistryError> {
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(RegistryError::Status {
                method,
                url,
                status,
                body,
            });
        }
        response
            .json::<T>()
            .await
            .map_err(|cause| RegistryError::Body { method, url, cause })
    }

    /// The subject's own compatibility level; `None` when the subject has none (or does not
    /// exist yet).
    pub async fn subject_compatibility(
        &self,
        subject: &str,
    ) -> Result<Option<String>, RegistryError> {
        let (status, response, url) = self
            .send("GET", self.url(&format!("/config/{subject}")), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: ConfigBody = Self::expect_json("GET", url, status, response).await?;
        Ok(Some(body.compatibility_level))
    }

    /// Set the subject's compatibility level (works before the subject has a version).
    pub async fn set_subject_compatibility(
        &self,
        subject: &str,
        level: &str,
    ) -> Result<(), RegistryError> {
        let (status, response, url) = self
            .send(
                "PUT",
                self.url(&format!("/config/{subject}")),
                Some(json!({ "compatibility": level })),
            )
            .await?;
        Self::expect_json::<serde_json::Value>("PUT", url, status, response).await?;
        Ok(())
    }

    /// The version of `schema` under `subject`, if that exact schema is registered there.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Option<Registered>, RegistryError> {
        let (status, response, url) = self
            .send(
                "POST",
                self.url(&format!("/subjects/{subject}")),
                Some(json!({ "schema": schema, "schemaType": "AVRO" })),
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: LookupBody = Self::expect_json("POST", url, status, response).await?;
        Ok(Some(Registered {
            id: body.id,
            version: body.version,
        }))
    }

    /// Register `schema` under `subject`; returns its id (the same id when it is already
    /// registered). The registry refuses (409) a schema that breaks the subject's compatibility.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let (status, response, url) = self
            .send(
                "POST",
                self.url(&format!("/subjects/{subject}/versions")),
                Some(json!({ "schema": schema, "schemaType": "AVRO" })),
            )
            .await?;
        let body: IdBody = Self::expect_json("POST", url, status, response).await?;
        Ok(body.id)
    }

    /// The subject's versions, oldest first; `None` when the subject does not exist.
    pub async fn versions(&self, subject: &str) -> Result<Option<Vec<u32>>, RegistryError> {
        let (status, response, url) = self
            .send(
                "GET",
                self.url(&format!("/subjects/{subject}/versions")),
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let mut versions: Vec<u32> = Self::expect_json("GET", url, status, response).await?;
        versions.sort_unstable();
        Ok(Some(versions))
    }

    /// The schema text of one version.
    pub async fn schema_of_version(
        &self,
        subject: &str,
        version: u32,
    ) -> Result<String, RegistryError> {
        let (status, response, url) = self
            .send(
                "GET",
                self.url(&format!("/subjects/{subject}/versions/{version}")),
                None,
            )
            .await?;
        let body: SchemaBody = Self::expect_json("GET", url, status, response).await?;
        Ok(body.schema)
    }

    /// Ask the registry whether `schema` is compatible with one registered version, under the
    /// subject's compatibility level.
    pub async fn is_compatible_with_version(
        &self,
        subject: &str,
        version: u32,
        schema: &str,
    ) -> Result<bool, RegistryError> {
        let (status, response, url) = self
            .send(
                "POST",
                self.url(&format!(
                    "/compatibility/subjects/{subject}/versions/{version}"
                )),
                Some(json!({ "schema": schema, "schemaType": "AVRO" })),
            )
            .await?;
        let body: CompatibilityBody = Self::expect_json("POST", url, status, response).await?;
        Ok(body.is_compatible)
    }

    /// Delete a subject: soft, then permanently (tests clean up their throwaway subjects).
    pub async fn delete_subject_permanently(&self, subject: &str) -> Result<(), RegistryError> {
        for suffix in ["", "?permanent=true"] {
            let (status, response, url) = self
                .send(
                    "DELETE",
                    self.url(&format!("/subjects/{subject}{suffix}")),
                    None,
                )
                .await?;
            if !status.is_success() && status != StatusCode::NOT_FOUND {
                let body = response.text().await.unwrap_or_default();
                return Err(RegistryError::Status {
                    method: "DELETE",
                    url,
                    status,
                    body,
                });
            }
        }
        Ok(())
    }
}
