//! The token bucket that paces one sending number: `rate` tokens per second, at most `burst`
//! saved up; a send takes one token. The Redis script in `crate::limiter` runs exactly this
//! arithmetic, on Redis's clock, so all sender instances share one bucket per number.

/// A bucket's saved state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens available at `at_ms` (fractional).
    pub tokens: f64,
    /// When `tokens` was computed, epoch ms.
    pub at_ms: i64,
}

/// The limits of a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Tokens added per second.
    pub rate_per_second: f64,
    /// Capacity.
    pub burst: f64,
}

/// Take one token at `now_ms`: `Ok(new state)` if one was available, else `Err((new state,
/// milliseconds until one will be))`. A missing bucket starts full.
pub fn take(limits: Limits, bucket: Option<Bucket>, now_ms: i64) -> Result<Bucket, (Bucket, u64)> {
    let bucket = bucket.unwrap_or(Bucket {
        tokens: limits.burst,
        at_ms: now_ms,
    });
    let elapsed_ms = (now_ms - bucket.at_ms).max(0) as f64;
    let tokens = (bucket.tokens + elapsed_ms * limits.rate_per_second / 1000.0).min(limits.burst);
    if tokens >= 1.0 {
        Ok(Bucket {
            tokens: tokens - 1.0,
            at_ms: now_ms,
        })
    } else {
        let wait_ms = ((1.0 - tokens) * 1000.0 / limits.rate_per_second).ceil() as u64;
        Err((
            Bucket {
                tokens,
                at_ms: now_ms,
            },
            wait_ms.max(1),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        rate_per_second: 10.0,
        burst: 2.0,
    };

    #[test]
    fn a_full_bucket_allows_its_burst_then_paces_at_the_rate() {
        let first = take(LIMITS, None, 0).unwrap();
        let second = take(LIMITS, Some(first), 0).unwrap();
        let (third, wait) = take(LIMITS, Some(second), 0).unwrap_err();
        assert_eq!(wait, 100);
        assert!(take(LIMITS, Some(third), 99).is_err());
        assert!(take(LIMITS, Some(third), 100).is_ok());
    }

    #[test]
    fn sends_never_exceed_burst_plus_rate_times_time() {
        // Greedy senders taking tokens as soon as allowed, in 1 ms steps over 10 s.
        let mut bucket = None;
        let mut sent_at = Vec::new();
        for now in 0..10_000 {
            match take(LIMITS, bucket, now) {
                Ok(state) => {
                    bucket = Some(state);
                    sent_at.push(now);
                }
                Err((state, _)) => bucket = Some(state),
            }
        }
        for (index, start) in sent_at.iter().enumerate() {
            let in_second = sent_at[index..]
                .iter()
                .take_while(|at| **at < start + 1000)
                .count();
            assert!(
                in_second as f64 <= LIMITS.burst + LIMITS.rate_per_second,
                "{in_second} sends in one second from {start}"
            );
        }
        assert!(sent_at.len() >= 100);
    }
}
