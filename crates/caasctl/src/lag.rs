//! `caasctl lag`: consumer lag per group and partition, who owns each partition, and how many
//! instances a group can put to work.
//!
//! What Kafka says is read without joining any group: `DescribeGroups` (members and their
//! assignments, classic protocol), `OffsetFetch` for each group's committed offsets, and the
//! partition leaders' watermarks. The lag of a partition is its high watermark minus the
//! group's committed offset (`kafka-consumer-groups --describe`'s number). The arithmetic and the
//! decoding of the assignment bytes are pure functions, tested here without a broker.
//!
//! A group can use at most as many instances as the largest of its topics has partitions: one
//! partition has one owner, so with 12 partitions a 13th logger would idle on that topic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

/// `caasctl lag [--group G]... [--json]`
#[derive(Debug, Args)]
pub struct LagArgs {
    /// Only these consumer groups (repeatable); default: every group but Kafka-internal ones.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "CAAS_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Timeout of each request to Kafka, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Print JSON (one object with every group) instead of tables.
    #[arg(long)]
    json: bool,
    /// Tables only: also list partitions without lag.
    #[arg(long)]
    all: bool,
}

/// One partition as a group sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset; `None` when it never committed on this partition.
    pub committed: Option<i64>,
    pub low_watermark: i64,
    pub high_watermark: i64,
    /// Records not yet processed: high watermark minus the committed offset (minus the low
    /// watermark when nothing was committed and the records still exist).
    pub lag: i64,
    /// The member id of the instance that owns the partition now, if any.
    pub owner: Option<String>,
}

/// One member of a group and what it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub partitions: usize,
}

/// One consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupLag {
    pub group: String,
    pub state: String,
    /// The assignment strategy the members agreed on (cooperative-sticky for CAAS services).
    pub protocol: String,
    pub members: Vec<Member>,
    /// The most instances that all get work: the partition count of the group's largest topic.
    pub usable_instances: usize,
    pub total_lag: i64,
    pub partitions: Vec<PartitionLag>,
}

/// Run `caasctl lag`.
pub async fn run(arguments: LagArgs) -> anyhow::Result<()> {
    let bootstrap = arguments.bootstrap.clone();
    let only = arguments.groups.clone();
    let timeout = Duration::from_millis(arguments.timeout_ms);
    let groups =
        tokio::task::spawn_blocking(move || describe(&bootstrap, &only, timeout)).await??;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&groups)?);
    } else {
        print!("{}", render(&groups, arguments.all));
    }
    Ok(())
}

/// The lag of one partition (never negative; records deleted by retention are not lag).
pub fn partition_lag(committed: Option<i64>, low: i64, high: i64) -> i64 {
    (high - committed.unwrap_or(low).max(low)).max(0)
}

/// Decode a classic consumer-protocol assignment (`ConsumerProtocolAssignment`, versions 0-3:
/// int16 version, then `[topic: string, partitions: [int32]]`, then user data).
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
    let mut reader = Reader { bytes, position: 0 };
    let _version = reader.i16()?;
    let topic_count = reader.i32()?;
    let mut assigned = Vec::new();
    for _ in 0..topic_count.max(0) {
        let name_length = usize::try_from(reader.i16()?).ok()?;
        let topic = String::from_utf8(reader.take(name_length)?.to_vec()).ok()?;
        let partition_count = reader.i32()?;
        for _ in 0..partition_count.max(0) {
            assigned.push((topic.clone(), reader.i32()?));
        }
    }
    Some(assigned)
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, length: usize) -> Option<&[u8]> {
        let end = self.position.checked_add(length)?;
        let slice = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(slice)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The most instances that all get a partition of the group's largest topic.
pub fn usable_instances(partition_counts: &BTreeMap<String, usize>) -> usize {
    partition_counts.values().copied().max().unwrap_or(0)
}

/// Blocking: ask Kafka about the groups.
fn describe(bootstrap: &str, only: &[String], timeout: Duration) -> anyhow::Result<Vec<GroupLag>> {
    let admin: BaseConsumer = caasctl::kafka::client_config(bootstrap)?
        .set("client.id", "caasctl-lag")
        .create()
        .map_err(|error| {
            anyhow::anyhow!("cannot create a Kafka client for {bootstrap}: {error}")
        })?;
    let metadata = admin.fetch_metadata(None, timeout).map_err(|error| {
        anyhow::anyhow!("kafka at {bootstrap} did not answer a metadata request: {error}")
    })?;
    let mut partition_counts: BTreeMap<String, usize> = BTreeMap::new();
    for topic in metadata.topics() {
        if !topic.name().starts_with("__") {
            partition_counts.insert(topic.name().to_string(), topic.partitions().len());
        }
    }
    let listed = admin
        .fetch_group_list(None, timeout)
        .map_err(|error| anyhow::anyhow!("listing consumer groups failed: {error}"))?;
    let mut groups = Vec::new();
    for info in listed.groups() {
        let wanted = if only.is_empty() {
            info.protocol_type() == "consumer" || info.protocol_type().is_empty()
        } else {
            only.iter().any(|name| name == info.name())
        };
        if !wanted {
            continue;
        }
        groups.push(describe_group(
            bootstrap,
            info,
            &partition_counts,
            &admin,
            timeout,
        )?);
    }
    for name in only {
        if !groups.iter().any(|group| &group.group == name) {
            anyhow::bail!("no consumer group named '{name}' at {bootstrap}");
        }
    }
    groups.sort_by(|left, right| left.group.cmp(&right.group));
    Ok(groups)
}

fn describe_group(
    bootstrap: &str,
    info: &rdkafka::groups::GroupInfo,
    partition_counts: &BTreeMap<String, usize>,
    admin: &BaseConsumer,
    timeout: Duration,
) -> anyhow::Result<GroupLag> {
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut members = Vec::new();
    for member in info.members() {
        let assigned = member
            .assignment()
            .and_then(decode_assignment)
            .unwrap_or_default();
        // Every instance of a service has the same client id; the member id tells them apart.
        let name = member.id().to_string();
        for (topic, partition) in &assigned {
            owners.insert((topic.clone(), *partition), name.clone());
        }
        members.push(Member {
            member_id: member.id().to_string(),
            client_id: member.client_id().to_string(),
            host: member.client_host().to_string(),
            partitions: assigned.len(),
        });
    }
    // Committed offsets of every partition of every topic; the group's topics are those it
    // committed on or owns.
    let mut request = TopicPartitionList::new();
    for (topic, count) in partition_counts {
        for partition in 0..*count {
            request.add_partition(topic, i32::try_from(partition)?);
        }
    }
    let reader: BaseConsumer = caasctl::kafka::client_config(bootstrap)?
        .set("group.id", info.name())
        .set("client.id", "caasctl-lag")
        .set("enable.auto.commit", "false")
        .create()?;
    let committed = reader
        .committed_offsets(request, timeout)
        .map_err(|error| {
            anyhow::anyhow!(
                "reading the offsets of group '{}' failed: {error}",
                info.name()
            )
        })?;
    let mut group_topics: BTreeSet<String> =
        owners.keys().map(|(topic, _)| topic.clone()).collect();
    let mut committed_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for element in committed.elements() {
        if let Offset::Offset(offset) = element.offset() {
            if offset >= 0 {
                group_topics.insert(element.topic().to_string());
                committed_offsets
                    .insert((element.topic().to_string(), element.partition()), offset);
            }
        }
    }
    let mut partitions = Vec::new();
    for topic in &group_topics {
        let count = partition_counts.get(topic).copied().unwrap_or(0);
        for partition in 0..i32::try_from(count)? {
            let (low, high) = admin.fetch_watermarks(topic, partition, timeout)?;
            let key = (topic.clone(), partition);
            let committed = committed_offsets.get(&key).copied();
            partitions.push(PartitionLag {
                topic: topic.clone(),
                partition,
                committed,
                low_watermark: low,
                high_watermark: high,
                lag: partition_lag(committed, low, high),
                owner: owners.get(&key).cloned(),
            });
        }
    }
    let counts_of_group: BTreeMap<String, usize> = group_topics
        .iter()
        .filter_map(|topic| {
            partition_counts
                .get(topic)
                .map(|count| (topic.clone(), *count))
        })
        .collect();
    Ok(GroupLag {
        group: info.name().to_string(),
        state: info.state().to_string(),
        protocol: info.protocol().to_string(),
        members,
        usable_instances: usable_instances(&counts_of_group),
        total_lag: partitions.iter().map(|partition| partition.lag).sum(),
        partitions,
    })
}

/// The human view: one block per group.
pub fn render(groups: &[GroupLag], all: bool) -> String {
    let mut out = String::new();
    if groups.is_empty() {
        out.push_str("no consumer groups\n");
    }
    for group in groups {
        out.push_str(&format!(
            "group {}  state {}  assignor {}  members {}  total lag {}  usable instances {}\n",
            group.group,
            group.state,
            if group.protocol.is_empty() {
                "-"
            } else {
                &group.protocol
            },
            group.members.len(),
            group.total_lag,
            group.usable_instances,
        ));
        for member in &group.members {
            out.push_str(&format!(
                "  member {} ({}, {}) owns {} partition(s)\n",
                member.member_id, member.client_id, member.host, member.partitions
            ));
        }
        out.push_str(&format!(
            "  {:<28} {:>9} {:>10} {:>10} {:>8}  OWNER\n",
            "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
        ));
        for partition in &group.partitions {
            if !all && partition.lag == 0 && partition.owner.is_some() {
                continue;
            }
            out.push_str(&format!(
                "  {:<28} {:>9} {:>10} {:>10} {:>8}  {}\n",
                partition.topic,
                partition.partition,
                partition
                    .committed
                    .map_or_else(|| "-".to_string(), |offset| offset.to_string()),
                partition.high_watermark,
                partition.lag,
                partition.owner.as_deref().unwrap_or("-"),
            ));
        }
        if !all {
            out.push_str(
                "  (partitions that are owned and have no lag are hidden; --all shows them)\n",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment_bytes(topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for partition in *partitions {
                bytes.extend(partition.to_be_bytes());
            }
        }
        bytes.extend((user_data.len() as i32).to_be_bytes());
        bytes.extend(user_data);
        bytes
    }

    #[test]
    fn an_assignment_decodes_to_its_topic_partitions() {
        let bytes = assignment_bytes(&[("inbound.messages.v1", &[0, 5]), ("b", &[2])], b"x");
        assert_eq!(
            decode_assignment(&bytes),
            Some(vec![
                ("inbound.messages.v1".to_string(), 0),
                ("inbound.messages.v1".to_string(), 5),
                ("b".to_string(), 2)
            ])
        );
    }

    #[test]
    fn a_truncated_assignment_is_refused_not_misread() {
        let bytes = assignment_bytes(&[("inbound.messages.v1", &[0, 5])], b"");
        for cut in 0..bytes.len() - 8 {
            assert_eq!(decode_assignment(&bytes[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn lag_is_the_distance_from_the_commit_to_the_end_and_never_negative() {
        assert_eq!(partition_lag(Some(7), 0, 10), 3);
        assert_eq!(partition_lag(None, 4, 10), 6);
        assert_eq!(partition_lag(Some(2), 5, 10), 5);
        assert_eq!(partition_lag(Some(12), 0, 10), 0);
    }

    #[test]
    fn a_group_can_use_as_many_instances_as_its_largest_topic_has_partitions() {
        let counts = BTreeMap::from([("a".to_string(), 12), ("b".to_string(), 3)]);
        assert_eq!(usable_instances(&counts), 12);
        assert_eq!(usable_instances(&BTreeMap::new()), 0);
    }

    #[test]
    fn the_table_hides_owned_partitions_without_lag_unless_asked() {
        let group = GroupLag {
            group: "caas-logger".into(),
            state: "Stable".into(),
            protocol: "cooperative-sticky".into(),
            members: vec![],
            usable_instances: 12,
            total_lag: 4,
            partitions: vec![
                PartitionLag {
                    topic: "t".into(),
                    partition: 0,
                    committed: Some(10),
                    low_watermark: 0,
                    high_watermark: 10,
                    lag: 0,
                    owner: Some("logger@/127.0.0.1".into()),
                },
                PartitionLag {
                    topic: "t".into(),
                    partition: 1,
                    committed: Some(6),
                    low_watermark: 0,
                    high_watermark: 10,
                    lag: 4,
                    owner: None,
                },
            ],
        };
        let short = render(std::slice::from_ref(&group), false);
        assert!(short.contains("usable instances 12"), "{short}");
        assert_eq!(short.matches("\n  t ").count(), 1, "{short}");
        let long = render(&[group], true);
        assert_eq!(long.matches("\n  t ").count(), 2, "{long}");
    }
}
