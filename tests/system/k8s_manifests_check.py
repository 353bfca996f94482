"""Offline checks of deploy/k8s/ that kubernetes-validate cannot do (run by test_k8s_manifests.sh):

- every KEDA ScaledObject validates against deploy/k8s/schemas/keda-scaledobject-v1alpha1.json;
- each worker scales on the consumer groups it really uses (the ones its ConfigMap configures),
  on topics the catalogue says it consumes, and maxReplicaCount equals the largest partition
  count of those topics (topics/catalogue.yaml): more instances than partitions would idle;
- every ConfigMap, Secret and key a Deployment references exists in the manifests, and every
  CAAS_* variable the service's code reads is set in its container;
- every image is a service of this workspace, built by the Dockerfile, at the workspace version;
- probes are /ready and /health on the service's port, resources are requested, every Deployment
  has a PodDisruptionBudget that selects its pods, the gateway has an HPA, and the termination
  grace period covers the pre-stop delay plus CAAS_SHUTDOWN_GRACE_MS.
"""

import json
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
failures = []


def fail(message):
    failures.append(message)


documents = []
for path in sorted(K8S.glob("*.yaml")):
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            documents.append((path.name, document))


def of_kind(kind):
    return [(name, document) for name, document in documents if document["kind"] == kind]


configmaps = {document["metadata"]["name"]: document.get("data", {}) for _, document in of_kind("ConfigMap")}
secrets = {
    document["metadata"]["name"]: {**document.get("data", {}), **document.get("stringData", {})}
    for _, document in of_kind("Secret")
}
deployments = {document["metadata"]["name"]: document for _, document in of_kind("Deployment")}
catalogue = yaml.safe_load((ROOT / "topics" / "catalogue.yaml").read_text())
partitions = {topic["name"]: topic["partitions"] for topic in catalogue["topics"]}
consumers = {topic["name"]: set(topic.get("consumers") or []) for topic in catalogue["topics"]}
services = sorted(path.name for path in (ROOT / "services").iterdir() if (path / "Cargo.toml").exists())
workspace_version = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text()).group(1)


def variables_read(directory):
    found = set()
    for path in directory.rglob("*.rs"):
        if "tests" in path.relative_to(directory).parts:
            continue
        code = path.read_text().split("#[cfg(test)]")[0]
        found.update(re.findall(r'"(CAAS_[A-Z0-9_]+)"', code))
    return {variable for variable in found if not variable.endswith("_FILE")}


common_variables = variables_read(ROOT / "crates" / "caas-runtime" / "src")

# --- every service is deployed --------------------------------------------------------------------
if sorted(deployments) != services:
    fail(f"Deployments {sorted(deployments)} are not the workspace services {services}")

# --- KEDA -----------------------------------------------------------------------------------------
schema = json.loads((K8S / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())
validator = jsonschema.Draft202012Validator(schema)
scaled = {}
for file, document in of_kind("ScaledObject"):
    for error in validator.iter_errors(document):
        fail(f"{file}: ScaledObject {document['metadata'].get('name')}: {error.json_path}: {error.message}")
    scaled[document["spec"]["scaleTargetRef"]["name"]] = (file, document)


def groups_configured(service, data):
    """The consumer groups a worker uses, from its configuration (services' config.rs)."""
    if service == "campaign":
        prefix = data["CAAS_CAMPAIGN_GROUP_PREFIX"]
        return {f"{prefix}.commands", f"{prefix}.tracking", f"{prefix}.consent"}
    if service == "sender":
        return {data["CAAS_SENDER_GROUP_ID"], data["CAAS_SENDER_GROUP_ID"] + "-window"}
    return {data[f"CAAS_{service.upper()}_GROUP_ID"]}


for service in services:
    if service in ("ingest", "gateway"):
        continue
    if service not in scaled:
        fail(f"worker {service} has no KEDA ScaledObject")
        continue
    file, document = scaled[service]
    spec = document["spec"]
    if service not in deployments:
        fail(f"{file}: ScaledObject targets {service}, which is not a Deployment")
    if "replicas" in deployments.get(service, {}).get("spec", {}):
        fail(f"{service}: the Deployment sets replicas, which fights KEDA over the count")
    data = configmaps.get(f"caas-{service}", {})
    wanted_groups = groups_configured(service, data)
    triggers = spec["triggers"]
    topics = set()
    for trigger in triggers:
        metadata = trigger["metadata"]
        if trigger["type"] != "kafka":
            continue
        topic, group = metadata["topic"], metadata["consumerGroup"]
        topics.add(topic)
        if topic not in partitions:
            fail(f"{file}: trigger on {topic}, which is not in the catalogue")
        elif service not in consumers[topic]:
            fail(f"{file}: the catalogue does not list {service} as a consumer of {topic}")
        if group not in wanted_groups:
            fail(f"{file}: trigger group {group} is not one {service} uses ({sorted(wanted_groups)})")
    if topics and spec.get("maxReplicaCount") != max(partitions.get(topic, 0) for topic in topics):
        fail(
            f"{file}: maxReplicaCount {spec.get('maxReplicaCount')} is not the largest partition count "
            f"of {sorted(topics)}: {max(partitions.get(topic, 0) for topic in topics)}"
        )
    for topic in (topic for topic, readers in consumers.items() if service in readers):
        if topic not in topics:
            fail(f"{file}: {service} consumes {topic} (catalogue) but does not scale on its lag")
    if spec.get("minReplicaCount", 0) < 1:
        fail(f"{file}: minReplicaCount below 1 would stop consuming (and reporting lag)")

# --- references, variables, images, probes, resources ------------------------------------------
dockerfile = (ROOT / "Dockerfile").read_text()
if "ARG SERVICE" not in dockerfile or "caas-${SERVICE}" not in dockerfile:
    fail("the Dockerfile no longer builds one image per SERVICE")
pdbs = of_kind("PodDisruptionBudget")
for name, deployment in deployments.items():
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    if deployment["spec"]["selector"]["matchLabels"].items() - labels.items():
        fail(f"{name}: the selector does not match the pod labels")
    volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
    for volume in volumes.values():
        if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
            fail(f"{name}: volume {volume['name']} uses a missing ConfigMap {volume['configMap']['name']}")
        if "secret" in volume and volume["secret"]["secretName"] not in secrets:
            fail(f"{name}: volume {volume['name']} uses a missing Secret {volume['secret']['secretName']}")
    for container in pod["spec"]["containers"]:
        provided = set()
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                referenced = source["configMapRef"]["name"]
                if referenced not in configmaps:
                    fail(f"{name}: envFrom a missing ConfigMap {referenced}")
                provided.update(configmaps.get(referenced, {}))
            if "secretRef" in source:
                referenced = source["secretRef"]["name"]
                if referenced not in secrets:
                    fail(f"{name}: envFrom a missing Secret {referenced}")
                provided.update(secrets.get(referenced, {}))
        for variable in container.get("env", []):
            provided.add(variable["name"])
            source = variable.get("valueFrom", {})
            if "configMapKeyRef" in source:
                reference = source["configMapKeyRef"]
                if reference["key"] not in configmaps.get(reference["name"], {}):
                    fail(f"{name}: {variable['name']} refers to missing ConfigMap key {reference['name']}/{reference['key']}")
            if "secretKeyRef" in source:
                reference = source["secretKeyRef"]
                if reference["key"] not in secrets.get(reference["name"], {}):
                    fail(f"{name}: {variable['name']} refers to missing Secret key {reference['name']}/{reference['key']}")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                fail(f"{name}: mounts undeclared volume {mount['name']}")
        needed = common_variables | variables_read(ROOT / "services" / name / "src")
        for variable in sorted(needed - provided):
            fail(f"{name}: the code reads {variable}, which the container does not set")
        image = container["image"]
        match = re.fullmatch(r"[a-z0-9./-]+/caas-([a-z]+):([0-9A-Za-z.+-]+)", image)
        if not match:
            fail(f"{name}: image {image} is not <registry>/caas-<service>:<version>")
        else:
            if match.group(1) not in services:
                fail(f"{name}: image {image} is not built from a workspace service")
            if match.group(2) != workspace_version:
                fail(f"{name}: image tag {match.group(2)} is not the workspace version {workspace_version}")
        ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        address_variable = "CAAS_INGEST_ADDR" if name == "ingest" else "CAAS_GATEWAY_ADDR" if name == "gateway" else f"CAAS_{name.upper()}_OPS_ADDR"
        address = configmaps.get(f"caas-{name}", {}).get(address_variable, "")
        if not address.endswith(f":{ports.get('http')}"):
            fail(f"{name}: port http {ports.get('http')} is not where {address_variable}={address!r} listens")
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            got = container.get(probe, {}).get("httpGet", {})
            if got.get("path") != path or got.get("port") not in ("http", ports.get("http")):
                fail(f"{name}: {probe} is not GET {path} on the http port: {got}")
        requests = container.get("resources", {}).get("requests", {})
        if not {"cpu", "memory"} <= requests.keys():
            fail(f"{name}: resources.requests lacks cpu or memory: {requests}")
        grace_ms = int(configmaps["caas-common"].get("CAAS_SHUTDOWN_GRACE_MS", "10000"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        delay = int(pre_stop[-1]) if pre_stop and pre_stop[-1].isdigit() else 0
        period = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if period * 1000 < delay * 1000 + grace_ms + 5000:
            fail(f"{name}: terminationGracePeriodSeconds {period} does not cover preStop {delay}s + grace {grace_ms}ms + flush")
    if not any(
        pdb["spec"]["selector"]["matchLabels"].items() <= labels.items() for _, pdb in pdbs
    ):
        fail(f"{name}: no PodDisruptionBudget selects its pods")

flows_dir = ROOT / "services" / "chatbot" / "flows"
flows = {path.name: path.read_text() for path in flows_dir.iterdir() if path.is_file()}
if configmaps.get("caas-chatbot-flows") != flows:
    fail("the caas-chatbot-flows ConfigMap is not a copy of services/chatbot/flows/")

hpas = [document for _, document in of_kind("HorizontalPodAutoscaler")]
gateway_hpa = [hpa for hpa in hpas if hpa["spec"]["scaleTargetRef"]["name"] == "gateway"]
if not gateway_hpa:
    fail("the gateway has no HorizontalPodAutoscaler")
elif not any(metric.get("resource", {}).get("name") == "cpu" for metric in gateway_hpa[0]["spec"]["metrics"]):
    fail("the gateway HPA does not scale on CPU")
for kind in ("Service",):
    external = [document for _, document in of_kind(kind) if document["spec"].get("type") == "ExternalName"]
    names = {document["metadata"]["name"] for document in external}
    for wanted in ("kafka-bootstrap", "mongodb", "redis", "schema-registry"):
        if wanted not in names:
            fail(f"no ExternalName service {wanted}: the stateful parts are referenced, not run")

for message in failures:
    print("FAIL", message)
print(f"{len(documents)} manifests, {len(deployments)} deployments, {len(scaled)} ScaledObjects: "
      f"{'ok' if not failures else f'{len(failures)} problem(s)'}")
sys.exit(1 if failures else 0)
