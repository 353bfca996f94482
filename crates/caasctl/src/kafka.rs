//! Kafka client settings shared by every command: the bootstrap servers of the command line
//! plus the authentication the services use (`CAAS_KAFKA_SECURITY_PROTOCOL`,
//! `CAAS_KAFKA_SASL_USERNAME`, `CAAS_KAFKA_SASL_PASSWORD`), so `caasctl` reaches a cluster
//! that requires SASL (the compose stack's init job runs `topics apply` there).

use caas_runtime::{Env, KafkaSecurity};
use rdkafka::ClientConfig;

/// An rdkafka configuration for `bootstrap`, authenticated as the environment says.
pub fn client_config(bootstrap: &str) -> anyhow::Result<ClientConfig> {
    let security = KafkaSecurity::from_env(&Env::from_process())?;
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    security.apply(&mut client);
    Ok(client)
}
