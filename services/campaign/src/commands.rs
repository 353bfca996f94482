//! `campaign.commands.v1` → campaigns in MongoDB and lifecycle events on `campaign.events.v1`.
//!
//! A create stores the campaign (its audience is expanded later by the sending lane); pause,
//! resume and cancel move its state when the lifecycle allows and are refused with a
//! `rejected` event otherwise. Every command is applied at most once (its id is recorded in
//! the campaign in the same update that applies it); a redelivered command re-produces the
//! same event (same deterministic event id), which is harmless.

use std::sync::Arc;

use caas_events::keys;
use caas_events::model::{CampaignAction, CampaignCommand, CampaignCounts, CampaignEventKind};
use caas_kafka::{Handler, HandlerError, Record};

use crate::context::{campaign_event, now_ms, CampaignRef, Context};
use crate::domain::lifecycle::{self, CampaignState};
use crate::domain::status::RecipientStatus;
use crate::domain::{ids, window};
use crate::metrics::metrics;
use crate::store::{CampaignDoc, Expansion};

/// The sending number a campaign shares: `<tenant>:<channel>:<business id or default>`.
pub fn sender_key(
    tenant_id: &str,
    channel: caas_events::model::Channel,
    business_id: Option<&str>,
) -> String {
    format!(
        "{tenant_id}:{}:{}",
        channel.as_str(),
        business_id.unwrap_or("default")
    )
}

/// Applies campaign commands.
pub struct CommandHandler {
    context: Arc<Context>,
}

impl CommandHandler {
    /// A handler over the shared context.
    pub fn new(context: Arc<Context>) -> Self {
        Self { context }
    }

    async fn reject(&self, command: &CampaignCommand, reason: String) -> Result<(), HandlerError> {
        tracing::info!(
            tenant = %command.tenant_id,
            campaign_id = %command.campaign_id,
            command_id = %command.command_id,
            reason,
            "campaign command rejected"
        );
        metrics()
            .commands
            .with_label_values(&[action_label(&command.action), "rejected"])
            .inc();
        let event = campaign_event(
            CampaignRef {
                tenant_id: &command.tenant_id,
                campaign_id: &command.campaign_id,
                channel: command.channel,
            },
            ids::command_event_id(&command.command_id, "rejected"),
            CampaignEventKind::Rejected,
            Some(&command.command_id),
            CampaignCounts::default(),
            Some(reason),
        );
        self.context
            .publisher
            .publish(&[event])
            .await
            .map_err(HandlerError::retryable)
    }

    async fn announce(
        &self,
        campaign: &CampaignDoc,
        command_id: &str,
        kind: CampaignEventKind,
        reason: Option<String>,
    ) -> Result<(), HandlerError> {
        let counts = self
            .context
            .store
            .counts(&campaign.key)
            .await
            .map_err(HandlerError::retryable)?;
        let label = match kind {
            CampaignEventKind::Created => "created",
            CampaignEventKind::Scheduled => "scheduled",
            CampaignEventKind::Paused => "paused",
            CampaignEventKind::Resumed => "resumed",
            CampaignEventKind::Cancelled => "cancelled",
            _ => "other",
        };
        let event = campaign_event(
            CampaignRef {
                tenant_id: &campaign.tenant_id,
                campaign_id: &campaign.campaign_id,
                channel: campaign.channel,
            },
            ids::command_event_id(command_id, label),
            kind,
            Some(command_id),
            counts,
            reason,
        );
        self.context
            .publisher
            .publish(&[event])
            .await
            .map_err(HandlerError::retryable)
    }

    async fn apply(&self, command: CampaignCommand) -> Result<(), HandlerError> {
        let key = keys::campaign_key(&command.tenant_id, &command.campaign_id);
        if let Err(reason) = lifecycle::validate_campaign_id(&command.campaign_id) {
            return self.reject(&command, reason).await;
        }
        if command.tenant_id.is_empty() || command.tenant_id.contains(':') {
            return self
                .reject(
                    &command,
                    "the tenant id must be non-empty without ':'".to_string(),
                )
                .await;
        }
        if command.conversation_key != key {
            return self
                .reject(
                    &command,
                    format!("the record key must be the campaign key {key}"),
                )
                .await;
        }
        match &command.action {
            CampaignAction::Create(create) => self.create(&command, create, key).await,
            _ => self.change(&command, &key).await,
        }
    }

    async fn create(
        &self,
        command: &CampaignCommand,
        create: &caas_events::model::CreateCampaign,
        key: String,
    ) -> Result<(), HandlerError> {
        let store = &self.context.store;
        if let Err(reason) = lifecycle::validate_create(create) {
            return self.reject(command, reason).await;
        }
        if let Some(audience_id) = &create.audience_id {
            let audience = store
                .audience(audience_id)
                .await
                .map_err(HandlerError::retryable)?;
            match audience {
                Some(audience)
                    if audience.tenant_id == command.tenant_id && audience.state == "complete" => {}
                Some(audience) if audience.tenant_id == command.tenant_id => {
                    return self
                        .reject(
                            command,
                            format!("audience {audience_id} is still {}", audience.state),
                        )
                        .await
                }
                _ => {
                    return self
                        .reject(command, format!("audience {audience_id} does not exist"))
                        .await
                }
            }
        }
        let now = now_ms();
        let campaign = CampaignDoc {
            key: key.clone(),
            tenant_id: command.tenant_id.clone(),
            campaign_id: command.campaign_id.clone(),
            channel: command.channel,
            name: create.name.clone(),
            template: create.template.clone(),
            business_id: create.business_id.clone(),
            sender_key: sender_key(
                &command.tenant_id,
                command.channel,
                create.business_id.as_deref(),
            ),
            audience_id: create.audience_id.clone(),
            inline_recipients: create.recipients.clone(),
            rate_per_minute: create.rate_per_minute,
            start_at: create.start_at,
            end_at: create.end_at,
            sending_window: create.sending_window.clone(),
            timezone: create.timezone.clone(),
            state: CampaignState::Scheduled,
            reason: None,
            create_command_id: command.command_id.clone(),
            operator_id: command.operator_id.clone(),
            commands: vec![command.command_id.clone()],
            expansion: Expansion::default(),
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            settled: false,
            counts: None,
            counts_at: None,
        };
        let inserted = store
            .insert_campaign(&campaign)
            .await
            .map_err(HandlerError::retryable)?;
        if !inserted {
            let existing = store
                .campaign(&key)
                .await
                .map_err(HandlerError::retryable)?;
            match existing {
                Some(existing) if existing.create_command_id == command.command_id => {}
                _ => {
                    return self
                        .reject(
                            command,
                            format!("campaign {} already exists", command.campaign_id),
                        )
                        .await
                }
            }
        } else {
            metrics()
                .commands
                .with_label_values(&["create", "applied"])
                .inc();
            tracing::info!(campaign = %key, "campaign created");
        }
        self.context.poke();
        self.announce(
            &campaign,
            &command.command_id,
            CampaignEventKind::Created,
            None,
        )
        .await?;
        let timezone = window::parse_timezone(&campaign.timezone).map_err(HandlerError::poison)?;
        let schedule = window::Schedule {
            start_at: campaign.start_at,
            end_at: campaign.end_at,
            window: campaign.sending_window.clone(),
            timezone,
        };
        if let window::Verdict::Closed { until } = schedule.verdict(now) {
            self.announce(
                &campaign,
                &command.command_id,
                CampaignEventKind::Scheduled,
                Some(format!("sending opens at {until} (epoch ms)")),
            )
            .await?;
        }
        Ok(())
    }

    async fn change(&self, command: &CampaignCommand, key: &str) -> Result<(), HandlerError> {
        let store = &self.context.store;
        let (kind, reason) = match &command.action {
            CampaignAction::Pause(pause) => (CampaignEventKind::Paused, pause.reason.clone()),
            CampaignAction::Resume(resume) => (CampaignEventKind::Resumed, resume.reason.clone()),
            CampaignAction::Cancel(cancel) => (CampaignEventKind::Cancelled, cancel.reason.clone()),
            CampaignAction::Create(_) => unreachable!("creates are handled above"),
        };
        // A concurrent change (another instance completing the campaign) makes the conditional
        // update miss; read again and decide again.
        for _ in 0..5 {
            let Some(campaign) = store.campaign(key).await.map_err(HandlerError::retryable)? else {
                return self
                    .reject(
                        command,
                        format!("campaign {} does not exist", command.campaign_id),
                    )
                    .await;
            };
            if campaign.commands.contains(&command.command_id) {
                if kind == CampaignEventKind::Cancelled {
                    self.cancel_rest(&campaign).await?;
                }
                return self
                    .announce(&campaign, &command.command_id, kind, reason)
                    .await;
            }
            let to = match lifecycle::transition(campaign.state, &command.action) {
                Ok(to) => to,
                Err(refusal) => return self.reject(command, refusal).await,
            };
            let changed = store
                .set_state(
                    key,
                    &[campaign.state],
                    to,
                    Some(&command.command_id),
                    reason.as_deref(),
                    now_ms(),
                )
                .await
                .map_err(HandlerError::retryable)?;
            if changed {
                metrics()
                    .commands
                    .with_label_values(&[action_label(&command.action), "applied"])
                    .inc();
                tracing::info!(campaign = %key, from = campaign.state.as_str(), to = to.as_str(), "campaign state changed");
                self.context.poke();
                if to == CampaignState::Cancelled {
                    self.cancel_rest(&campaign).await?;
                }
                return self
                    .announce(&campaign, &command.command_id, kind, reason)
                    .await;
            }
        }
        Err(HandlerError::retryable(format!(
            "campaign {key} kept changing while applying a command"
        )))
    }

    async fn cancel_rest(&self, campaign: &CampaignDoc) -> Result<(), HandlerError> {
        let cancelled = self
            .context
            .store
            .close_pending(
                &campaign.key,
                RecipientStatus::Cancelled,
                "the campaign was cancelled",
                now_ms(),
            )
            .await
            .map_err(HandlerError::retryable)?;
        tracing::info!(campaign = %campaign.key, cancelled, "pending recipients cancelled");
        Ok(())
    }
}

fn action_label(action: &CampaignAction) -> &'static str {
    match action {
        CampaignAction::Create(_) => "create",
        CampaignAction::Pause(_) => "pause",
        CampaignAction::Resume(_) => "resume",
        CampaignAction::Cancel(_) => "cancel",
    }
}

impl Handler for CommandHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let Some(payload) = record.payload.as_deref() else {
            return Err(HandlerError::poison("a campaign command without a value"));
        };
        let command: CampaignCommand = match self.context.codec.decode(payload).await {
            Ok(command) => command,
            Err(error) if error.is_poison() => return Err(HandlerError::poison(error)),
            Err(error) => return Err(HandlerError::retryable(error)),
        };
        self.apply(command).await
    }
}
