//! The outbound command pipeline: one [`Pipeline::handle`] per `outbound.commands.v1` record.
//!
//! 1. Decode; a record that can never decode (or has no command id) goes to the DLQ.
//! 2. Resolve the tenant's sending endpoint (or skip / fail an unknown tenant).
//! 3. Look the command up in the idempotency ledger ([`crate::ledger`]): a final entry is
//!    published again; an entry another live worker holds is waited for; an entry of a dead
//!    worker is taken over by the rules of [`crate::domain::claim`].
//! 4. A new command is checked (endpoint and token configured, content sendable on the
//!    channel, 24-hour window open) and either recorded as failed, or claimed.
//! 5. Send: take a token from the sending number's bucket, mark the entry `in_flight`, call
//!    the provider, classify the answer; back off and retry on rate limits, 5xx and
//!    unreachable providers; stop on acceptance or a permanent refusal.
//! 6. Store the final result in the ledger, then publish it to `outbound.results.v1`. Only
//!    then does the consumer store the offset, so a crash anywhere before that redelivers the
//!    command, and step 3 makes the redelivery send nothing new.
//!
//! The crash window that remains is the provider call itself (see [`crate::domain::claim`]).

use caas_runtime::clock::now_millis;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caas_events::model::{Channel, OutboundCommand, OutboundResult, SendError, SendOutcome};
use caas_events::{keys, topics, Codec};
use caas_kafka::{
    BatchHandler, HandlerError, OutboundRecord, Producer, Record, RecordOutcome, TraceParent,
};
use caas_runtime::shutdown::CancellationToken;
use futures::StreamExt;
use mongodb::bson::{doc, Bson, Document};
use tokio::time::Instant;

use crate::config::{Config, Endpoints, UnknownTenants};
use crate::domain::answer::{self, Answer, RateScope};
use crate::domain::claim::{self, Decision, Phase, UnknownOutcome};
use crate::domain::{payload, window};
use crate::ledger::{Claim, Final, Ledger};
use crate::metrics::metrics;
use crate::provider::{Providers, Transport};
use crate::state::{bucket_key, pause_key, RedisState};

/// The longest a worker waits for another live worker holding the same command.
const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// What the pipeline talks to.
pub struct Pipeline {
    /// The configuration.
    pub config: Arc<Config>,
    /// Avro through the registry.
    pub codec: Codec,
    /// Publishes results.
    pub producer: Producer,
    /// Window times, buckets, liveness.
    pub redis: RedisState,
    /// The idempotency ledger.
    pub ledger: Ledger,
    /// The logger's conversations, a second source of the customer's last message time.
    pub conversations: mongodb::Collection<Document>,
    /// The provider APIs.
    pub providers: Providers,
    /// This process's id in the ledger and in Redis.
    pub instance_id: String,
    /// Commands a worker of this process is handling right now.
    pub active: Mutex<HashSet<String>>,
    /// Stops waits early on shutdown.
    pub shutdown: CancellationToken,
}

/// Why a wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupted {
    Shutdown,
    Deadline,
}

/// Removes a command from [`Pipeline::active`] when its handling ends, however it ends.
struct Held<'a> {
    active: &'a Mutex<HashSet<String>>,
    command_id: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        lock(self.active).remove(&self.command_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Single inserts and removes: a poisoned set is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn retryable(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::retryable(error)
}

fn failed(code: &str, reason: impl Into<String>, retryable: bool, attempts: u32) -> Final {
    Final {
        outcome: SendOutcome::Failed,
        provider_message_id: None,
        error: Some(SendError {
            code: code.to_string(),
            reason: reason.into(),
            retryable,
        }),
        attempts: attempts as i32,
        finished_at: now_millis(),
    }
}

/// What one send goes to.
struct Target<'a> {
    endpoint: &'a str,
    body: serde_json::Value,
    token: caas_runtime::Secret,
    rbm_message_id: String,
}

impl BatchHandler for Pipeline {
    /// A batch is split by conversation key: conversations are handled concurrently (up to
    /// `CAAS_SENDER_CONCURRENCY`), the commands of one conversation strictly in order. A
    /// retryable failure stops that conversation's remaining commands and makes the whole
    /// batch retryable; its finished commands are then found final in the ledger and only
    /// their results published again.
    async fn handle_batch(&self, records: &[Record]) -> Result<Vec<RecordOutcome>, HandlerError> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (index, record) in records.iter().enumerate() {
            let key = record
                .key
                .clone()
                .unwrap_or_else(|| format!("partition-{}", record.partition));
            let group = *by_key.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(index);
        }
        // No new command starts after this; a batch stays within the consumer's poll budget.
        let batch_deadline = Instant::now() + self.config.command_deadline;
        let results: Vec<Vec<(usize, Result<(), HandlerError>)>> = futures::stream::iter(groups)
            .map(|group| async move {
                let mut results = Vec::with_capacity(group.len());
                let mut stopped: Option<String> = None;
                for index in group {
                    if let Some(reason) = &stopped {
                        results.push((
                            index,
                            Err(retryable(format!(
                                "an earlier command of the conversation failed: {reason}"
                            ))),
                        ));
                        continue;
                    }
                    if Instant::now() >= batch_deadline {
                        stopped = Some("the batch ran out of time".to_string());
                        results.push((index, Err(retryable("the batch ran out of time"))));
                        continue;
                    }
                    let result = self.handle(&records[index]).await;
                    if let Err(HandlerError::Retryable(reason)) = &result {
                        stopped = Some(reason.clone());
                    }
                    results.push((index, result));
                }
                results
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        let mut outcomes = vec![RecordOutcome::Done; records.len()];
        let mut retry: Option<String> = None;
        for (index, result) in results.into_iter().flatten() {
            match result {
                Ok(()) => {}
                Err(HandlerError::Poison(reason)) => {
                    outcomes[index] = RecordOutcome::Poison(reason)
                }
                Err(HandlerError::Retryable(reason)) => {
                    retry.get_or_insert(reason);
                }
            }
        }
        match retry {
            Some(reason) => Err(HandlerError::Retryable(reason)),
            None => Ok(outcomes),
        }
    }
}

impl Pipeline {
    /// Handle one command record, start to finish.
    pub async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let payload = record.payload.as_deref().ok_or_else(|| {
            HandlerError::poison("an outbound command record without a value (tombstone)")
        })?;
        let command: OutboundCommand = self.codec.decode(payload).await.map_err(|error| {
            if error.is_poison() {
                HandlerError::poison(format!("undecodable outbound command: {error}"))
            } else {
                retryable(format!("cannot decode the outbound command yet: {error}"))
            }
        })?;
        if command.command_id.trim().is_empty() {
            return Err(HandlerError::poison(
                "the outbound command has an empty command_id, so it cannot be sent idempotently",
            ));
        }
        let Some(endpoints) = self.config.tenants.get(&command.tenant_id) else {
            return self.unknown_tenant(&command).await;
        };
        let _held = self.hold(&command.command_id).await?;
        self.process(&command, endpoints).await
    }
}

impl Pipeline {
    /// Wait until no other worker of this process handles `command_id`, then mark it ours.
    async fn hold(&self, command_id: &str) -> Result<Held<'_>, HandlerError> {
        loop {
            if lock(&self.active).insert(command_id.to_string()) {
                return Ok(Held {
                    active: &self.active,
                    command_id: command_id.to_string(),
                });
            }
            // Another consumer of this process got the same record after a rebalance.
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(retryable("shutting down")),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    async fn unknown_tenant(&self, command: &OutboundCommand) -> Result<(), HandlerError> {
        match self.config.unknown_tenants {
            UnknownTenants::Skip => {
                metrics()
                    .commands
                    .with_label_values(&[command.channel.as_str(), "skipped"])
                    .inc();
                tracing::debug!(tenant = %command.tenant_id, command_id = %command.command_id, "tenant not served here; skipped");
                Ok(())
            }
            UnknownTenants::Fail => {
                let result = failed(
                    "tenant_not_configured",
                    format!(
                        "tenant {} has no sending configuration in this sender (CAAS_SENDER_TENANTS)",
                        command.tenant_id
                    ),
                    true,
                    0,
                );
                // Not in the ledger, and with its own event id: a sender that does serve the
                // tenant may still send the command.
                let event_id = keys::deterministic_event_id(&[
                    "sender",
                    "result",
                    &command.command_id,
                    "tenant_not_configured",
                ]);
                self.publish_with_id(command, &result, event_id).await
            }
        }
    }

    async fn process(
        &self,
        command: &OutboundCommand,
        endpoints: &Endpoints,
    ) -> Result<(), HandlerError> {
        let owner = format!("{}/{}", self.instance_id, uuid::Uuid::new_v4().simple());
        let deadline = Instant::now() + self.config.command_deadline;
        let wait_until = Instant::now() + CLAIM_WAIT;
        loop {
            let entry = self
                .ledger
                .get(&command.command_id)
                .await
                .map_err(retryable)?;
            let Some(entry) = entry else {
                let claim = Claim {
                    command_id: &command.command_id,
                    owner: &owner,
                    instance: &self.instance_id,
                    tenant_id: &command.tenant_id,
                    conversation_key: &command.conversation_key,
                    channel: command.channel.as_str(),
                };
                if let Some(refusal) = self.precheck(command, endpoints).await? {
                    if self
                        .ledger
                        .insert_final(&claim, &refusal)
                        .await
                        .map_err(retryable)?
                    {
                        return self.publish_final(command, &refusal).await;
                    }
                    continue;
                }
                if self.ledger.claim(&claim).await.map_err(retryable)? {
                    return self.send(command, endpoints, &owner, 0, deadline).await;
                }
                continue;
            };
            // An entry of this instance that no worker here holds is a leftover: its worker
            // gave up (an error between two ledger writes). Treat its owner as gone.
            let owner_alive = entry.instance != self.instance_id
                && self
                    .redis
                    .is_alive(&entry.instance)
                    .await
                    .map_err(retryable)?;
            match claim::decide(entry.phase, owner_alive, command.channel) {
                Decision::Republish => {
                    let Some(stored) = entry.result else {
                        return Err(retryable("a final ledger entry without a result"));
                    };
                    metrics()
                        .commands
                        .with_label_values(&[command.channel.as_str(), "republished"])
                        .inc();
                    tracing::info!(command_id = %command.command_id, "command already finished; publishing its result again");
                    return self.publish(command, &stored).await;
                }
                Decision::Wait => {
                    if Instant::now() >= wait_until {
                        return Err(retryable(format!(
                            "command {} is held by live sender instance {}",
                            command.command_id, entry.instance
                        )));
                    }
                    self.sleep(Duration::from_millis(200), wait_until)
                        .await
                        .map_err(|_| {
                            retryable("stopped while waiting for another sender instance")
                        })?;
                }
                Decision::TakeOver => {
                    if self
                        .ledger
                        .take_over(&command.command_id, &entry.owner, &owner, &self.instance_id)
                        .await
                        .map_err(retryable)?
                    {
                        tracing::info!(command_id = %command.command_id, previous = %entry.owner, phase = ?entry.phase, "taking over a command from a stopped sender");
                        return self
                            .send(command, endpoints, &owner, entry.attempts, deadline)
                            .await;
                    }
                }
                Decision::TakeOverUnknownOutcome => {
                    if self
                        .ledger
                        .take_over(&command.command_id, &entry.owner, &owner, &self.instance_id)
                        .await
                        .map_err(retryable)?
                    {
                        tracing::warn!(command_id = %command.command_id, previous = %entry.owner, "a sender stopped during a WhatsApp call; its outcome is unknown");
                        return match self.config.unknown_outcome {
                            UnknownOutcome::Fail => {
                                let result = failed(
                                    "outcome_unknown",
                                    "the sender stopped while WhatsApp was being called, so it is unknown whether \
                                     the message went out; it was not sent again because WhatsApp has no idempotency \
                                     key and a second call could deliver it twice. Check the conversation and resend \
                                     if it is missing",
                                    true,
                                    entry.attempts,
                                );
                                self.finish(command, &result).await
                            }
                            UnknownOutcome::Resend => {
                                self.send(command, endpoints, &owner, entry.attempts, deadline)
                                    .await
                            }
                        };
                    }
                }
            }
        }
    }

    /// The endpoint, token and body of a send, or the failure that prevents it.
    fn target<'a>(
        &self,
        command: &'a OutboundCommand,
        endpoints: &'a Endpoints,
    ) -> Result<Target<'a>, Final> {
        let channel = command.channel;
        let endpoint = command
            .business_id
            .as_deref()
            .or_else(|| endpoints.for_channel(channel))
            .ok_or_else(|| {
                failed(
                    "sender_not_configured",
                    format!(
                        "tenant {} has no {channel} sending endpoint in CAAS_SENDER_TENANTS and the command names none",
                        command.tenant_id
                    ),
                    true,
                    0,
                )
            })?;
        let token = match channel {
            Channel::Whatsapp => self.config.whatsapp_tokens.get(&command.tenant_id).cloned(),
            Channel::Rcs => {
                Some(self.config.rbm_token.clone()).filter(|token| !token.expose().is_empty())
            }
        }
        .ok_or_else(|| {
            let variable = match channel {
                Channel::Whatsapp => "CAAS_SENDER_WHATSAPP_TOKENS",
                Channel::Rcs => "CAAS_SENDER_RBM_TOKEN",
            };
            failed(
                "sender_not_configured",
                format!(
                    "no {channel} access token for tenant {} ({variable})",
                    command.tenant_id
                ),
                true,
                0,
            )
        })?;
        let body = match channel {
            Channel::Whatsapp => payload::whatsapp_body(command),
            Channel::Rcs => payload::rbm_body(command),
        }
        .map_err(|unsendable| failed("unsupported_content", unsendable.0, false, 0))?;
        Ok(Target {
            endpoint,
            body,
            token,
            rbm_message_id: payload::rbm_message_id(&command.command_id),
        })
    }

    /// Everything that refuses a command before any provider call.
    async fn precheck(
        &self,
        command: &OutboundCommand,
        endpoints: &Endpoints,
    ) -> Result<Option<Final>, HandlerError> {
        if let Err(refusal) = self.target(command, endpoints) {
            return Ok(Some(refusal));
        }
        if !window::needs_window(command.channel, &command.content) {
            return Ok(None);
        }
        // The race: a bot reply can reach us before the customer's message that caused it
        // was recorded (it travels on another topic, through another consumer). Replies wait
        // up to the grace period for the record; campaigns never reply, so they do not.
        let grace = if command.origin == caas_events::model::Origin::Campaign {
            Duration::ZERO
        } else {
            self.config.window_grace
        };
        let grace_until = Instant::now() + grace;
        loop {
            let last_inbound = self.last_inbound(&command.conversation_key).await?;
            let now = now_millis();
            match window::window(last_inbound, now) {
                window::Window::Open { .. } => return Ok(None),
                window::Window::Closed { last_inbound_at } => {
                    if Instant::now() >= grace_until {
                        tracing::info!(command_id = %command.command_id, ?last_inbound_at, "window closed; free-form command refused");
                        return Ok(Some(failed(
                            "window_closed",
                            window::closed_reason(last_inbound_at, now),
                            false,
                            0,
                        )));
                    }
                }
            }
            self.sleep(Duration::from_millis(200), grace_until)
                .await
                .or_else(|interrupted| match interrupted {
                    Interrupted::Deadline => Ok(()),
                    Interrupted::Shutdown => Err(retryable("shutting down")),
                })?;
        }
    }

    /// The customer's latest message time: the sender's own record in Redis, or the logger's
    /// `conversations.last_inbound_at` (covers a Redis that lost its data).
    async fn last_inbound(&self, conversation_key: &str) -> Result<Option<i64>, HandlerError> {
        let from_redis = self
            .redis
            .last_inbound(conversation_key)
            .await
            .map_err(retryable)?;
        if from_redis.is_some_and(|last| now_millis() < last + window::WINDOW_MS) {
            return Ok(from_redis);
        }
        let found = tokio::time::timeout(
            Duration::from_secs(5),
            self.conversations
                .find_one(doc! { "_id": conversation_key })
                .projection(doc! { "last_inbound_at": 1 }),
        )
        .await
        .map_err(|_| retryable("mongodb did not answer the conversation lookup in time"))?
        .map_err(retryable)?;
        let from_mongo = found.and_then(|document| match document.get("last_inbound_at") {
            Some(Bson::DateTime(at)) => Some(at.timestamp_millis()),
            Some(Bson::Int64(at)) => Some(*at),
            Some(Bson::Int32(at)) => Some(i64::from(*at)),
            _ => None,
        });
        Ok(from_redis.max(from_mongo))
    }

    /// Sleep `delay`, but not past `until`, and not past shutdown.
    async fn sleep(&self, delay: Duration, until: Instant) -> Result<(), Interrupted> {
        let wake = (Instant::now() + delay).min(until);
        tokio::select! {
            _ = self.shutdown.cancelled() => return Err(Interrupted::Shutdown),
            _ = tokio::time::sleep_until(wake) => {}
        }
        if Instant::now() >= until {
            return Err(Interrupted::Deadline);
        }
        Ok(())
    }

    /// Take a token of the sending number's bucket (honouring rate-limit pauses).
    async fn acquire(
        &self,
        bucket: &str,
        pauses: &[String],
        channel: Channel,
        deadline: Instant,
    ) -> Result<(), Interrupted> {
        let started = Instant::now();
        loop {
            let wait_ms = match self
                .redis
                .take_token(bucket, pauses, self.config.rate)
                .await
            {
                Ok(wait_ms) => wait_ms,
                Err(error) => {
                    // Without the shared bucket the rate cannot be kept: wait, never send blind.
                    tracing::warn!(error = %error, "rate limiter unavailable (redis); waiting");
                    500
                }
            };
            if wait_ms == 0 {
                metrics()
                    .rate_wait_seconds
                    .with_label_values(&[channel.as_str()])
                    .observe(started.elapsed().as_secs_f64());
                return Ok(());
            }
            self.sleep(Duration::from_millis(wait_ms.min(1_000)), deadline)
                .await?;
        }
    }

    async fn send(
        &self,
        command: &OutboundCommand,
        endpoints: &Endpoints,
        owner: &str,
        prior_attempts: u32,
        deadline: Instant,
    ) -> Result<(), HandlerError> {
        let target = match self.target(command, endpoints) {
            Ok(target) => target,
            Err(refusal) => return self.finish(command, &refusal).await,
        };
        let channel = command.channel;
        let channel_name = channel.as_str();
        let bucket = bucket_key(channel_name, target.endpoint);
        let number_pause = pause_key(channel_name, target.endpoint, None);
        let pair_pause = pause_key(channel_name, target.endpoint, Some(&command.to));
        let pauses = [number_pause.clone(), pair_pause.clone()];
        let mut attempts = prior_attempts;
        let mut rate_limited: u32 = 0;
        let mut transient: u32 = 0;
        let mut last_answer: Option<(String, String)> = None;
        loop {
            if attempts >= self.config.max_attempts {
                let (code, reason) = last_answer
                    .unwrap_or_else(|| ("retries_exhausted".to_string(), "no answer".to_string()));
                let result = failed(
                    &code,
                    format!("gave up after {attempts} provider calls; last answer: {reason}"),
                    true,
                    attempts,
                );
                return self.finish(command, &result).await;
            }
            if let Err(interrupted) = self.acquire(&bucket, &pauses, channel, deadline).await {
                return self
                    .interrupted(command, owner, attempts, interrupted, last_answer)
                    .await;
            }
            if !self
                .ledger
                .set_phase(&command.command_id, owner, Phase::InFlight, attempts + 1)
                .await
                .map_err(retryable)?
            {
                return Err(retryable(format!(
                    "lost the claim on command {} to another sender",
                    command.command_id
                )));
            }
            attempts += 1;
            let started = Instant::now();
            let transport = match channel {
                Channel::Whatsapp => {
                    self.providers
                        .whatsapp(target.endpoint, &target.token, &target.body)
                        .await
                }
                Channel::Rcs => {
                    self.providers
                        .rbm(
                            &command.to,
                            &target.rbm_message_id,
                            target.endpoint,
                            &target.token,
                            &target.body,
                        )
                        .await
                }
            };
            metrics()
                .provider_seconds
                .with_label_values(&[channel_name])
                .observe(started.elapsed().as_secs_f64());
            let answer = match transport {
                Transport::Answered(http) => match channel {
                    Channel::Whatsapp => answer::whatsapp(&http),
                    Channel::Rcs => answer::rbm(&http, &target.rbm_message_id),
                },
                Transport::NotSent(reason) => Answer::Transient {
                    code: "provider_unreachable".to_string(),
                    reason,
                },
                Transport::Unknown(reason) => Answer::Unknown { reason },
            };
            // RBM de-duplicates our messageId, and `resend` accepts duplicates: for both an
            // unknown outcome is just worth another try.
            let answer = match answer {
                Answer::Unknown { reason }
                    if channel == Channel::Rcs
                        || self.config.unknown_outcome == UnknownOutcome::Resend =>
                {
                    Answer::Transient {
                        code: "outcome_unknown".to_string(),
                        reason,
                    }
                }
                other => other,
            };
            let class = match &answer {
                Answer::Accepted { .. } => "accepted",
                Answer::RateLimited { .. } => "rate_limited",
                Answer::Transient { .. } => "transient",
                Answer::Permanent { .. } => "permanent",
                Answer::Unknown { .. } => "unknown",
            };
            metrics()
                .provider_calls
                .with_label_values(&[channel_name, class])
                .inc();
            let delay = match answer {
                Answer::Accepted {
                    provider_message_id,
                } => {
                    let result = Final {
                        outcome: SendOutcome::Accepted,
                        provider_message_id: Some(provider_message_id),
                        error: None,
                        attempts: attempts as i32,
                        finished_at: now_millis(),
                    };
                    return self.finish(command, &result).await;
                }
                Answer::Permanent {
                    code,
                    reason,
                    retryable,
                } => {
                    return self
                        .finish(command, &failed(&code, reason, retryable, attempts))
                        .await;
                }
                Answer::Unknown { reason } => {
                    let result = failed(
                        "outcome_unknown",
                        format!(
                            "{reason}; it is unknown whether WhatsApp accepted the message, and it was not \
                             sent again because a second call could deliver it twice. Check the conversation \
                             and resend if it is missing"
                        ),
                        true,
                        attempts,
                    );
                    return self.finish(command, &result).await;
                }
                Answer::RateLimited {
                    scope,
                    code,
                    reason,
                    retry_after,
                } => {
                    rate_limited += 1;
                    let backoff = self
                        .config
                        .rate_limit_backoff
                        .delay(rate_limited, fastrand::f64());
                    let delay = retry_after.map_or(backoff, |after| after.max(backoff));
                    let key = match scope {
                        RateScope::Number => &number_pause,
                        RateScope::Pair => &pair_pause,
                    };
                    // Every instance sending from this number (or to this pair) slows down.
                    if let Err(error) = self.redis.pause(key, delay).await {
                        tracing::warn!(error = %error, "cannot share the rate-limit pause (redis)");
                    }
                    tracing::info!(command_id = %command.command_id, attempts, %code, delay_ms = delay.as_millis() as u64, "rate limited by the provider; backing off");
                    last_answer = Some((code, reason));
                    delay
                }
                Answer::Transient { code, reason } => {
                    transient += 1;
                    let delay = self.config.retry_backoff.delay(transient, fastrand::f64());
                    tracing::info!(command_id = %command.command_id, attempts, %code, delay_ms = delay.as_millis() as u64, "provider failed transiently; retrying");
                    last_answer = Some((code, reason));
                    delay
                }
            };
            if !self
                .ledger
                .set_phase(&command.command_id, owner, Phase::Pending, attempts)
                .await
                .map_err(retryable)?
            {
                return Err(retryable(format!(
                    "lost the claim on command {} to another sender",
                    command.command_id
                )));
            }
            if let Err(interrupted) = self.sleep(delay, deadline).await {
                return self
                    .interrupted(command, owner, attempts, interrupted, last_answer)
                    .await;
            }
        }
    }

    /// A send stopped between calls: on shutdown hand the claim back (the record is
    /// redelivered), past the deadline fail the command.
    async fn interrupted(
        &self,
        command: &OutboundCommand,
        owner: &str,
        attempts: u32,
        interrupted: Interrupted,
        last_answer: Option<(String, String)>,
    ) -> Result<(), HandlerError> {
        match interrupted {
            Interrupted::Shutdown => {
                if let Err(error) = self.ledger.release(&command.command_id, owner).await {
                    tracing::warn!(error = %error, command_id = %command.command_id, "cannot release the claim; the next owner waits for this instance's liveness to lapse");
                }
                Err(retryable("shutting down; the command is redelivered"))
            }
            Interrupted::Deadline => {
                let last = last_answer.map_or_else(
                    || "none".to_string(),
                    |(code, reason)| format!("{code}: {reason}"),
                );
                let result = failed(
                    "deadline_exceeded",
                    format!(
                        "not sent within {} s ({attempts} provider calls; the number's rate limit or backoff \
                         held it); last answer: {last}",
                        self.config.command_deadline.as_secs()
                    ),
                    true,
                    attempts,
                );
                self.finish(command, &result).await
            }
        }
    }

    /// Store the outcome (unless one is stored) and publish the stored one.
    async fn finish(&self, command: &OutboundCommand, result: &Final) -> Result<(), HandlerError> {
        let stored = self
            .ledger
            .finish(&command.command_id, result)
            .await
            .map_err(retryable)?;
        self.publish_final(command, &stored).await
    }

    async fn publish_final(
        &self,
        command: &OutboundCommand,
        stored: &Final,
    ) -> Result<(), HandlerError> {
        let outcome = match stored.outcome {
            SendOutcome::Accepted => "accepted",
            SendOutcome::Failed => "failed",
        };
        metrics()
            .commands
            .with_label_values(&[command.channel.as_str(), outcome])
            .inc();
        tracing::info!(
            command_id = %command.command_id,
            channel = %command.channel,
            outcome,
            attempts = stored.attempts,
            code = stored.error.as_ref().map(|error| error.code.as_str()).unwrap_or(""),
            "command finished"
        );
        self.publish(command, stored).await
    }

    async fn publish(&self, command: &OutboundCommand, stored: &Final) -> Result<(), HandlerError> {
        let event_id = keys::deterministic_event_id(&["sender", "result", &command.command_id]);
        self.publish_with_id(command, stored, event_id).await
    }

    async fn publish_with_id(
        &self,
        command: &OutboundCommand,
        stored: &Final,
        event_id: String,
    ) -> Result<(), HandlerError> {
        let result = OutboundResult {
            event_id,
            tenant_id: command.tenant_id.clone(),
            conversation_key: command.conversation_key.clone(),
            channel: command.channel,
            occurred_at: stored.finished_at,
            recorded_at: now_millis(),
            source: crate::SERVICE.to_string(),
            trace_parent: command.trace_parent.clone(),
            command_id: command.command_id.clone(),
            outcome: stored.outcome,
            provider_message_id: stored.provider_message_id.clone(),
            error: stored.error.clone(),
            origin: command.origin,
            campaign_id: command.campaign_id.clone(),
            attempts: stored.attempts,
        };
        let bytes = self
            .codec
            .encode(&result)
            .await
            .map_err(|error| retryable(format!("cannot encode the result: {error}")))?;
        let mut record = OutboundRecord::new(
            topics::OUTBOUND_RESULTS,
            command.conversation_key.clone(),
            bytes,
        );
        if let Some(traceparent) = command
            .trace_parent
            .as_deref()
            .and_then(|text| TraceParent::parse(text).ok())
        {
            record = record.with_traceparent(&traceparent);
        }
        self.producer
            .send(record)
            .await
            .map_err(|error| retryable(format!("cannot publish the result: {error}")))?;
        Ok(())
    }
}
