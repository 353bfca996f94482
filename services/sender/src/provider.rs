//! HTTP calls to the providers, with a timeout; answers are copied into
//! [`HttpAnswer`](crate::domain::answer::HttpAnswer) at the edge and classified by the pure
//! [`crate::domain::answer`].

use std::time::Duration;

use caas_runtime::Secret;
use serde_json::Value;

use crate::domain::answer::HttpAnswer;

/// How a provider call ended, as far as the transport can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The provider answered.
    Answered(HttpAnswer),
    /// The request never left: no connection could be made. Safe to send again.
    NotSent(String),
    /// The request may have reached the provider, but no answer came (timeout, reset).
    Unknown(String),
}

/// The providers' send APIs.
#[derive(Clone)]
pub struct Providers {
    client: reqwest::Client,
    whatsapp_base_url: String,
    whatsapp_api_version: String,
    rbm_base_url: String,
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl Providers {
    /// Clients for the given base URLs; every call is bounded by `timeout`.
    pub fn new(
        whatsapp_base_url: &str,
        whatsapp_api_version: &str,
        rbm_base_url: &str,
        timeout: Duration,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a rustls HTTP client builds");
        Self {
            client,
            whatsapp_base_url: whatsapp_base_url.to_string(),
            whatsapp_api_version: whatsapp_api_version.to_string(),
            rbm_base_url: rbm_base_url.to_string(),
        }
    }

    /// `POST /{version}/{phone_number_id}/messages`.
    pub async fn whatsapp(&self, phone_number_id: &str, token: &Secret, body: &Value) -> Transport {
        let url = format!(
            "{}/{}/{}/messages",
            self.whatsapp_base_url, self.whatsapp_api_version, phone_number_id
        );
        let request = self.client.post(url).bearer_auth(token.expose()).json(body);
        Self::call(request).await
    }

    /// `POST /v1/phones/{msisdn}/agentMessages?messageId=&agentId=`.
    pub async fn rbm(
        &self,
        msisdn: &str,
        message_id: &str,
        agent_id: &str,
        token: &Secret,
        body: &Value,
    ) -> Transport {
        let msisdn = format!("+{}", msisdn.trim_start_matches('+'));
        let url = format!("{}/v1/phones/{msisdn}/agentMessages", self.rbm_base_url);
        let request = self
            .client
            .post(url)
            .query(&[("messageId", message_id), ("agentId", agent_id)])
            .bearer_auth(token.expose())
            .json(body);
        Self::call(request).await
    }

    async fn call(request: reqwest::RequestBuilder) -> Transport {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                match response.text().await {
                    Ok(body) => Transport::Answered(HttpAnswer {
                        status,
                        body,
                        retry_after,
                    }),
                    // The status arrived but the body did not: a 2xx may have been an
                    // acceptance we cannot read.
                    Err(error) if (200..300).contains(&status) => {
                        Transport::Unknown(format!("the answer {status} broke off: {error}"))
                    }
                    Err(_) => Transport::Answered(HttpAnswer {
                        status,
                        body: String::new(),
                        retry_after,
                    }),
                }
            }
            Err(error) if error.is_connect() => {
                Transport::NotSent(format!("provider unreachable: {error}"))
            }
            Err(error) if error.is_builder() => {
                Transport::NotSent(format!("the request could not be built: {error}"))
            }
            Err(error) => Transport::Unknown(format!("no answer from the provider: {error}")),
        }
    }
}
