//! Pacing: how many messages may go out now, per sending number and per campaign.
//!
//! Each pace is a token bucket in its GCRA form (a "theoretical arrival time" that advances by
//! one interval per message): a sending number (`tenant:channel:business endpoint`) has one,
//! limited to the number's own throughput; each campaign has one, limited to its configured
//! rate. [`Planner::plan`] hands out what both allow, one message at a time to each campaign in
//! turn (the turn order rotates), so campaigns sharing a number share it fairly and none can
//! starve another. The bucket lets a step that came a tick late catch up (a burst of two
//! ticks' worth), and each pace also caps what any one-second window holds at `ceil(rate)`, so
//! catching up never goes above the rate.

use std::collections::{BTreeMap, VecDeque};

/// One pace: a token bucket in GCRA form for an even spacing, plus a hard cap on what any
/// window of one second (or `1 / rate` seconds for rates below one) may hold. The bucket's
/// tolerance lets a pace catch up after the sender was held up (a slow store round trip), and
/// the cap makes sure catching up never exceeds the rate. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    /// Milliseconds between two messages at the configured rate.
    interval: f64,
    /// How far ahead of the steady pace a burst may run.
    tolerance: f64,
    /// The theoretical arrival time of the next message.
    next: f64,
    /// The cap's window, in milliseconds.
    window: f64,
    /// The most messages in one window.
    cap: usize,
    /// When the messages of the current window went out.
    recent: VecDeque<f64>,
}

impl Pace {
    /// A pace of `rate_per_second` allowing bursts of `burst` messages (at least 1).
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let rate = rate_per_second.max(1e-6);
        let interval = 1000.0 / rate;
        let window = 1000.0_f64.max(interval);
        Self {
            interval,
            tolerance: interval * f64::from(burst.max(1) - 1),
            next: f64::MIN,
            window,
            cap: ((rate * window / 1000.0).ceil() as usize).max(1),
            recent: VecDeque::new(),
        }
    }

    /// Change the rate and burst, keeping the position and the recent messages.
    pub fn reconfigure(&mut self, rate_per_second: f64, burst: u32) {
        let fresh = Self::new(rate_per_second, burst);
        self.interval = fresh.interval;
        self.tolerance = fresh.tolerance;
        self.window = fresh.window;
        self.cap = fresh.cap;
    }

    fn forget_before(&mut self, now: f64) {
        while self
            .recent
            .front()
            .is_some_and(|sent| *sent <= now - self.window)
        {
            self.recent.pop_front();
        }
    }

    /// Whether a message went out within the current window.
    pub fn is_busy(&mut self, now: f64) -> bool {
        self.forget_before(now);
        !self.recent.is_empty()
    }

    /// Whether one message may go now.
    pub fn allows(&mut self, now: f64) -> bool {
        self.forget_before(now);
        self.recent.len() < self.cap && self.next.max(now) - now <= self.tolerance + 1e-9
    }

    /// Count one message sent now.
    pub fn take(&mut self, now: f64) {
        self.next = self.next.max(now) + self.interval;
        self.recent.push_back(now);
    }

    /// Give back `count` messages taken but not sent.
    pub fn refund(&mut self, count: u32) {
        self.next -= self.interval * f64::from(count);
        for _ in 0..count {
            self.recent.pop_back();
        }
    }

    /// The earliest moment one more message is allowed.
    pub fn ready_at(&self, now: f64) -> f64 {
        let paced = (self.next - self.tolerance).max(now);
        let capped = if self.recent.len() >= self.cap {
            self.recent[self.recent.len() - self.cap] + self.window
        } else {
            now
        };
        paced.max(capped)
    }
}

/// The bucket's burst for a rate: two ticks' worth of `tick_ms` (at least one message), so a
/// step that came a tick late catches up, while sending stays smooth.
pub fn burst_for(rate_per_second: f64, tick_ms: u64) -> u32 {
    let per_tick = rate_per_second * (tick_ms as f64) / 1000.0;
    ((per_tick * 2.0).ceil() as u32).max(1)
}

/// A campaign that wants to send, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// The campaign key.
    pub campaign: String,
    /// Its configured rate.
    pub rate_per_second: f64,
    /// The most it could send now (what is pending and fetched; `u32::MAX` when unknown).
    pub backlog: u32,
}

/// The paces of one sending number and of the campaigns on it.
#[derive(Debug, Clone)]
pub struct Planner {
    number: Pace,
    number_rate: f64,
    campaigns: BTreeMap<String, Pace>,
    tick_ms: u64,
    /// The campaign served last (the next turn goes to the one after it).
    last_served: Option<String>,
}

impl Planner {
    /// A planner for a number allowing `number_rate` messages per second, ticking every
    /// `tick_ms`.
    pub fn new(number_rate: f64, tick_ms: u64) -> Self {
        Self {
            number: Pace::new(number_rate, burst_for(number_rate, tick_ms)),
            number_rate,
            campaigns: BTreeMap::new(),
            tick_ms,
            last_served: None,
        }
    }

    /// How many messages each campaign may send now. The grants are taken from the paces;
    /// give back what was not sent with [`Planner::refund`].
    pub fn plan(&mut self, now: f64, demands: &[Demand]) -> Vec<(String, u32)> {
        // A campaign that pauses its demand for a moment (nothing read yet) keeps its pace
        // while its last second is not over, or it could start a fresh second's worth at once.
        self.campaigns.retain(|campaign, pace| {
            demands.iter().any(|demand| &demand.campaign == campaign) || pace.is_busy(now)
        });
        for demand in demands {
            let burst = burst_for(demand.rate_per_second, self.tick_ms);
            self.campaigns
                .entry(demand.campaign.clone())
                .and_modify(|pace| pace.reconfigure(demand.rate_per_second, burst))
                .or_insert_with(|| Pace::new(demand.rate_per_second, burst));
        }
        let mut grants = vec![0u32; demands.len()];
        if demands.is_empty() {
            return Vec::new();
        }
        // Round robin across calls: serve campaigns in key order, starting after the one
        // served last, so a campaign whose turn comes while its own pace is empty loses only
        // that turn, and a slow campaign is never crowded out by fast ones.
        let mut order: Vec<usize> = (0..demands.len()).collect();
        order.sort_by(|left, right| demands[*left].campaign.cmp(&demands[*right].campaign));
        let mut position = match &self.last_served {
            Some(last) => order
                .iter()
                .position(|index| demands[*index].campaign > *last)
                .unwrap_or(0),
            None => 0,
        };
        let mut idle_turns = 0;
        while idle_turns < order.len() && self.number.allows(now) {
            let index = order[position];
            position = (position + 1) % order.len();
            let demand = &demands[index];
            let pace = self
                .campaigns
                .get_mut(&demand.campaign)
                .expect("inserted above");
            if grants[index] >= demand.backlog || !pace.allows(now) {
                idle_turns += 1;
                continue;
            }
            pace.take(now);
            self.number.take(now);
            grants[index] += 1;
            self.last_served = Some(demand.campaign.clone());
            idle_turns = 0;
        }
        demands
            .iter()
            .zip(grants)
            .filter(|(_, granted)| *granted > 0)
            .map(|(demand, granted)| (demand.campaign.clone(), granted))
            .collect()
    }

    /// Give back `count` messages granted to `campaign` that were not sent.
    pub fn refund(&mut self, campaign: &str, count: u32) {
        if count == 0 {
            return;
        }
        if let Some(pace) = self.campaigns.get_mut(campaign) {
            pace.refund(count);
        }
        self.number.refund(count);
    }

    /// When the next message could be granted to any of `demands` (at least `now`).
    pub fn ready_at(&self, now: f64, demands: &[Demand]) -> f64 {
        let campaign_ready = demands
            .iter()
            .filter_map(|demand| self.campaigns.get(&demand.campaign))
            .map(|pace| pace.ready_at(now))
            .fold(f64::MAX, f64::min);
        let campaign_ready = if campaign_ready == f64::MAX {
            now
        } else {
            campaign_ready
        };
        campaign_ready.max(self.number.ready_at(now))
    }

    /// The number's rate.
    pub fn number_rate(&self) -> f64 {
        self.number_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn demand(campaign: &str, rate: f64) -> Demand {
        Demand {
            campaign: campaign.to_string(),
            rate_per_second: rate,
            backlog: u32::MAX,
        }
    }

    /// Run the planner every `tick` ms for `duration` ms; the send times of each campaign.
    fn simulate(
        planner: &mut Planner,
        demands: &[Demand],
        tick: u64,
        duration: u64,
    ) -> BTreeMap<String, Vec<f64>> {
        let mut sends: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut now = 1_700_000_000_000.0;
        let end = now + duration as f64;
        while now < end {
            for (campaign, count) in planner.plan(now, demands) {
                sends
                    .entry(campaign)
                    .or_default()
                    .extend(std::iter::repeat_n(now, count as usize));
            }
            now += tick as f64;
        }
        sends
    }

    fn max_in_any_window(times: &[f64], window: f64) -> usize {
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut best = 0;
        let mut start = 0;
        for end in 0..sorted.len() {
            while sorted[end] - sorted[start] >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    #[test]
    fn one_campaign_holds_its_rate_without_bursting() {
        let mut planner = Planner::new(80.0, 50);
        let sends = simulate(&mut planner, &[demand("a", 20.0)], 50, 10_000);
        let times = &sends["a"];
        assert!((199..=201).contains(&times.len()), "{}", times.len());
        assert!(max_in_any_window(times, 1000.0) <= 20);
    }

    #[test]
    fn the_number_limit_caps_the_sum_and_is_shared_fairly() {
        let mut planner = Planner::new(30.0, 50);
        let demands = [demand("a", 100.0), demand("b", 100.0), demand("c", 5.0)];
        let sends = simulate(&mut planner, &demands, 50, 20_000);
        let total: Vec<f64> = sends.values().flatten().copied().collect();
        assert!(
            max_in_any_window(&total, 1000.0) <= 30,
            "{}",
            max_in_any_window(&total, 1000.0)
        );
        let (a, b, c) = (sends["a"].len(), sends["b"].len(), sends["c"].len());
        assert!(
            (95..=105).contains(&c),
            "the slow campaign gets its own rate: {c}"
        );
        assert!(
            a.abs_diff(b) <= 2,
            "the fast ones share the rest evenly: {a} vs {b}"
        );
        assert!(a + b + c >= 590, "the number is used fully: {}", a + b + c);
    }

    #[test]
    fn a_late_step_catches_up_without_exceeding_the_rate() {
        // Steps every 100 ms, every seventh one a tick late: the pace still averages 18/s, and
        // no second holds more than 18.
        let mut planner = Planner::new(80.0, 100);
        let demands = [demand("a", 18.0)];
        let mut times = Vec::new();
        let mut now = 0.0;
        let mut step = 0;
        while now < 20_000.0 {
            for (_, count) in planner.plan(now, &demands) {
                times.extend(std::iter::repeat_n(now, count as usize));
            }
            step += 1;
            now += if step % 7 == 0 { 200.0 } else { 100.0 };
        }
        assert!(times.len() >= 345, "{}", times.len());
        assert!(max_in_any_window(&times, 1000.0) <= 18);
    }

    #[test]
    fn a_campaign_that_drops_out_for_a_moment_keeps_its_last_second() {
        let mut planner = Planner::new(1000.0, 100);
        let mut sent = 0;
        for (_, count) in planner.plan(0.0, &[demand("a", 10.0)]) {
            sent += count;
        }
        assert!(planner.plan(100.0, &[]).is_empty());
        for (_, count) in planner.plan(200.0, &[demand("a", 10.0)]) {
            sent += count;
        }
        assert!(sent <= 10, "{sent} within one second");
    }

    #[test]
    fn backlog_limits_grants_and_refunds_give_back() {
        let mut planner = Planner::new(1000.0, 100);
        let now = 1_000.0;
        let grants = planner.plan(
            now,
            &[Demand {
                campaign: "a".into(),
                rate_per_second: 1000.0,
                backlog: 3,
            }],
        );
        assert_eq!(grants, vec![("a".to_string(), 3)]);
        planner.refund("a", 3);
        let grants = planner.plan(now, &[demand("a", 1000.0)]);
        assert_eq!(grants, vec![("a".to_string(), 200)], "two ticks' worth");
    }

    #[test]
    fn ready_at_says_when_to_wake_up() {
        let mut planner = Planner::new(10.0, 50);
        let demands = [demand("a", 2.0)];
        assert_eq!(planner.plan(0.0, &demands), vec![("a".to_string(), 1)]);
        assert!(planner.plan(1.0, &demands).is_empty());
        assert_eq!(planner.ready_at(1.0, &demands), 500.0);
        assert_eq!(planner.plan(500.0, &demands), vec![("a".to_string(), 1)]);
    }

    proptest! {
        #[test]
        fn no_window_ever_exceeds_the_rate(rate in 1.0f64..300.0, tick in 10u64..200, jitter in 0u64..40) {
            let mut planner = Planner::new(1000.0, tick);
            let mut times = Vec::new();
            let mut now = 0.0;
            let mut step = 0u64;
            while now < 5_000.0 {
                for (_, count) in planner.plan(now, &[demand("a", rate)]) {
                    times.extend(std::iter::repeat_n(now, count as usize));
                }
                step += 1;
                now += (tick + (step * 7919) % (jitter + 1)) as f64;
            }
            prop_assert!(max_in_any_window(&times, 1000.0) <= rate.ceil() as usize);
        }
    }
}
