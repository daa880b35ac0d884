"""charts/proglog without a cluster: rendered by Helm's own engine (PyPI
helm-python-sdk), linted, every object validated against the Kubernetes
OpenAPI schemas of two versions (kubernetes-validate --strict), the names
and ports the pods are told checked against the objects that create them,
values.schema.json shown to refuse bad values, and the rendered config file
and arguments run by the real agent. What this cannot show: a live API
server admitting the objects, and pods scheduling and talking to each other
(docs/deploy.md says so)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from compose_cluster import wait_for

HERE = Path(__file__).resolve().parent
CHART = HERE.parents[1] / "charts" / "proglog"
FULL_VALUES = yaml.safe_load((HERE / "values-full.yaml").read_text())
KUBE_VERSIONS = ("1.29.0", "1.33.0")
# Neither value appears anywhere in the chart: if they show up in the
# output it is because the chart used the release's own name and namespace.
RELEASE, NAMESPACE = "zeta", "tenant-7"
CASES = {"default": None, "full": FULL_VALUES}

# From starting the agent on the rendered config to its /healthz answering:
# it opens an empty log and binds three sockets (well under a second), on a
# loaded CI machine with room to spare.
AGENT_START_S = 30


def render(values=None, name=RELEASE, namespace=NAMESPACE) -> list[dict]:
    manifests = helm.Chart.load(CHART).render(values, name=name, namespace=namespace)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def one(objects, kind, component=None) -> dict:
    found = [
        o for o in objects
        if o["kind"] == kind and (component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def container(objects) -> dict:
    (c,) = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return c


def flags(c) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in c["args"] if arg.startswith("--"))


@pytest.mark.parametrize("case", CASES)
def test_the_chart_renders_the_expected_objects(case):
    kinds = sorted(o["kind"] for o in render(CASES[case]))
    expected = ["ConfigMap", "PodDisruptionBudget", "Service", "Service", "StatefulSet"]
    if case == "default":
        expected.append("Secret")  # generated gossip key
    else:
        expected.append("ServiceMonitor")  # existing gossip Secret, monitoring on
    assert kinds == sorted(expected)


@pytest.mark.parametrize("case", CASES)
def test_helm_lint_is_clean(case):
    report = helm.lint(CHART, CASES[case], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); 2+ are warnings and errors.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_object_is_valid_for_kubernetes(case, version):
    for obj in render(CASES[case]):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema in kubernetes-validate; see the ServiceMonitor test
        kubernetes_validate.validate(obj, version, strict=True)


def test_kubernetes_validate_refuses_a_broken_object():
    """The validation above can fail: a misspelt field is refused."""
    sts = one(render(), "StatefulSet")
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("case", CASES)
def test_peer_names_are_those_the_statefulset_and_headless_service_create(case):
    values = CASES[case] or {}
    objects = render(values)
    sts = one(objects, "StatefulSet")
    headless = one(objects, "Service", "peers")
    c = container(objects)
    f = flags(c)
    domain = values.get("clusterDomain", "cluster.local")
    replicas = sts["spec"]["replicas"]
    ports = {p["name"]: p for p in c["ports"]}

    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    # Pod i of a StatefulSet is <sts>-i, reachable as <pod>.<serviceName>.<ns>.svc.<domain>.
    suffix = f"{sts['spec']['serviceName']}.{NAMESPACE}.svc.{domain}"
    seeds = [f"{sts['metadata']['name']}-{i}.{suffix}:{ports['gossip']['containerPort']}" for i in range(replicas)]
    assert f["join"].split(",") == seeds
    assert f["rpc-advertise-addr"] == f"$(POD_NAME).{suffix}:{ports['rpc']['containerPort']}"
    assert f["gossip-advertise-addr"] == f"$(POD_IP):{ports['gossip']['containerPort']}"
    assert f["node-name"] == "$(POD_NAME)"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_IP": "status.podIP"}
    assert f["bootstrap-expect"] == str(replicas)
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    # Bound addresses and declared ports agree, and the Services target them.
    assert f["rpc-addr"] == f"0.0.0.0:{ports['rpc']['containerPort']}"
    assert f["gossip-addr"] == f"0.0.0.0:{ports['gossip']['containerPort']}"
    assert ports["gossip"]["protocol"] == "UDP"
    for service in (headless, one(objects, "Service", "client")):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
            assert port["protocol"] == ports[port["targetPort"]]["protocol"]


@pytest.mark.parametrize("case", CASES)
def test_probes_point_at_the_port_that_serves_them(case):
    c = container(render(CASES[case]))
    metrics_port = int(flags(c)["metrics-addr"].rsplit(":", 1)[1])
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    paths = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        port = named.get(get["port"], get["port"])
        assert port == metrics_port, f"{probe} dials {port}, health is served on {metrics_port}"
        paths[probe] = get["path"]
    assert paths == {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}


@pytest.mark.parametrize("case", CASES)
def test_pods_are_locked_down_and_stop_gracefully(case):
    values = CASES[case] or {}
    objects = render(values)
    pod = one(objects, "StatefulSet")["spec"]["template"]["spec"]
    c = container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # No PROGLOG_SERVICE_HOST etc. from a Service named "proglog": the agent
    # would refuse them as unknown config keys.
    assert pod["enableServiceLinks"] is False
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/data", "/tmp"} <= mounts  # the only writable places
    sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    # preStop, then leadership transfer (<= 3 s) and the drain, before SIGKILL.
    drain_s = values.get("config", {}).get("server", {}).get("drain_timeout_ms", 10000) / 1000
    assert pod["terminationGracePeriodSeconds"] >= sleep + 3 + drain_s
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= one(objects, "StatefulSet")["spec"]["template"]["metadata"]["labels"].items()


def test_release_name_and_namespace_are_never_hard_coded():
    for name, namespace in ((RELEASE, NAMESPACE), ("other", "elsewhere")):
        objects = render(None, name=name, namespace=namespace)
        for obj in objects:
            assert obj["metadata"]["namespace"] == namespace
            assert obj["metadata"]["name"].startswith(f"{name}-proglog")
        text = yaml.safe_dump_all(objects)
        for stranger in {RELEASE, NAMESPACE, "default"} - {name, namespace}:
            assert stranger not in text.replace("defaultMode", ""), f"{stranger!r} leaked into the {name}/{namespace} render"


def test_service_monitor_scrapes_the_metrics_port_of_the_peer_service():
    objects = render(FULL_VALUES)
    monitor = one(objects, "ServiceMonitor")
    headless = one(objects, "Service", "peers")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= headless["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in headless["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"replicas": "3"}, "/replicas"),
        ({"replicas": 0}, "/replicas"),
        ({"image": {"repository": ""}}, "/image/repository"),
        ({"ports": {"rpc": 70000}}, "/ports/rpc"),
        ({"config": {"log": {"fsync": "sometimes"}}}, "/config/log/fsync"),
        ({"config": {"log_format": "xml"}}, "/config/log_format"),
        ({"config": {"node_name": "pinned"}}, "node_name"),
        ({"config": {"cluster": {"join": ["a:1"]}}}, "join"),
        ({"config": {"log": {"retention_bytes_max": 1}}}, "retention_bytes_max"),
        ({"config": {"otlp_sampling_ratio": 2}}, "/config/otlp_sampling_ratio"),
        ({"tls": {"enabled": True}}, "/tls/secretName"),
        ({"persistence": {"size": "lots"}}, "/persistence/size"),
        ({"terminationGracePeriodSeconds": 5}, "/terminationGracePeriodSeconds"),
        ({"replica": 3}, "replica"),
    ],
)
def test_the_schema_refuses_bad_values_naming_the_key(bad, where):
    with pytest.raises(helm.HelmValuesError) as refused:
        render(bad)
    assert where in str(refused.value)


def test_equal_ports_are_refused_by_the_chart():
    with pytest.raises(helm.HelmError, match="must differ"):
        render({"ports": {"rpc": 8400, "gossip": 8400, "metrics": 8402}})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", CASES)
def test_the_agent_accepts_the_rendered_config_and_arguments(case, tmp_path):
    """The ConfigMap's TOML and the StatefulSet's args, run by the real
    binary with only the pod-specific parts replaced (addresses on
    127.0.0.1, files in tmp_path, bootstrap_expect 1; certificates from
    `proglog cert` and the shipped policy for the TLS case; the gossip key
    the chart generated; no seeds, which only pods can resolve)."""
    binary = os.environ.get("PROGLOG_BIN") or str(HERE.parents[1] / "target" / "debug" / "proglog")
    if not Path(binary).is_file():
        pytest.fail(f"no proglog binary at {binary} (run.sh builds it; or set PROGLOG_BIN)")
    objects = render(CASES[case])
    config = one(objects, "ConfigMap")["data"]["proglog.toml"]
    (tmp_path / "proglog.toml").write_text(config)
    args = list(container(objects)["args"])
    rpc, gossip, metrics = _free_port(), _free_port(), _free_port()
    files = {
        "/etc/proglog/proglog.toml": tmp_path / "proglog.toml",
        "/etc/proglog/gossip/gossip.key": tmp_path / "gossip.key",
        "/etc/proglog/tls/tls.crt": tmp_path / "pki" / "0.pem",
        "/etc/proglog/tls/tls.key": tmp_path / "pki" / "0-key.pem",
        "/etc/proglog/tls/ca.crt": tmp_path / "pki" / "ca.pem",
        "/etc/proglog/policy/policy.polar": HERE.parents[1] / "auth" / "policies" / "default.polar",
        "/data": tmp_path / "data",
    }
    secret = [o for o in objects if o["kind"] == "Secret"]
    if secret:
        (tmp_path / "gossip.key").write_bytes(base64.b64decode(secret[0]["data"]["gossip.key"]))
    else:
        subprocess.run([binary, "cert", "gossip-key", str(tmp_path / "gossip.key")], check=True, capture_output=True)
    if any(a.startswith("--tls-cert-file") for a in args):
        pki = str(tmp_path / "pki")
        subprocess.run([binary, "cert", "ca", "--out-dir", pki], check=True, capture_output=True)
        subprocess.run([binary, "cert", "node", "--name", "0", "--ip", "127.0.0.1", "--ca-dir", pki, "--out-dir", pki], check=True, capture_output=True)
    replaced = []
    for arg in args:
        name, _, value = arg.partition("=")
        if name == "--join":
            # A fresh node with seeds waits for them before it bootstraps;
            # the seeds' names are checked by the peer-name test instead.
            continue
        value = {
            "--rpc-addr": f"127.0.0.1:{rpc}",
            "--rpc-advertise-addr": f"127.0.0.1:{rpc}",
            "--gossip-addr": f"127.0.0.1:{gossip}",
            "--gossip-advertise-addr": f"127.0.0.1:{gossip}",
            "--metrics-addr": f"127.0.0.1:{metrics}",
            "--node-name": "pod-0",
            # One process cannot be `replicas` pods, and a node waiting for
            # its peers serves nothing yet, not even /healthz (the agent
            # starts its listeners after bootstrap): bootstrap alone.
            "--bootstrap-expect": "1",
        }.get(name, value)
        value = str(files.get(value, value))
        replaced.append(f"{name}={value}" if value else name)
    with tempfile.TemporaryFile() as log:
        # The agent takes every PROGLOG_* variable as a config key (and
        # refuses unknown ones such as PROGLOG_BIN): a pod has none.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROGLOG_")}
        agent = subprocess.Popen([binary, *replaced], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            def healthy():
                assert agent.poll() is None, "the agent exited"
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz", timeout=2) as response:
                    return response.status == 200

            try:
                wait_for("the agent's /healthz", healthy, AGENT_START_S)
            except AssertionError:
                log.seek(0)
                raise AssertionError(f"agent {replaced} did not come up:\n{log.read().decode(errors='replace')[-3000:]}")
        finally:
            agent.send_signal(signal.SIGTERM)
            code = agent.wait(timeout=60)
    assert code == 0
