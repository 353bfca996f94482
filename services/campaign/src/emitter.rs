//! Sending: one *lane* per sending number, owned by one instance at a time.
//!
//! The coordinator finds the numbers that have live campaigns, takes a lease on each in
//! MongoDB (`campaign_senders`, renewed every third of `CAAS_CAMPAIGN_LEASE_MS`) and runs a
//! lane for each lease it holds. A lane:
//!
//! 1. re-reads its campaigns every `CAAS_CAMPAIGN_REFRESH_MS` (at once when a command handled
//!    by this instance changed one), expands audiences into recipients in the background,
//!    starts, completes and expires campaigns;
//! 2. asks the [`Planner`] how many messages each campaign may send now (its own rate, the
//!    number's rate, shared in turns), only for campaigns inside their sending hours;
//! 3. per campaign, takes the next pending recipients in order, checks consent right then,
//!    produces their send commands (deterministic ids) and waits for Kafka's acknowledgement,
//!    and only then marks them `queued`. A crash between the two re-produces the same command
//!    ids after the restart (the sender de-duplicates by command id); nobody is skipped,
//!    since nothing is marked before it is on Kafka;
//! 4. reports totals on `campaign.events.v1` every `CAAS_CAMPAIGN_PROGRESS_MS` when they
//!    changed.
//!
//! A lane stops sending as soon as its lease may have run out, so two instances never send
//! for one number at the same time (short of a clock jump larger than the safety margin).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caas_events::keys;
use caas_events::model::{CampaignCounts, CampaignEventKind, Content, Origin, OutboundCommand};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::{campaign_event, new_trace, now_ms, CampaignRef, Context, SOURCE};
use crate::domain::audience::{for_channel, AudienceRow};
use crate::domain::lifecycle::CampaignState;
use crate::domain::rate::{burst_for, Demand, Planner};
use crate::domain::status::RecipientStatus;
use crate::domain::{ids, template, window};
use crate::metrics::metrics;
use crate::store::{consent_key, CampaignDoc, RecipientDoc, StoreError, Transition};

/// Rows expanded per step.
const EXPANSION_CHUNK: i64 = 1000;
/// A lane stops sending this long before its lease ends.
const LEASE_MARGIN_MS: i64 = 1500;
/// Progress is reported at least this often while something can still change.
const HEARTBEAT_MS: i64 = 5000;

struct LaneHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
    lease_until: Arc<AtomicI64>,
    renewed_at: i64,
}

/// Run the coordinator until `stop`.
pub async fn run(context: Arc<Context>, stop: CancellationToken) {
    let mut lanes: HashMap<String, LaneHandle> = HashMap::new();
    let mut wake = context.wake.subscribe();
    let owner = context.config.instance_id.clone();
    let lease_ms = context.config.lease.as_millis() as i64;
    loop {
        let now = now_ms();
        lanes.retain(|_, lane| !lane.task.is_finished());
        match context.store.live_senders().await {
            Ok(senders) => {
                let live: HashSet<&String> = senders.iter().collect();
                for (sender, lane) in &lanes {
                    if !live.contains(sender) {
                        lane.stop.cancel();
                    }
                }
                for sender in &senders {
                    let renew_due = lanes
                        .get(sender)
                        .is_none_or(|lane| now - lane.renewed_at >= lease_ms / 3);
                    if !renew_due {
                        continue;
                    }
                    match context
                        .store
                        .acquire_lease(sender, &owner, now, now + lease_ms)
                        .await
                    {
                        Ok(true) => {
                            if let Some(lane) = lanes.get_mut(sender) {
                                lane.lease_until.store(now + lease_ms, Ordering::SeqCst);
                                lane.renewed_at = now;
                            } else {
                                tracing::info!(sender, "sending-number lease taken; lane starts");
                                let lane_stop = stop.child_token();
                                let lease_until = Arc::new(AtomicI64::new(now + lease_ms));
                                let lane =
                                    Lane::new(context.clone(), sender.clone(), lease_until.clone());
                                let task = tokio::spawn(lane.run(lane_stop.clone()));
                                lanes.insert(
                                    sender.clone(),
                                    LaneHandle {
                                        stop: lane_stop,
                                        task,
                                        lease_until,
                                        renewed_at: now,
                                    },
                                );
                            }
                        }
                        Ok(false) => {
                            if let Some(lane) = lanes.remove(sender) {
                                tracing::warn!(sender, "sending-number lease lost; lane stops");
                                lane.stop.cancel();
                            }
                        }
                        Err(error) => {
                            tracing::warn!(sender, error = %error, "cannot renew a sending-number lease");
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(error = %error, "cannot list live campaigns"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = wake.changed() => {}
            _ = tokio::time::sleep(context.config.refresh) => {}
        }
    }
    for (sender, lane) in lanes {
        lane.stop.cancel();
        let _ = lane.task.await;
        if let Err(error) = context.store.release_lease(&sender, &owner).await {
            tracing::warn!(sender, error = %error, "cannot release a sending-number lease");
        }
    }
}

/// What a lane remembers about one campaign between steps.
#[derive(Default)]
struct Progress {
    /// The next pending recipients, in order, read in one query (a query per step would cost
    /// more than the step itself on a large campaign).
    buffer: VecDeque<RecipientDoc>,
    /// The last read found nothing pending (until the next refresh).
    drained: bool,
}

struct Lane {
    context: Arc<Context>,
    sender_key: String,
    planner: Planner,
    campaigns: Vec<CampaignDoc>,
    progress: HashMap<String, Progress>,
    expansions: HashMap<String, JoinHandle<()>>,
    lease_until: Arc<AtomicI64>,
    next_refresh: i64,
    /// The campaigns, for the reporter task.
    snapshot: tokio::sync::watch::Sender<Vec<CampaignDoc>>,
}

impl Lane {
    fn new(context: Arc<Context>, sender_key: String, lease_until: Arc<AtomicI64>) -> Self {
        let number_rate = context.config.number_rate(&sender_key);
        let tick = context.config.tick.as_millis() as u64;
        Self {
            context,
            sender_key,
            planner: Planner::new(number_rate, tick),
            campaigns: Vec::new(),
            progress: HashMap::new(),
            expansions: HashMap::new(),
            lease_until,
            next_refresh: 0,
            snapshot: tokio::sync::watch::channel(Vec::new()).0,
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        let reporter = tokio::spawn(report(
            self.context.clone(),
            self.snapshot.subscribe(),
            stop.clone(),
        ));
        self.sending(&stop).await;
        stop.cancel();
        let _ = reporter.await;
        for (_, expansion) in self.expansions.drain() {
            let _ = expansion.await;
        }
    }

    async fn sending(&mut self, stop: &CancellationToken) {
        let mut wake = self.context.wake.subscribe();
        let refresh_ms = self.context.config.refresh.as_millis() as i64;
        let tick_ms = self.context.config.tick.as_millis() as i64;
        loop {
            let now = now_ms();
            if now >= self.next_refresh {
                if let Err(error) = self.refresh(now, stop).await {
                    tracing::warn!(sender = %self.sender_key, error = %error, "cannot refresh campaigns");
                }
                self.next_refresh = now + refresh_ms;
                if self.campaigns.is_empty()
                    && self.expansions.values().all(JoinHandle::is_finished)
                {
                    tracing::info!(sender = %self.sender_key, "no live campaigns; lane stops");
                    return;
                }
            }
            let step_started = now_ms();
            let next_send = match self.send_step(stop).await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(sender = %self.sender_key, error = %error, "sending step failed; retrying");
                    now_ms() + 500
                }
            };
            // At most one step per tick: each step sends what the tick allows.
            let wake_at = next_send
                .max(step_started + tick_ms)
                .min(self.next_refresh.max(now_ms() + 1));
            let sleep = Duration::from_millis((wake_at - now_ms()).max(1) as u64);
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = wake.changed() => {
                    if changed.is_ok() {
                        self.next_refresh = 0;
                    }
                }
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    fn schedule_of(campaign: &CampaignDoc) -> Option<window::Schedule> {
        let timezone = window::parse_timezone(&campaign.timezone).ok()?;
        Some(window::Schedule {
            start_at: campaign.start_at,
            end_at: campaign.end_at,
            window: campaign.sending_window.clone(),
            timezone,
        })
    }

    /// Re-read the campaigns and move their lifecycles on.
    async fn refresh(&mut self, now: i64, stop: &CancellationToken) -> Result<(), StoreError> {
        let store = self.context.store.clone();
        let campaigns = store.live_campaigns(&self.sender_key).await?;
        self.expansions.retain(|_, task| !task.is_finished());
        let live: HashSet<&str> = campaigns
            .iter()
            .map(|campaign| campaign.key.as_str())
            .collect();
        self.progress.retain(|key, _| live.contains(key.as_str()));
        for campaign in &campaigns {
            let progress = self.progress.entry(campaign.key.clone()).or_default();
            let was_drained = progress.drained;
            // Pending recipients may have appeared (expansion) since the last read.
            progress.drained = false;
            if !matches!(
                campaign.state,
                CampaignState::Scheduled | CampaignState::Running
            ) {
                // Paused or cancelled: what was read ahead is not sent.
                progress.buffer.clear();
            }
            if !campaign.expansion.done && !self.expansions.contains_key(&campaign.key) {
                let task = tokio::spawn(expand(
                    self.context.clone(),
                    campaign.key.clone(),
                    stop.clone(),
                ));
                self.expansions.insert(campaign.key.clone(), task);
            }
            if !matches!(
                campaign.state,
                CampaignState::Scheduled | CampaignState::Running
            ) {
                continue;
            }
            let Some(schedule) = Self::schedule_of(campaign) else {
                continue;
            };
            if schedule.verdict(now) == window::Verdict::Ended {
                let expired = store
                    .close_pending(
                        &campaign.key,
                        RecipientStatus::Expired,
                        "the campaign's end time passed",
                        now,
                    )
                    .await?;
                self.complete(
                    campaign,
                    Some(format!(
                        "end time reached; {expired} recipients not sent to"
                    )),
                )
                .await?;
                continue;
            }
            if campaign.expansion.done
                && was_drained
                && !store
                    .has_status(&campaign.key, RecipientStatus::Pending)
                    .await?
            {
                self.complete(campaign, None).await?;
            }
        }
        self.snapshot.send_replace(campaigns.clone());
        self.campaigns = campaigns;
        Ok(())
    }

    async fn complete(
        &self,
        campaign: &CampaignDoc,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let completed = self
            .context
            .store
            .set_state(
                &campaign.key,
                &[CampaignState::Scheduled, CampaignState::Running],
                CampaignState::Completed,
                None,
                reason.as_deref(),
                now_ms(),
            )
            .await?;
        if completed {
            tracing::info!(campaign = %campaign.key, "campaign completed");
            let counts = self.context.store.counts(&campaign.key).await?;
            self.publish_lifecycle(campaign, CampaignEventKind::Completed, counts, reason)
                .await;
        }
        Ok(())
    }

    async fn publish_lifecycle(
        &self,
        campaign: &CampaignDoc,
        kind: CampaignEventKind,
        counts: CampaignCounts,
        reason: Option<String>,
    ) {
        let label = match kind {
            CampaignEventKind::Started => "started",
            CampaignEventKind::Completed => "completed",
            _ => "other",
        };
        let event = campaign_event(
            campaign_ref(campaign),
            ids::lifecycle_event_id(&campaign.key, label),
            kind,
            None,
            counts,
            reason,
        );
        if let Err(error) = self.context.publisher.publish(&[event]).await {
            tracing::warn!(campaign = %campaign.key, error = %error, "cannot publish a lifecycle event");
        }
    }

    /// Send what the paces allow now; returns when to come back (epoch ms).
    ///
    /// The slow parts come first (reading ahead, the consent check of what may go next);
    /// then the paces are asked and every granted command is stamped with that moment and
    /// handed to Kafka at once, so the pace's clock is the commands' clock.
    async fn send_step(&mut self, stop: &CancellationToken) -> Result<i64, StoreError> {
        let now = now_ms();
        if now > self.lease_until.load(Ordering::SeqCst) - LEASE_MARGIN_MS {
            // The lease may be gone: another instance may be sending for this number.
            return Ok(now + 200);
        }
        let store = self.context.store.clone();
        let tick = self.context.config.tick.as_millis() as u64;
        let mut demands = Vec::new();
        let mut closed_until = i64::MAX;
        for campaign in &self.campaigns {
            if !matches!(
                campaign.state,
                CampaignState::Scheduled | CampaignState::Running
            ) {
                continue;
            }
            if self
                .progress
                .get(&campaign.key)
                .is_some_and(|progress| progress.drained)
            {
                continue;
            }
            match Self::schedule_of(campaign).map(|schedule| schedule.verdict(now)) {
                Some(window::Verdict::Open) => demands.push(Demand {
                    campaign: campaign.key.clone(),
                    rate_per_second: f64::from(campaign.rate_per_minute) / 60.0,
                    backlog: 0,
                }),
                Some(window::Verdict::Closed { until }) => closed_until = closed_until.min(until),
                _ => {}
            }
        }
        for demand in &mut demands {
            let Some(campaign) = self
                .campaigns
                .iter()
                .find(|campaign| campaign.key == demand.campaign)
                .cloned()
            else {
                continue;
            };
            let read_ahead =
                (f64::from(campaign.rate_per_minute) / 30.0).clamp(100.0, 2000.0) as i64;
            let progress = self.progress.entry(demand.campaign.clone()).or_default();
            if progress.buffer.is_empty() {
                let read = store
                    .pending(&demand.campaign, i64::MIN, read_ahead)
                    .await?;
                progress.drained = read.is_empty();
                progress.buffer.extend(read);
            }
            // Consent, for what may go in this step.
            let head =
                (burst_for(demand.rate_per_second, tick) as usize).min(progress.buffer.len());
            let cleared = self.clear_consent(&campaign, head).await?;
            demand.backlog = u32::try_from(cleared).unwrap_or(u32::MAX);
        }
        demands.retain(|demand| demand.backlog > 0);
        if demands.is_empty() {
            return Ok(closed_until.min(now + 1000));
        }
        let now = now_ms();
        let grants = self.planner.plan(now as f64, &demands);
        let mut commands = Vec::new();
        let mut queued = Vec::new();
        let mut unsendable = Vec::new();
        let mut sent_per_campaign = Vec::new();
        for (key, granted) in grants {
            if stop.is_cancelled() {
                self.planner.refund(&key, granted);
                continue;
            }
            let Some(campaign) = self
                .campaigns
                .iter()
                .find(|campaign| campaign.key == key)
                .cloned()
            else {
                self.planner.refund(&key, granted);
                continue;
            };
            if !self.start_if_scheduled(&campaign).await? {
                self.planner.refund(&key, granted);
                continue;
            }
            let progress = self.progress.entry(key.clone()).or_default();
            let take = progress.buffer.len().min(granted as usize);
            let mut built = 0u32;
            for recipient in progress.buffer.drain(..take) {
                let Some(to) = recipient.to.as_deref() else {
                    continue;
                };
                match template::render(&campaign.template, &recipient.params) {
                    Ok(rendered) => {
                        commands.push(send_command(&campaign, &recipient, to, rendered, now));
                        queued.push(recipient.id.clone());
                        built += 1;
                    }
                    Err(reason) => {
                        metrics().skipped.with_label_values(&["invalid"]).inc();
                        unsendable.push(Transition {
                            id: recipient.id.clone(),
                            to: RecipientStatus::Failed,
                            at: now,
                            set: mongodb::bson::doc! { "reason": reason },
                        });
                    }
                }
            }
            self.planner.refund(&key, granted - built.min(granted));
            sent_per_campaign.push((campaign.channel, built));
        }
        if !commands.is_empty() {
            if let Err(error) = self.context.publisher.publish(&commands).await {
                // Not marked: the same commands (same ids) go out on a later step.
                for progress in self.progress.values_mut() {
                    progress.buffer.clear();
                }
                tracing::warn!(sender = %self.sender_key, error = %error, "cannot produce send commands; retrying");
                return Ok(now_ms() + 500);
            }
            for (channel, built) in sent_per_campaign {
                metrics()
                    .emitted
                    .with_label_values(&[channel.as_str()])
                    .inc_by(u64::from(built));
            }
        }
        store
            .mark_pending(&queued, RecipientStatus::Queued, now)
            .await?;
        store.transition(&unsendable, now).await?;
        Ok(self.planner.ready_at(now_ms() as f64, &demands) as i64)
    }

    /// Check consent for the first `head` buffered recipients of a campaign; the refused ones
    /// are skipped (and leave the buffer). Returns how many of the buffer's head are clear.
    async fn clear_consent(
        &mut self,
        campaign: &CampaignDoc,
        head: usize,
    ) -> Result<usize, StoreError> {
        let store = self.context.store.clone();
        let require_opt_in = self.context.config.require_opt_in;
        let Some(progress) = self.progress.get_mut(&campaign.key) else {
            return Ok(0);
        };
        let candidates: Vec<RecipientDoc> = progress.buffer.iter().take(head).cloned().collect();
        let consent_keys: Vec<String> = candidates
            .iter()
            .filter_map(|recipient| recipient.to.as_deref())
            .map(|to| consent_key(&campaign.tenant_id, campaign.channel, to))
            .collect();
        let opted_out = store
            .with_consent_status(&consent_keys, "opted_out")
            .await?;
        let opted_in = if require_opt_in {
            Some(store.with_consent_status(&consent_keys, "opted_in").await?)
        } else {
            None
        };
        let now = now_ms();
        let mut skips = Vec::new();
        let mut refused = HashSet::new();
        for recipient in &candidates {
            let Some(to) = recipient.to.as_deref() else {
                refused.insert(recipient.id.clone());
                continue;
            };
            let key = consent_key(&campaign.tenant_id, campaign.channel, to);
            let refusal = if opted_out.contains(&key) {
                Some(("opted_out", "the customer opted out".to_string()))
            } else if opted_in
                .as_ref()
                .is_some_and(|opted_in| !opted_in.contains(&key))
            {
                Some((
                    "no_opt_in",
                    "no opt-in recorded and CAAS_CAMPAIGN_REQUIRE_OPT_IN is on".to_string(),
                ))
            } else {
                None
            };
            if let Some((label, reason)) = refusal {
                metrics().skipped.with_label_values(&[label]).inc();
                refused.insert(recipient.id.clone());
                skips.push(Transition {
                    id: recipient.id.clone(),
                    to: RecipientStatus::SkippedOptedOut,
                    at: now,
                    set: mongodb::bson::doc! { "reason": reason },
                });
            }
        }
        progress
            .buffer
            .retain(|recipient| !refused.contains(&recipient.id));
        store.transition(&skips, now).await?;
        Ok(candidates.len() - refused.len())
    }

    /// Move a scheduled campaign to running and announce its start (once); `false` when it
    /// was paused or cancelled meanwhile.
    async fn start_if_scheduled(&mut self, campaign: &CampaignDoc) -> Result<bool, StoreError> {
        let store = self.context.store.clone();
        if campaign.state == CampaignState::Scheduled {
            let started = store
                .set_state(
                    &campaign.key,
                    &[CampaignState::Scheduled],
                    CampaignState::Running,
                    None,
                    None,
                    now_ms(),
                )
                .await?;
            if !started {
                // Paused or cancelled meanwhile: send nothing, look again on the next refresh.
                self.next_refresh = 0;
                return Ok(false);
            }
            if let Some(cached) = self
                .campaigns
                .iter_mut()
                .find(|cached| cached.key == campaign.key)
            {
                cached.state = CampaignState::Running;
            }
        }
        let first_send = self
            .campaigns
            .iter()
            .find(|cached| cached.key == campaign.key)
            .is_some_and(|cached| cached.started_at.is_none());
        if first_send {
            if store.mark_started(&campaign.key, now_ms()).await? {
                self.publish_lifecycle(
                    campaign,
                    CampaignEventKind::Started,
                    CampaignCounts::default(),
                    None,
                )
                .await;
            }
            if let Some(cached) = self
                .campaigns
                .iter_mut()
                .find(|cached| cached.key == campaign.key)
            {
                cached.started_at = Some(now_ms());
            }
        }
        Ok(true)
    }
}

/// Report totals of a lane's campaigns when they changed (or for a heartbeat), and settle
/// completed campaigns once nothing more can change. A task of its own: counting a large
/// campaign takes longer than a sending step, so it must not hold sending up; the interval
/// stretches to twice the time counting takes.
async fn report(
    context: Arc<Context>,
    campaigns: tokio::sync::watch::Receiver<Vec<CampaignDoc>>,
    stop: CancellationToken,
) {
    let settle_ms = context.config.settle.as_millis() as i64;
    let mut reported: HashMap<String, (CampaignCounts, i64)> = HashMap::new();
    loop {
        let started = std::time::Instant::now();
        let snapshot = campaigns.borrow().clone();
        reported.retain(|key, _| snapshot.iter().any(|campaign| &campaign.key == key));
        for campaign in snapshot {
            let now = now_ms();
            let counts = match context.store.counts(&campaign.key).await {
                Ok(counts) => counts,
                Err(error) => {
                    tracing::warn!(campaign = %campaign.key, error = %error, "cannot count recipients");
                    continue;
                }
            };
            let unchanged = reported
                .get(&campaign.key)
                .is_some_and(|(last, at)| *last == counts && now - at < HEARTBEAT_MS);
            let settled = campaign.state == CampaignState::Completed
                && ((counts.queued == 0 && counts.sent == counts.delivered)
                    || campaign.completed_at.is_some_and(|at| now - at > settle_ms));
            if unchanged && !settled {
                continue;
            }
            let event = campaign_event(
                campaign_ref(&campaign),
                uuid::Uuid::new_v4().to_string(),
                CampaignEventKind::Progress,
                None,
                counts,
                None,
            );
            if let Err(error) = context.publisher.publish(&[event]).await {
                tracing::warn!(campaign = %campaign.key, error = %error, "cannot publish progress");
                continue;
            }
            reported.insert(campaign.key.clone(), (counts, now));
            if let Err(error) = context
                .store
                .save_counts(&campaign.key, &counts, now, settled)
                .await
            {
                tracing::warn!(campaign = %campaign.key, error = %error, "cannot store totals");
            }
        }
        let pause = context.config.progress.max(started.elapsed() * 2);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn campaign_ref(campaign: &CampaignDoc) -> CampaignRef<'_> {
    CampaignRef {
        tenant_id: &campaign.tenant_id,
        campaign_id: &campaign.campaign_id,
        channel: campaign.channel,
    }
}

/// The send command of one recipient.
fn send_command(
    campaign: &CampaignDoc,
    recipient: &RecipientDoc,
    to: &str,
    rendered: caas_events::model::Template,
    now: i64,
) -> OutboundCommand {
    OutboundCommand {
        event_id: recipient.id.clone(),
        tenant_id: campaign.tenant_id.clone(),
        conversation_key: keys::conversation_key(&campaign.tenant_id, campaign.channel, to),
        channel: campaign.channel,
        occurred_at: now,
        recorded_at: now,
        source: SOURCE.to_string(),
        trace_parent: Some(new_trace()),
        command_id: recipient.id.clone(),
        to: to.to_string(),
        content: Content::Template(rendered),
        origin: Origin::Campaign,
        campaign_id: Some(campaign.campaign_id.clone()),
        reply_to: None,
        operator_id: None,
        business_id: campaign.business_id.clone(),
        callback_data: Some(ids::callback_data(&campaign.campaign_id, &recipient.id)),
    }
}

/// Turn a campaign's audience into recipient documents, a chunk at a time, resumable.
async fn expand(context: Arc<Context>, key: String, stop: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match expand_chunk(&context, &key).await {
            Ok(true) => return,
            Ok(false) => delay = Duration::from_millis(200),
            Err(error) => {
                tracing::warn!(campaign = %key, error = %error, "audience expansion failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One chunk; `true` when the expansion is complete.
async fn expand_chunk(context: &Context, key: &str) -> Result<bool, StoreError> {
    let store = &context.store;
    let Some(campaign) = store.campaign(key).await? else {
        return Ok(true);
    };
    let mut expansion = campaign.expansion.clone();
    if expansion.done {
        return Ok(true);
    }
    let inline_count = campaign.inline_recipients.len() as i64;
    let rows: Vec<(i64, AudienceRow)> = if expansion.inline_next < inline_count {
        let numbers = store
            .inline_recipients(key, expansion.inline_next, EXPANSION_CHUNK)
            .await?;
        let first = expansion.inline_next;
        expansion.inline_next += numbers.len() as i64;
        numbers
            .into_iter()
            .enumerate()
            .map(|(offset, raw)| {
                let index = first + offset as i64;
                (
                    index,
                    AudienceRow::new((index + 1) as u64, raw, Default::default()),
                )
            })
            .collect()
    } else if let Some(audience_id) = &campaign.audience_id {
        let rows = store
            .audience_rows(audience_id, expansion.audience_line, EXPANSION_CHUNK, false)
            .await?;
        if let Some(last) = rows.last() {
            expansion.audience_line = last.line;
        }
        rows.into_iter()
            .map(|row| {
                let to = match (&row.to, &row.error) {
                    (Some(to), None) => Ok(to.clone()),
                    (_, Some(error)) => Err(error.clone()),
                    (None, None) => Err("no number".to_string()),
                };
                (
                    inline_count + row.line,
                    AudienceRow {
                        line: row.line as u64,
                        raw: row.raw,
                        to,
                        params: row.params,
                    },
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    if rows.is_empty() {
        let distinct = store.count_valid_recipients(key).await?;
        expansion.duplicates = (expansion.valid - distinct as i64).max(0);
        expansion.done = true;
        store.save_expansion(key, &expansion).await?;
        tracing::info!(campaign = %key, valid = expansion.valid, invalid = expansion.invalid, duplicates = expansion.duplicates, "audience expanded");
        context.poke();
        return Ok(true);
    }
    let now = now_ms();
    let initial = if campaign.state == CampaignState::Cancelled {
        RecipientStatus::Cancelled
    } else {
        RecipientStatus::Pending
    };
    let mut documents = Vec::with_capacity(rows.len());
    let mut seen = HashSet::new();
    for (seq, row) in rows {
        let base = |id: String,
                    to: Option<String>,
                    status: RecipientStatus,
                    reason: Option<String>| RecipientDoc {
            id,
            campaign_key: key.to_string(),
            tenant_id: campaign.tenant_id.clone(),
            campaign_id: campaign.campaign_id.clone(),
            channel: campaign.channel,
            to,
            seq,
            line: row.line as i64,
            raw: Some(row.raw.clone()),
            params: row.params.clone(),
            status,
            reason,
            provider_message_id: None,
            replied: false,
            updated_at: now,
            queued_at: None,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
        };
        let invalid = |reason: String| {
            base(
                ids::invalid_row_id(&campaign.tenant_id, &campaign.campaign_id, row.line),
                None,
                RecipientStatus::SkippedInvalid,
                Some(format!("line {}: {reason}", row.line)),
            )
        };
        match &row.to {
            Err(reason) => {
                expansion.invalid += 1;
                documents.push(invalid(reason.clone()));
            }
            Ok(e164) => {
                if let Err(reason) = template::render(&campaign.template, &row.params) {
                    expansion.invalid += 1;
                    documents.push(invalid(reason));
                    continue;
                }
                expansion.valid += 1;
                let to = for_channel(e164, campaign.channel);
                let id = ids::command_id(
                    &campaign.tenant_id,
                    &campaign.campaign_id,
                    campaign.channel,
                    &to,
                );
                if seen.insert(id.clone()) {
                    documents.push(base(id, Some(to), initial, None));
                }
            }
        }
    }
    // Consent at expansion too, so the totals show opted-out customers from the start.
    let consent_keys: Vec<String> = documents
        .iter()
        .filter_map(|document| document.to.as_deref())
        .map(|to| consent_key(&campaign.tenant_id, campaign.channel, to))
        .collect();
    let opted_out = store
        .with_consent_status(&consent_keys, "opted_out")
        .await?;
    for document in &mut documents {
        if let Some(to) = document.to.as_deref() {
            if document.status == RecipientStatus::Pending
                && opted_out.contains(&consent_key(&campaign.tenant_id, campaign.channel, to))
            {
                document.status = RecipientStatus::SkippedOptedOut;
                document.reason = Some("the customer had opted out".to_string());
            }
        }
    }
    store.insert_recipients(&documents).await?;
    store.save_expansion(key, &expansion).await?;
    context.poke();
    Ok(false)
}
