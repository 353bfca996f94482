"""Our records and schemas work with software we did not write: Python confluent-kafka's
standard Confluent Avro serializer and deserializer, reading schemas from our registry.

1. A record produced by our code (caas-interop produce) decodes with `AvroDeserializer`.
2. A record produced by `AvroSerializer` from our published schema (schemas/*.avsc) is consumed
   and decoded by our code (caas-interop consume).
"""

import datetime
import json
import os
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

ROOT = Path(os.environ.get("CAAS_ROOT", Path(__file__).resolve().parents[2]))
BOOTSTRAP = os.environ.get("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REGISTRY = os.environ.get("CAAS_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
TOPIC = "inbound.messages.v1"
INTEROP = os.environ["CAAS_INTEROP_BIN"]


def interop(*arguments):
    result = subprocess.run([INTEROP, *arguments], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"caas-interop {arguments} failed:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def read_at(partition, offset):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"interop-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(TOPIC, partition, offset)])
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            return message
        raise AssertionError(f"no record at {TOPIC}[{partition}]@{offset}")
    finally:
        consumer.close()


def test_our_record_decodes_with_the_standard_confluent_deserializer():
    marker = f"from-rust-{uuid.uuid4().hex}"
    produced = interop("produce", marker)
    message = read_at(produced["partition"], produced["offset"])
    assert message.value()[0] == 0, "Confluent framing: magic byte 0"

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": REGISTRY}))
    value = deserializer(message.value(), SerializationContext(TOPIC, MessageField.VALUE))

    assert value["event_id"] == produced["event_id"]
    assert value["tenant_id"] == "interop"
    assert value["channel"] == "whatsapp"
    assert value["conversation_key"] == "interop:whatsapp:4915100000000"
    assert value["customer_display_name"] == "Interop Ümlaut"
    assert value["content"]["body"] == marker
    assert message.key().decode() == value["conversation_key"]


def test_a_record_serialized_by_confluent_kafka_from_our_schema_is_consumed_by_our_code():
    schema = (ROOT / "schemas" / "caas.v1.InboundMessage.avsc").read_text()
    registry = SchemaRegistryClient({"url": REGISTRY})
    serializer = AvroSerializer(registry, schema, conf={"auto.register.schemas": False,
                                                        "use.latest.version": False})
    marker = f"from-python-{uuid.uuid4().hex}"
    now = datetime.datetime.now(tz=datetime.timezone.utc).replace(microsecond=0)
    record = {
        "event_id": f"integrator-{marker}",
        "tenant_id": "interop",
        "conversation_key": "interop:rcs:+4915100000001",
        "channel": "rcs",
        "occurred_at": now,
        "recorded_at": now,
        "source": "python-integrator",
        "trace_parent": None,
        "provider_message_id": marker,
        "customer_id": "+4915100000001",
        "customer_display_name": None,
        "business_id": "demo-agent",
        "reply_to": None,
        "content": ("caas.v1.Text", {"body": marker, "preview_url": False}),
    }
    payload = serializer(record, SerializationContext(TOPIC, MessageField.VALUE))

    deliveries = []
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    producer.produce(TOPIC, key=record["conversation_key"], value=payload,
                     on_delivery=lambda error, message: deliveries.append((error, message)))
    assert producer.flush(15) == 0
    error, delivered = deliveries[0]
    assert error is None, error

    decoded = interop("consume", str(delivered.partition()), str(delivered.offset()))
    assert decoded["event_id"] == record["event_id"]
    assert decoded["channel"] == "rcs"
    assert decoded["occurred_at"] == int(now.timestamp() * 1000)
    assert decoded["business_id"] == "demo-agent"
    assert json.dumps(decoded["content"]).count(marker) == 1
