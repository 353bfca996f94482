//! When a campaign may send: not before its start, not after its end, and only inside its
//! allowed hours, read in the campaign's IANA timezone (daylight saving included). Pure: the
//! caller passes `now`.

use caas_events::model::{SendingWindow, Weekday};
use chrono::{Datelike, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// What the schedule says at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sending is allowed now.
    Open,
    /// Not yet: sending opens at `until` (epoch ms).
    Closed {
        /// The next moment sending is allowed.
        until: i64,
    },
    /// The end time has passed; what is left is not sent.
    Ended,
}

/// A campaign's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Not before this moment (epoch ms).
    pub start_at: Option<i64>,
    /// Not at or after this moment (epoch ms).
    pub end_at: Option<i64>,
    /// Allowed hours; `None` for any time.
    pub window: Option<SendingWindow>,
    /// The timezone the hours are read in.
    pub timezone: Tz,
}

/// A timezone name that is not in the tz database.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("unknown timezone {name:?}: use an IANA name such as Europe/Berlin or UTC")
    })
}

/// Check a window's bounds; the message says what is wrong.
pub fn validate_window(window: &SendingWindow) -> Result<(), String> {
    if !(0..1440).contains(&window.start_minute) {
        return Err(format!(
            "sending window start {} is not a minute of the day (0..1439)",
            window.start_minute
        ));
    }
    if !(1..=1440).contains(&window.end_minute) || window.end_minute <= window.start_minute {
        return Err(format!(
            "sending window end {} must be after its start {} and at most 1440 (windows do not wrap past midnight)",
            window.end_minute, window.start_minute
        ));
    }
    Ok(())
}

fn weekday_of(day: chrono::Weekday) -> Weekday {
    match day {
        chrono::Weekday::Mon => Weekday::Monday,
        chrono::Weekday::Tue => Weekday::Tuesday,
        chrono::Weekday::Wed => Weekday::Wednesday,
        chrono::Weekday::Thu => Weekday::Thursday,
        chrono::Weekday::Fri => Weekday::Friday,
        chrono::Weekday::Sat => Weekday::Saturday,
        chrono::Weekday::Sun => Weekday::Sunday,
    }
}

fn day_allowed(window: &SendingWindow, day: chrono::Weekday) -> bool {
    window.days.is_empty() || window.days.contains(&weekday_of(day))
}

/// The epoch ms of `minute` after local midnight of `date`; in a daylight-saving gap, the
/// first moment after it.
fn local_moment(timezone: Tz, date: NaiveDate, minute: i32) -> Option<i64> {
    let naive = date.and_hms_opt(0, 0, 0)? + Duration::minutes(i64::from(minute));
    let mut candidate = naive;
    for _ in 0..4 {
        match timezone.from_local_datetime(&candidate) {
            LocalResult::Single(moment) => return Some(moment.timestamp_millis()),
            LocalResult::Ambiguous(earliest, _) => return Some(earliest.timestamp_millis()),
            LocalResult::None => candidate += Duration::minutes(30),
        }
    }
    None
}

impl Schedule {
    /// The verdict at `now_ms`.
    pub fn verdict(&self, now_ms: i64) -> Verdict {
        if self.end_at.is_some_and(|end| now_ms >= end) {
            return Verdict::Ended;
        }
        let earliest = self.start_at.map_or(now_ms, |start| start.max(now_ms));
        let Some(window) = &self.window else {
            return if earliest > now_ms {
                self.closed_until(earliest)
            } else {
                Verdict::Open
            };
        };
        match self.next_open(window, earliest) {
            Some(open) if open <= now_ms => Verdict::Open,
            Some(open) => self.closed_until(open),
            None => Verdict::Ended,
        }
    }

    fn closed_until(&self, until: i64) -> Verdict {
        if self.end_at.is_some_and(|end| until >= end) {
            Verdict::Ended
        } else {
            Verdict::Closed { until }
        }
    }

    /// The first moment at or after `from_ms` inside the window (within the next eight days).
    fn next_open(&self, window: &SendingWindow, from_ms: i64) -> Option<i64> {
        let from = Utc.timestamp_millis_opt(from_ms).single()?;
        let local = from.with_timezone(&self.timezone);
        let minute = i32::try_from(local.hour() * 60 + local.minute()).ok()?;
        if day_allowed(window, local.weekday())
            && minute >= window.start_minute
            && minute < window.end_minute
        {
            return Some(from_ms);
        }
        let today = local.date_naive();
        (0..=8)
            .filter_map(|offset| today.checked_add_signed(Duration::days(offset)))
            .filter(|date| day_allowed(window, date.weekday()))
            .filter_map(|date| local_moment(self.timezone, date, window.start_minute))
            .find(|opening| *opening > from_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn berlin_office_hours(days: Vec<Weekday>) -> Schedule {
        Schedule {
            start_at: None,
            end_at: None,
            window: Some(SendingWindow {
                start_minute: 9 * 60,
                end_minute: 20 * 60,
                days,
            }),
            timezone: parse_timezone("Europe/Berlin").unwrap(),
        }
    }

    #[test]
    fn inside_and_outside_the_hours_in_the_campaigns_timezone() {
        let schedule = berlin_office_hours(vec![]);
        // 08:30 UTC in winter is 09:30 in Berlin.
        assert_eq!(schedule.verdict(at("2026-01-15T08:30:00Z")), Verdict::Open);
        // 07:59 UTC is 08:59 in Berlin: opens at 09:00 local = 08:00 UTC.
        assert_eq!(
            schedule.verdict(at("2026-01-15T07:59:00Z")),
            Verdict::Closed {
                until: at("2026-01-15T08:00:00Z")
            }
        );
        // 19:00 UTC is 20:00 in Berlin: closed until tomorrow 09:00.
        assert_eq!(
            schedule.verdict(at("2026-01-15T19:00:00Z")),
            Verdict::Closed {
                until: at("2026-01-16T08:00:00Z")
            }
        );
        // Summer time: 09:00 in Berlin is 07:00 UTC.
        assert_eq!(
            schedule.verdict(at("2026-07-15T06:00:00Z")),
            Verdict::Closed {
                until: at("2026-07-15T07:00:00Z")
            }
        );
    }

    #[test]
    fn weekdays_only_skips_the_weekend() {
        let schedule = berlin_office_hours(vec![
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]);
        // Saturday 2026-01-17, noon in Berlin: next opening Monday 09:00.
        assert_eq!(
            schedule.verdict(at("2026-01-17T11:00:00Z")),
            Verdict::Closed {
                until: at("2026-01-19T08:00:00Z")
            }
        );
    }

    #[test]
    fn start_and_end_times_bound_the_window() {
        let mut schedule = berlin_office_hours(vec![]);
        schedule.start_at = Some(at("2026-01-15T12:00:00Z"));
        schedule.end_at = Some(at("2026-01-15T18:00:00Z"));
        assert_eq!(
            schedule.verdict(at("2026-01-15T09:00:00Z")),
            Verdict::Closed {
                until: at("2026-01-15T12:00:00Z")
            }
        );
        assert_eq!(schedule.verdict(at("2026-01-15T12:00:00Z")), Verdict::Open);
        assert_eq!(schedule.verdict(at("2026-01-15T18:00:00Z")), Verdict::Ended);
        // Ending before the window would open again ends it now.
        schedule.end_at = Some(at("2026-01-15T20:00:00Z"));
        assert_eq!(schedule.verdict(at("2026-01-15T19:30:00Z")), Verdict::Ended);
    }

    #[test]
    fn no_window_means_any_time_after_the_start() {
        let schedule = Schedule {
            start_at: Some(1_000),
            end_at: None,
            window: None,
            timezone: Tz::UTC,
        };
        assert_eq!(schedule.verdict(999), Verdict::Closed { until: 1_000 });
        assert_eq!(schedule.verdict(1_000), Verdict::Open);
    }

    #[test]
    fn a_window_opening_in_a_daylight_saving_gap_opens_after_it() {
        // 2026-03-29 02:00-03:00 does not exist in Berlin.
        let schedule = Schedule {
            start_at: None,
            end_at: None,
            window: Some(SendingWindow {
                start_minute: 2 * 60 + 30,
                end_minute: 5 * 60,
                days: vec![],
            }),
            timezone: parse_timezone("Europe/Berlin").unwrap(),
        };
        assert_eq!(
            schedule.verdict(at("2026-03-28T23:00:00Z")),
            Verdict::Closed {
                until: at("2026-03-29T01:00:00Z")
            }
        );
    }

    #[test]
    fn bad_windows_and_timezones_are_refused() {
        assert!(parse_timezone("Mars/Olympus").unwrap_err().contains("IANA"));
        assert!(validate_window(&SendingWindow {
            start_minute: 600,
            end_minute: 600,
            days: vec![]
        })
        .is_err());
        assert!(validate_window(&SendingWindow {
            start_minute: 0,
            end_minute: 1440,
            days: vec![]
        })
        .is_ok());
    }
}
