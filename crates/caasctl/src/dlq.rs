//! `caasctl dlq list` and `caasctl dlq replay`: inspect a dead-letter topic, and move its
//! records back to the topic they came from once the cause is fixed.
//!
//! Replay is exactly once, by two independent guards:
//!
//! 1. **Transactions.** The records produced to the original topics and the replay consumer
//!    group's offsets on the DLQ are committed in one Kafka transaction
//!    (`send_offsets_to_transaction`), so a crash or a fenced run either moved a batch and
//!    recorded it, or did neither. A second run with the same group starts after the last
//!    committed batch. The transactional id is derived from the group and the DLQ topic, so two
//!    concurrent runs fence each other instead of both replaying.
//! 2. **A replay mark on every replayed record.** Each replayed record carries the header
//!    `caas.replayed.from` = `<original topic>/<partition>/<offset>`. Before producing, replay
//!    reads the original partitions from the time the oldest pending DLQ record was written and
//!    skips any original record already replayed, so a run with a different (or reset) group,
//!    or one original record dead-lettered by several consumer groups, is still replayed once.
//!
//! Each record goes back to its original partition (from `caas.original.partition`), with its
//! key, payload and original headers, minus the failure headers `caas-kafka` added. Consumers of
//! the original topic see it as a new record; their handlers are idempotent by event id.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caas_kafka::dlq::headers;
use caas_kafka::Record;
use clap::{Args, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// The header a replayed record carries: `<original topic>/<partition>/<offset>`.
pub const REPLAYED_FROM: &str = "caas.replayed.from";

/// The replay consumer group when `--group` is not given.
pub const DEFAULT_REPLAY_GROUP: &str = caas_kafka::dlq::REPLAY_GROUP;

/// Records per transaction.
const BATCH_RECORDS: usize = 500;

/// `caasctl dlq ...`
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Print the records of a dead-letter topic with why they failed.
    List(ListArgs),
    /// Move the records of a dead-letter topic back to their original topic, exactly once.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The dead-letter topic, e.g. inbound.messages.v1.dlq.
    #[arg(long)]
    topic: String,
    /// The replay group whose progress marks records as replayed or pending.
    #[arg(long, default_value = DEFAULT_REPLAY_GROUP)]
    group: String,
    /// Print at most this many records (the oldest first).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Kafka bootstrap servers.
    #[arg(long, env = "CAAS_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The dead-letter topic, e.g. inbound.messages.v1.dlq.
    #[arg(long)]
    topic: String,
    /// The replay consumer group: its committed offsets on the DLQ are the replay's progress.
    #[arg(long, default_value = DEFAULT_REPLAY_GROUP)]
    group: String,
    /// Only replay records this consumer group gave up on (the caas.consumer.group header);
    /// the others are left for another run (with another --group).
    #[arg(long)]
    failed_group: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "CAAS_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// How long the whole run may take, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

/// What one replay should do.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The dead-letter topic to drain.
    pub dlq_topic: String,
    /// The replay consumer group (progress on the DLQ).
    pub group: String,
    /// Only records dead-lettered by this consumer group.
    pub failed_group: Option<String>,
    /// Give up (nothing half-done: the open transaction aborts) after this long.
    pub timeout: Duration,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records produced back to their original topic.
    pub replayed: usize,
    /// Records whose original record was already replayed (by an earlier run, or earlier in
    /// this one because several consumer groups dead-lettered it).
    pub already_replayed: usize,
    /// Records another consumer group dead-lettered (`--failed-group`).
    pub other_group: usize,
    /// Records without the headers replay needs (not written by caas-kafka); skipped.
    pub unreplayable: usize,
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "replayed {}, already replayed {}, left for another group {}, unreplayable {}",
            self.replayed, self.already_replayed, self.other_group, self.unreplayable
        )
    }
}

/// Where a dead-lettered record came from, read from its headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// `caas.original.topic`.
    pub topic: String,
    /// `caas.original.partition`.
    pub partition: i32,
    /// `caas.original.offset`.
    pub offset: i64,
}

impl Origin {
    /// The origin of a DLQ record, or `None` when its headers are missing or malformed.
    pub fn of(record: &Record) -> Option<Self> {
        Some(Self {
            topic: header_text(record, headers::ORIGINAL_TOPIC)?.to_string(),
            partition: header_text(record, headers::ORIGINAL_PARTITION)?
                .parse()
                .ok()?,
            offset: header_text(record, headers::ORIGINAL_OFFSET)?
                .parse()
                .ok()?,
        })
    }

    /// The value of the `caas.replayed.from` header.
    pub fn mark(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// The last value of header `name`, when it is UTF-8.
fn header_text<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

/// The headers a replayed record carries: the original ones without the failure headers or an
/// older replay mark, then the replay mark.
pub fn replay_headers(record: &Record, origin: &Origin) -> Vec<(String, Vec<u8>)> {
    let mut kept: Vec<(String, Vec<u8>)> = record
        .headers
        .iter()
        .filter(|(name, _)| !headers::ALL.contains(&name.as_str()) && name != REPLAYED_FROM)
        .cloned()
        .collect();
    kept.push((REPLAYED_FROM.to_string(), origin.mark().into_bytes()));
    kept
}

/// What to do with one DLQ record (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Produce it back to its origin.
    Replay(Origin),
    /// Its origin was replayed already.
    AlreadyReplayed,
    /// Another consumer group dead-lettered it.
    OtherGroup,
    /// It lacks the origin headers.
    Unreplayable,
}

/// Decide about one DLQ record given the origins replayed so far.
pub fn verdict(record: &Record, failed_group: Option<&str>, replayed: &HashSet<String>) -> Verdict {
    if let Some(wanted) = failed_group {
        if header_text(record, headers::CONSUMER_GROUP) != Some(wanted) {
            return Verdict::OtherGroup;
        }
    }
    let Some(origin) = Origin::of(record) else {
        return Verdict::Unreplayable;
    };
    if replayed.contains(&origin.mark()) {
        return Verdict::AlreadyReplayed;
    }
    Verdict::Replay(origin)
}

fn consumer(bootstrap: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    crate::kafka::client_config(bootstrap)?
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        // Aborted replays must not count as replayed.
        .set("isolation.level", "read_committed")
        .create()
        .context("create the Kafka consumer")
}

fn partitions(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("read the metadata of {topic}"))?;
    let Some(found) = metadata.topics().iter().find(|entry| entry.name() == topic) else {
        bail!("topic {topic} does not exist");
    };
    if let Some(error) = found.error() {
        bail!("topic {topic}: {error:?}");
    }
    if found.partitions().is_empty() {
        bail!("topic {topic} does not exist (no partitions)");
    }
    Ok(found.partitions().iter().map(|entry| entry.id()).collect())
}

/// Read `topic`'s `starts` partitions from the given offsets up to where they end now
/// (read-committed), calling `each` per record.
fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    starts: &BTreeMap<i32, Offset>,
    deadline: Instant,
    mut each: impl FnMut(Record),
) -> anyhow::Result<()> {
    if starts.is_empty() {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for (&partition, &offset) in starts {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, remaining(deadline)?)
            .with_context(|| format!("read the end of {topic}/{partition}"))?;
        ends.insert(partition, high);
        assignment.add_partition_offset(topic, partition, offset)?;
    }
    consumer.assign(&assignment)?;
    let mut open: BTreeSet<i32> = starts.keys().copied().collect();
    while !open.is_empty() {
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            remaining(deadline)?;
            continue;
        };
        match polled {
            Ok(message) => {
                let record = Record::from_message(&message);
                if ends
                    .get(&record.partition)
                    .is_some_and(|&end| record.offset + 1 >= end)
                {
                    open.remove(&record.partition);
                }
                each(record);
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                open.remove(&partition);
            }
            Err(error) => bail!("read {topic}: {error}"),
        }
        remaining(deadline)?;
    }
    consumer.unassign()?;
    Ok(())
}

fn remaining(deadline: Instant) -> anyhow::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("timed out (raise --timeout-secs); nothing of the unfinished batch was committed");
    }
    Ok(left)
}

/// Where `group` stands on each partition of `topic` (the beginning when it never committed).
fn committed_starts(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    deadline: Instant,
) -> anyhow::Result<BTreeMap<i32, Offset>> {
    let mut wanted = TopicPartitionList::new();
    for &partition in partitions {
        wanted.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, remaining(deadline)?)
        .with_context(|| format!("read the replay group's offsets on {topic}"))?;
    Ok(committed
        .elements()
        .iter()
        .map(|element| {
            let start = match element.offset() {
                Offset::Offset(offset) => Offset::Offset(offset),
                _ => Offset::Beginning,
            };
            (element.partition(), start)
        })
        .collect())
}

/// The replay marks already on the original partitions `wanted` (topic → partitions), reading
/// each from the first record at or after `since_ms` (replays only happen after the record was
/// dead-lettered).
fn replayed_marks(
    bootstrap: &str,
    wanted: &BTreeMap<String, BTreeSet<i32>>,
    since_ms: i64,
    deadline: Instant,
) -> anyhow::Result<HashSet<String>> {
    let mut marks = HashSet::new();
    let scanner = consumer(bootstrap, "caasctl-dlq-scan")?;
    for (topic, partitions) in wanted {
        let mut times = TopicPartitionList::new();
        for &partition in partitions {
            times.add_partition_offset(topic, partition, Offset::Offset(since_ms))?;
        }
        let found = scanner
            .offsets_for_times(times, remaining(deadline)?)
            .with_context(|| format!("find where to look for earlier replays in {topic}"))?;
        let starts: BTreeMap<i32, Offset> = found
            .elements()
            .iter()
            .filter_map(|element| match element.offset() {
                // No record at or after that time: nothing replayed there yet.
                Offset::End => None,
                Offset::Offset(offset) => Some((element.partition(), Offset::Offset(offset))),
                _ => Some((element.partition(), Offset::Beginning)),
            })
            .collect();
        read_to_end(&scanner, topic, &starts, deadline, |record| {
            if let Some(mark) = header_text(&record, REPLAYED_FROM) {
                marks.insert(mark.to_string());
            }
        })?;
    }
    Ok(marks)
}

/// Replay `options.dlq_topic` up to its current end.
pub fn replay(options: &ReplayOptions) -> anyhow::Result<ReplayReport> {
    let deadline = Instant::now() + options.timeout;
    let reader = consumer(&options.bootstrap, &options.group)?;
    let dlq_partitions = partitions(&reader, &options.dlq_topic, remaining(deadline)?)?;
    let starts = committed_starts(&reader, &options.dlq_topic, &dlq_partitions, deadline)?;
    let mut pending = Vec::new();
    read_to_end(&reader, &options.dlq_topic, &starts, deadline, |record| {
        pending.push(record)
    })?;
    let mut report = ReplayReport::default();
    if pending.is_empty() {
        return Ok(report);
    }

    let mut origins: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for origin in pending.iter().filter_map(Origin::of) {
        origins
            .entry(origin.topic)
            .or_default()
            .insert(origin.partition);
    }
    let since_ms = pending
        .iter()
        .filter_map(|record| record.timestamp_ms)
        .min()
        .unwrap_or(0);
    let mut replayed = replayed_marks(&options.bootstrap, &origins, since_ms, deadline)?;

    let transactional_id = format!("caasctl-dlq-replay.{}.{}", options.group, options.dlq_topic);
    let producer: ThreadedProducer<DefaultProducerContext> =
        crate::kafka::client_config(&options.bootstrap)?
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("transactional.id", &transactional_id)
            .create()
            .context("create the transactional producer")?;
    producer
        .init_transactions(remaining(deadline)?)
        .context("initialise the replay transaction (another replay with this group running?)")?;
    let group_metadata = reader
        .group_metadata()
        .context("the replay consumer has no group metadata")?;

    for batch in pending.chunks(BATCH_RECORDS) {
        producer.begin_transaction()?;
        let outcome = (|| -> anyhow::Result<()> {
            let mut positions = TopicPartitionList::new();
            for record in batch {
                positions.add_partition_offset(
                    &record.topic,
                    record.partition,
                    Offset::Offset(record.offset + 1),
                )?;
                match verdict(record, options.failed_group.as_deref(), &replayed) {
                    Verdict::Replay(origin) => {
                        send(&producer, record, &origin, deadline)?;
                        replayed.insert(origin.mark());
                        report.replayed += 1;
                    }
                    Verdict::AlreadyReplayed => report.already_replayed += 1,
                    Verdict::OtherGroup => report.other_group += 1,
                    Verdict::Unreplayable => report.unreplayable += 1,
                }
            }
            producer.send_offsets_to_transaction(
                &positions,
                &group_metadata,
                remaining(deadline)?,
            )?;
            producer.commit_transaction(remaining(deadline)?)?;
            Ok(())
        })();
        if let Err(error) = outcome {
            let _ = producer.abort_transaction(Duration::from_secs(10));
            return Err(error.context(format!(
                "replay stopped; batches before this one are committed ({report})"
            )));
        }
    }
    Ok(report)
}

fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    record: &Record,
    origin: &Origin,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut owned_headers = OwnedHeaders::new();
    for (name, value) in replay_headers(record, origin) {
        owned_headers = owned_headers.insert(Header {
            key: &name,
            value: Some(&value),
        });
    }
    let mut outbound: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&origin.topic)
        .partition(origin.partition)
        .headers(owned_headers);
    if let Some(key) = &record.key {
        outbound = outbound.key(key.as_bytes());
    }
    if let Some(payload) = &record.payload {
        outbound = outbound.payload(payload);
    }
    loop {
        match producer.send(outbound) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                back,
            )) => {
                outbound = back;
                remaining(deadline)?;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((error, _)) => bail!("produce to {}: {error}", origin.topic),
        }
    }
}

/// One DLQ record as `dlq list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The DLQ record.
    pub record: Record,
    /// Whether the replay group's committed offset is past it.
    pub replayed: bool,
}

/// The records of `dlq_topic` (at most `limit`), oldest first per partition.
pub fn list(
    bootstrap: &str,
    dlq_topic: &str,
    group: &str,
    limit: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Listed>> {
    let deadline = Instant::now() + timeout;
    let reader = consumer(bootstrap, group)?;
    let dlq_partitions = partitions(&reader, dlq_topic, remaining(deadline)?)?;
    let committed = committed_starts(&reader, dlq_topic, &dlq_partitions, deadline)?;
    let starts = dlq_partitions
        .iter()
        .map(|&partition| (partition, Offset::Beginning))
        .collect();
    let mut listed = Vec::new();
    read_to_end(&reader, dlq_topic, &starts, deadline, |record| {
        if listed.len() < limit {
            let replayed = matches!(
                committed.get(&record.partition),
                Some(Offset::Offset(next)) if record.offset < *next
            );
            listed.push(Listed { record, replayed });
        }
    })?;
    Ok(listed)
}

/// Run `caasctl dlq ...`.
pub async fn run(arguments: DlqArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(arguments)).await?
}

fn run_blocking(arguments: DlqArgs) -> anyhow::Result<()> {
    match arguments.command {
        DlqCommand::List(list_arguments) => {
            let listed = list(
                &list_arguments.bootstrap,
                &list_arguments.topic,
                &list_arguments.group,
                list_arguments.limit,
                Duration::from_secs(60),
            )?;
            for entry in &listed {
                let record = &entry.record;
                let origin = Origin::of(record)
                    .map(|origin| origin.mark())
                    .unwrap_or_else(|| "?".to_string());
                let text = |name| header_text(record, name).unwrap_or("?");
                println!(
                    "{}/{}\t{}\torigin={}\tgroup={}\tattempts={}\tfailed_at={}\tkey={}\terror={}",
                    record.partition,
                    record.offset,
                    if entry.replayed {
                        "replayed"
                    } else {
                        "pending"
                    },
                    origin,
                    text(headers::CONSUMER_GROUP),
                    text(headers::ATTEMPTS),
                    text(headers::FAILED_AT),
                    record.key.as_deref().unwrap_or(""),
                    text(headers::ERROR),
                );
            }
            let pending = listed.iter().filter(|entry| !entry.replayed).count();
            println!(
                "{} record(s) listed, {pending} pending for replay group {}",
                listed.len(),
                list_arguments.group
            );
            Ok(())
        }
        DlqCommand::Replay(replay_arguments) => {
            if !replay_arguments.topic.ends_with(caas_kafka::DLQ_SUFFIX) {
                bail!(
                    "--topic {} is not a dead-letter topic (expected a name ending in {})",
                    replay_arguments.topic,
                    caas_kafka::DLQ_SUFFIX
                );
            }
            let report = replay(&ReplayOptions {
                bootstrap: replay_arguments.bootstrap,
                dlq_topic: replay_arguments.topic.clone(),
                group: replay_arguments.group,
                failed_group: replay_arguments.failed_group,
                timeout: Duration::from_secs(replay_arguments.timeout_secs),
            })?;
            println!("{}: {report}", replay_arguments.topic);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_lettered(group: &str, offset: i64) -> Record {
        let original = Record {
            topic: "inbound.messages.v1".to_string(),
            partition: 3,
            offset,
            key: Some("acme:whatsapp:1".to_string()),
            payload: Some(vec![0, 1, 2]),
            headers: vec![("traceparent".to_string(), b"00-abc".to_vec())],
            timestamp_ms: Some(1),
        };
        let outbound = caas_kafka::dlq::dead_letter(
            &original,
            &caas_kafka::dlq::Failure {
                reason: "bad",
                attempts: 3,
                group_id: group,
                failed_at: std::time::SystemTime::UNIX_EPOCH,
            },
        );
        Record {
            topic: outbound.topic,
            partition: 0,
            offset: 9,
            key: outbound.key,
            payload: outbound.payload,
            headers: outbound.headers,
            timestamp_ms: Some(2),
        }
    }

    #[test]
    fn a_dead_lettered_record_goes_back_to_its_origin_with_its_own_headers_and_a_mark() {
        let record = dead_lettered("caas-logger", 42);
        let Verdict::Replay(origin) = verdict(&record, None, &HashSet::new()) else {
            panic!("should replay");
        };
        assert_eq!(origin.mark(), "inbound.messages.v1/3/42");
        let replayed_headers = replay_headers(&record, &origin);
        assert_eq!(
            replayed_headers,
            vec![
                ("traceparent".to_string(), b"00-abc".to_vec()),
                (
                    REPLAYED_FROM.to_string(),
                    b"inbound.messages.v1/3/42".to_vec()
                )
            ]
        );
    }

    #[test]
    fn an_origin_already_replayed_is_not_replayed_again() {
        let record = dead_lettered("caas-logger", 42);
        let marks = HashSet::from(["inbound.messages.v1/3/42".to_string()]);
        assert_eq!(verdict(&record, None, &marks), Verdict::AlreadyReplayed);
    }

    #[test]
    fn the_failed_group_filter_leaves_other_groups_records() {
        let record = dead_lettered("caas-presence", 42);
        assert_eq!(
            verdict(&record, Some("caas-logger"), &HashSet::new()),
            Verdict::OtherGroup
        );
        assert!(matches!(
            verdict(&record, Some("caas-presence"), &HashSet::new()),
            Verdict::Replay(_)
        ));
    }

    #[test]
    fn a_record_without_origin_headers_is_unreplayable() {
        let mut record = dead_lettered("caas-logger", 1);
        record
            .headers
            .retain(|(name, _)| name != headers::ORIGINAL_OFFSET);
        assert_eq!(
            verdict(&record, None, &HashSet::new()),
            Verdict::Unreplayable
        );
    }
}
