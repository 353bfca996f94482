//! Campaign commands and events (`campaign.commands.v1`, `campaign.events.v1`).
//!
//! Both topics are keyed by the campaign key `<tenant_id>:campaign:<campaign_id>`
//! ([`crate::keys::campaign_key`]), which the envelope's `conversation_key` holds.

use serde::{Deserialize, Serialize};

use super::{Channel, Template};

/// A day of the week (`caas.v1.Weekday`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// Hours in which a campaign may send, in its timezone (`caas.v1.SendingWindow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendingWindow {
    /// Start, minutes after local midnight (0..1439).
    pub start_minute: i32,
    /// End (exclusive), minutes after local midnight (1..1440); no wrap past midnight.
    pub end_minute: i32,
    /// Days the window applies; empty means every day.
    pub days: Vec<Weekday>,
}

/// Create and schedule a campaign (`caas.v1.CreateCampaign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCampaign {
    /// Human-readable name.
    pub name: String,
    /// The template, with the parameters common to every recipient.
    pub template: Template,
    /// The business endpoint to send from; `None` for the tenant's default.
    pub business_id: Option<String>,
    /// A stored audience the campaign service resolves.
    pub audience_id: Option<String>,
    /// Recipients given inline (customer ids), added to the audience.
    pub recipients: Vec<String>,
    /// Maximum sends per minute.
    pub rate_per_minute: i32,
    /// When to start, epoch milliseconds; `None` to start now.
    pub start_at: Option<i64>,
    /// When to stop even if recipients remain, epoch milliseconds.
    pub end_at: Option<i64>,
    /// Hours in which sending is allowed; `None` for any time.
    pub sending_window: Option<SendingWindow>,
    /// IANA timezone of the sending window, e.g. `Europe/Berlin`.
    pub timezone: String,
}

/// Pause sending (`caas.v1.PauseCampaign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseCampaign {
    /// Why, in words.
    pub reason: Option<String>,
}

/// Resume a paused campaign (`caas.v1.ResumeCampaign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeCampaign {
    /// Why, in words.
    pub reason: Option<String>,
}

/// Cancel a campaign for good (`caas.v1.CancelCampaign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelCampaign {
    /// Why, in words.
    pub reason: Option<String>,
}

/// What a campaign command asks for (Avro union, in this order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignAction {
    /// Create and schedule (boxed: it is far larger than the other actions).
    Create(Box<CreateCampaign>),
    /// Pause.
    Pause(PauseCampaign),
    /// Resume.
    Resume(ResumeCampaign),
    /// Cancel.
    Cancel(CancelCampaign),
}

/// A command to a campaign (`caas.v1.CampaignCommand`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignCommand {
    /// Unique id of the event.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The campaign key `<tenant_id>:campaign:<campaign_id>`; the Kafka key.
    pub conversation_key: String,
    /// The channel the campaign sends on.
    pub channel: Channel,
    /// When the command was issued, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// Unique id of the command; applied at most once.
    pub command_id: String,
    /// The campaign.
    pub campaign_id: String,
    /// The operator who issued it.
    pub operator_id: Option<String>,
    /// What to do.
    pub action: CampaignAction,
}

/// What happened to a campaign (`caas.v1.CampaignEventKind`). Readers map kinds added after
/// their schema to `Unknown` (the enum's Avro default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignEventKind {
    /// Accepted and stored.
    Created,
    /// Waiting for its start time or sending window.
    Scheduled,
    /// Sending began.
    Started,
    /// Counts while running.
    Progress,
    /// Paused.
    Paused,
    /// Resumed.
    Resumed,
    /// Cancelled.
    Cancelled,
    /// Every recipient handled.
    Completed,
    /// Stopped by an error.
    Failed,
    /// A command was refused (invalid, or not allowed in the current state).
    Rejected,
    /// A kind this reader does not know.
    Unknown,
}

/// Running totals of a campaign (`caas.v1.CampaignCounts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CampaignCounts {
    /// Recipients in the audience.
    pub audience: i64,
    /// Not yet sent to.
    pub queued: i64,
    /// Accepted by the provider.
    pub sent: i64,
    /// Reported delivered.
    pub delivered: i64,
    /// Reported read.
    pub read: i64,
    /// Failed sends.
    pub failed: i64,
    /// Skipped (opted out, invalid, cancelled).
    pub skipped: i64,
    /// Recipients who replied.
    pub replied: i64,
}

/// A campaign lifecycle change or progress report (`caas.v1.CampaignEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignEvent {
    /// Unique id of the event.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The campaign key `<tenant_id>:campaign:<campaign_id>`; the Kafka key.
    pub conversation_key: String,
    /// The channel the campaign sends on.
    pub channel: Channel,
    /// When it happened, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// The campaign.
    pub campaign_id: String,
    /// What happened.
    pub kind: CampaignEventKind,
    /// The command that caused it.
    pub command_id: Option<String>,
    /// Totals at the time of the event.
    pub counts: CampaignCounts,
    /// Why (paused, cancelled, failed, rejected).
    pub reason: Option<String>,
}
