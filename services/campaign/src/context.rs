//! What the workers and the API share: configuration, the store, the producer, and a signal
//! that wakes the sending lanes when a command changed a campaign.

use caas_events::model::{CampaignCounts, CampaignEvent, CampaignEventKind, Channel};
use caas_events::{keys, Codec};
use caas_kafka::TraceParent;
use tokio::sync::watch;

use crate::config::Config;
use crate::publish::Publisher;
use crate::store::Store;

/// The `source` of everything this service produces.
pub const SOURCE: &str = "campaign";

/// Shared by every task of the service.
#[derive(Debug)]
pub struct Context {
    /// The configuration.
    pub config: Config,
    /// MongoDB.
    pub store: Store,
    /// Kafka.
    pub publisher: Publisher,
    /// Decodes consumed records.
    pub codec: Codec,
    /// Bumped when a command changed a campaign, so this instance's lanes re-read at once
    /// (other instances see it on their next refresh).
    pub wake: watch::Sender<u64>,
}

impl Context {
    /// Wake the lanes.
    pub fn poke(&self) {
        self.wake
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }
}

/// Now, in milliseconds since the epoch.
pub use caas_runtime::clock::now_millis as now_ms;

/// A new W3C trace for a record this service starts.
pub fn new_trace() -> String {
    TraceParent::new_root().to_string()
}

/// What a campaign event is about.
#[derive(Debug, Clone, Copy)]
pub struct CampaignRef<'a> {
    /// The tenant.
    pub tenant_id: &'a str,
    /// The campaign id.
    pub campaign_id: &'a str,
    /// Its channel.
    pub channel: Channel,
}

/// A campaign event.
pub fn campaign_event(
    campaign: CampaignRef<'_>,
    event_id: String,
    kind: CampaignEventKind,
    command_id: Option<&str>,
    counts: CampaignCounts,
    reason: Option<String>,
) -> CampaignEvent {
    let now = now_ms();
    CampaignEvent {
        event_id,
        tenant_id: campaign.tenant_id.to_string(),
        conversation_key: keys::campaign_key(campaign.tenant_id, campaign.campaign_id),
        channel: campaign.channel,
        occurred_at: now,
        recorded_at: now,
        source: SOURCE.to_string(),
        trace_parent: Some(new_trace()),
        campaign_id: campaign.campaign_id.to_string(),
        kind,
        command_id: command_id.map(str::to_string),
        counts,
        reason,
    }
}
