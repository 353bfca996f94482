mod common;
use std::time::{Duration, Instant};
use common::{token, unique, Cluster, EventProducer};
use caas_events::keys;
use caas_events::model::{Channel, Content, InboundMessage, Text};

#[tokio::test]
async fn probe_stop_time() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start(&[("CAAS_GATEWAY_SEQ_WAIT_MS", "200")]).await;
    let tenant = unique("t");
    let operator = gateway.operator(&token(&tenant, "op", "operator")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let key = keys::conversation_key(&tenant, Channel::Whatsapp, "1");
    let _ = operator.emit_ack("conversation.join", serde_json::json!({"conversation_key": key})).await;
    let message = InboundMessage { event_id: unique("e"), tenant_id: tenant.clone(), conversation_key: key.clone(), channel: Channel::Whatsapp, occurred_at: 1, recorded_at: 1, source: "t".into(), trace_parent: None, provider_message_id: unique("w"), customer_id: "1".into(), customer_display_name: None, business_id: None, reply_to: None, content: Content::Text(Text{ body: "x".into(), preview_url: false})};
    EventProducer::new().produce(&message).await;
    operator.wait_for("message.new", Duration::from_secs(20), |_| true).await.expect("got it");
    let started = Instant::now();
    gateway.stop().await;
    eprintln!("STOP TOOK {:?}", started.elapsed());
}
