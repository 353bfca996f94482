//! Helpers for tests against the real local stack that `make up` starts (Kafka, the schema
//! registry, MongoDB and Redis). Endpoints come from the same `CAAS_*` variables the services
//! read, with the same local defaults.

use std::time::Duration;

use caas_runtime::{CommonConfig, Env};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// The common configuration the services would see.
pub fn stack() -> CommonConfig {
    CommonConfig::from_env(&Env::from_process()).expect("CAAS_* variables are valid")
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Create a throwaway topic and wait until the broker knows it.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .expect("create_topics request");
    for result in results {
        result.expect("topic created");
    }
}

/// Delete a throwaway topic (best effort).
pub async fn delete_topic(bootstrap: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let _ = admin.delete_topics(&[name], &AdminOptions::new()).await;
}
