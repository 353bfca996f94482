//! Playing customers: signed inbound webhooks at a given rate, for the demo and load tests
//! (`POST /_sim/customers/send`, or `caas-simulator customers ...`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::clock::now_millis;
use crate::webhooks::{self, About, CustomerContent, Dispatcher};

/// The channel customers write on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// WhatsApp.
    Whatsapp,
    /// RCS.
    Rcs,
}

/// A run of customer messages. Message `i` comes from customer `i mod customers` and carries
/// content `i mod messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRun {
    /// The channel.
    pub channel: Channel,
    /// The business endpoint written to: WhatsApp `phone_number_id` or RBM `agentId`
    /// (default: the demo tenant's, `100000000000001` / `demo-agent`).
    #[serde(default)]
    pub business_id: Option<String>,
    /// The customers' numbers. Empty: `customer_count` numbers are made up
    /// (`4917000000001`, `4917000000002`, ...).
    #[serde(default)]
    pub customers: Vec<String>,
    /// How many customers to make up when `customers` is empty (default 1).
    #[serde(default = "one")]
    pub customer_count: u32,
    /// The profile name WhatsApp shows (default `Customer <n>`).
    #[serde(default)]
    pub customer_name: Option<String>,
    /// What they send, cycled: `{"text":"hi"}`, `{"button":{"id":"..","title":".."}}`,
    /// `{"list":{"id":"..","title":".."}}`.
    pub messages: Vec<CustomerContent>,
    /// How many messages in all (default: one per content).
    #[serde(default)]
    pub count: Option<u32>,
    /// Messages per second; `None` as fast as the receiver takes them.
    #[serde(default)]
    pub rate_per_second: Option<f64>,
}

fn one() -> u32 {
    1
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Webhooks the receiver answered 2xx.
    pub sent: u32,
    /// Webhooks that failed after retries.
    pub failed: u32,
    /// The provider ids of the messages sent, in order (wamid / RBM messageId).
    pub message_ids: Vec<String>,
    /// The first few failures, for the reader.
    pub errors: Vec<String>,
}

/// The most messages one run may ask for.
pub const MAX_RUN: u32 = 1_000_000;

impl CustomerRun {
    /// Check the run; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.messages.is_empty() {
            return Err(
                "messages must name at least one message, e.g. [{\"text\":\"hi\"}]".to_string(),
            );
        }
        if self.customers.is_empty() && self.customer_count == 0 {
            return Err("customer_count must be at least 1 when customers is empty".to_string());
        }
        if self
            .rate_per_second
            .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
        {
            return Err("rate_per_second must be a positive number".to_string());
        }
        if self.total() > MAX_RUN {
            return Err(format!("count is limited to {MAX_RUN}"));
        }
        Ok(())
    }

    fn total(&self) -> u32 {
        self.count.unwrap_or(self.messages.len() as u32)
    }

    /// The number of customer `index` (made up when none were given).
    pub fn customer(&self, index: u32) -> String {
        if self.customers.is_empty() {
            let number = format!("4917{:09}", index % self.customer_count + 1);
            match self.channel {
                Channel::Whatsapp => number,
                Channel::Rcs => format!("+{number}"),
            }
        } else {
            self.customers[(index as usize) % self.customers.len()].clone()
        }
    }

    fn business(&self) -> String {
        self.business_id
            .clone()
            .unwrap_or_else(|| match self.channel {
                Channel::Whatsapp => "100000000000001".to_string(),
                Channel::Rcs => "demo-agent".to_string(),
            })
    }
}

/// Send the run's messages through `dispatcher`, paced at the run's rate.
pub async fn play(run: &CustomerRun, dispatcher: &Dispatcher) -> RunReport {
    let total = run.total();
    let business_id = run.business();
    let permits = Arc::new(Semaphore::new(64));
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..total {
        if let Some(rate) = run.rate_per_second {
            let due = started + Duration::from_secs_f64(f64::from(index) / rate);
            tokio::select! {
                _ = dispatcher.shutdown().cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let customer = run.customer(index);
        let name = run
            .customer_name
            .clone()
            .unwrap_or_else(|| format!("Customer {}", customer.trim_start_matches('+')));
        let content = run.messages[(index as usize) % run.messages.len()].clone();
        let channel = run.channel;
        let business_id = business_id.clone();
        let dispatcher = dispatcher.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let at = now_millis();
            let (message_id, delivered) = match channel {
                Channel::Whatsapp => {
                    let message_id = crate::whatsapp::new_message_id();
                    let body = webhooks::whatsapp_message(
                        &business_id,
                        &customer,
                        &name,
                        &message_id,
                        at,
                        &content,
                    );
                    let about = About {
                        kind: "message",
                        provider_message_id: &message_id,
                        status: None,
                    };
                    let delivered = dispatcher.post_whatsapp(&body, about).await;
                    (message_id, delivered)
                }
                Channel::Rcs => {
                    let message_id = format!("Mx{}", uuid::Uuid::new_v4().simple());
                    let data =
                        webhooks::rbm_message(&business_id, &customer, &message_id, at, &content);
                    let about = About {
                        kind: "message",
                        provider_message_id: &message_id,
                        status: None,
                    };
                    let delivered = dispatcher.post_rcs(&business_id, &data, about).await;
                    (message_id, delivered)
                }
            };
            (index, message_id, delivered)
        });
    }
    let mut outcomes = Vec::with_capacity(total as usize);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    outcomes.sort_by_key(|(index, _, _)| *index);
    let mut report = RunReport::default();
    for (index, message_id, delivered) in outcomes {
        if delivered.ok() {
            report.sent += 1;
            report.message_ids.push(message_id);
        } else {
            report.failed += 1;
            if report.errors.len() < 10 {
                report.errors.push(match delivered.http_status {
                    Some(status) => format!("message {index}: the receiver answered {status}"),
                    None if delivered.attempts == 0 => {
                        format!("message {index}: no webhook URL is configured for this channel")
                    }
                    None => format!("message {index}: the receiver was unreachable"),
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_parse_with_defaults_and_make_up_customers() {
        let run: CustomerRun = serde_json::from_str(
            r#"{"channel":"rcs","messages":[{"text":"hi"},{"button":{"id":"b","title":"B"}}],"customer_count":2,"count":5}"#,
        )
        .unwrap();
        run.validate().unwrap();
        assert_eq!(run.total(), 5);
        assert_eq!(run.customer(0), "+4917000000001");
        assert_eq!(run.customer(1), "+4917000000002");
        assert_eq!(run.customer(2), "+4917000000001");
        assert_eq!(run.business(), "demo-agent");
    }

    #[test]
    fn bad_runs_name_the_field() {
        let run: CustomerRun =
            serde_json::from_str(r#"{"channel":"whatsapp","messages":[]}"#).unwrap();
        assert!(run.validate().unwrap_err().contains("messages"));
        let run: CustomerRun = serde_json::from_str(
            r#"{"channel":"whatsapp","messages":[{"text":"x"}],"rate_per_second":0}"#,
        )
        .unwrap();
        assert!(run.validate().unwrap_err().contains("rate_per_second"));
    }
}
