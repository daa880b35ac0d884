"""Prometheus /metrics after a known workload, parsed with prometheus_client's
exposition-format parser (a real parser, not string matching)."""

import re
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import RPC_TIMEOUT, log_pb2


def scrape(addr: str) -> dict:
    """Every sample as {(name, frozenset(labels.items())): value}."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=RPC_TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_counters_equal_the_workload_and_histograms_have_counts(node):
    # The log's own figures are compared with what they were before the
    # workload: a replicated node (the default: a Raft cluster of one) has
    # Raft's own entries in its log before any record is produced.
    before = scrape(node.addr)

    def grew(name):
        return value(samples, name) - (value(before, name) or 0)

    values = [b"a" * 10, b"b" * 20, b"c" * 30]
    for v in values:
        node.stub.Produce(log_pb2.ProduceRequest(record=log_pb2.Record(value=v)), timeout=RPC_TIMEOUT)
    batch = [log_pb2.Record(value=b"d" * 5) for _ in range(7)]
    node.stub.ProduceBatch(log_pb2.ProduceBatchRequest(records=batch), timeout=RPC_TIMEOUT)
    for offset in range(4):
        node.stub.Consume(log_pb2.ConsumeRequest(offset=offset), timeout=RPC_TIMEOUT)
    page = node.stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(from_offset=4, max_records=6), timeout=RPC_TIMEOUT)
    assert len(page.records) == 6
    try:
        node.stub.Consume(log_pb2.ConsumeRequest(offset=999), timeout=RPC_TIMEOUT)
    except Exception:  # noqa: BLE001 - the OUT_OF_RANGE is the point
        pass

    samples = scrape(node.addr)
    produced_bytes = sum(len(v) for v in values) + 7 * 5
    assert value(samples, "proglog_produced_records_total") == 10
    assert value(samples, "proglog_produced_bytes_total") == produced_bytes
    assert value(samples, "proglog_consumed_records_total") == 10
    assert value(samples, "proglog_consumed_bytes_total") == 10 + 20 + 30 + 5 + 6 * 5
    assert value(samples, "proglog_requests_total", protocol="grpc", method="Produce", code="OK") == 3
    assert value(samples, "proglog_requests_total", protocol="grpc", method="ProduceBatch", code="OK") == 1
    assert value(samples, "proglog_requests_total", protocol="grpc", method="Consume", code="OK") == 4
    assert value(samples, "proglog_requests_total", protocol="grpc", method="Consume", code="OUT_OF_RANGE") == 1
    assert value(samples, "proglog_errors_total", kind="out_of_range") == 1
    # Histograms with real buckets and counts.
    assert value(samples, "proglog_request_duration_seconds_count", protocol="grpc", method="Produce") == 3
    assert value(samples, "proglog_request_duration_seconds_bucket", protocol="grpc", method="Produce", le="+Inf") == 3
    assert grew("proglog_log_append_duration_seconds_count") == 4  # 3 produces + 1 batch
    fsyncs = grew("proglog_log_fsyncs_total")
    assert fsyncs >= 1
    assert grew("proglog_log_fsync_duration_seconds_count") >= fsyncs
    assert grew("proglog_log_fsync_batch_records_sum") == 10
    # Log gauges and build info.
    assert grew("proglog_log_next_offset") == 10
    assert value(samples, "proglog_log_highest_offset") == value(samples, "proglog_log_next_offset") - 1
    assert value(samples, "proglog_log_lowest_offset") == value(before, "proglog_log_lowest_offset")
    assert value(samples, "proglog_log_segments") == 1
    assert grew("proglog_log_size_bytes") == produced_bytes + 10 * 36
    build = [k for k in samples if k[0] == "proglog_build_info"]
    assert len(build) == 1 and samples[build[0]] == 1
    assert {"version", "git_commit"} <= {label for label, _ in build[0][1]}


def test_http_requests_are_labelled_by_route_template(node):
    for offset in (0, 1, 2):
        try:
            urllib.request.urlopen(f"http://{node.addr}/v1/records/{offset}", timeout=RPC_TIMEOUT)
        except urllib.error.HTTPError as error:
            assert error.code == 404
    for offset in (3, 4):
        try:
            urllib.request.urlopen(f"http://{node.addr}/v1/records?from={offset}", timeout=RPC_TIMEOUT)
        except urllib.error.HTTPError as error:
            assert error.code == 404
    samples = scrape(node.addr)
    assert value(samples, "proglog_requests_total", protocol="http", method="GET /v1/records/{offset}", code="404") == 3
    assert value(samples, "proglog_requests_total", protocol="http", method="GET /v1/records", code="404") == 2
    # No label holds an offset, a path with one, or a query: cardinality
    # stays bounded. Digits are allowed only in labels whose values are
    # bounded numbers (status codes, bucket bounds), in the one build-info
    # sample, and as the API version ("v1").
    numeric_labels = {"code", "le", "quantile"}
    for name, labels in samples:
        for label, text in labels:
            if label in numeric_labels or name == "proglog_build_info":
                continue
            assert not re.search(r"(?<![v\d])\d", text), (name, label, text)
            assert "?" not in text, (name, label, text)


def test_the_metrics_address_serves_only_health_and_metrics(node_factory):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = node_factory(extra_args=["--metrics-addr", f"127.0.0.1:{port}"]).start()
    metrics_addr = f"127.0.0.1:{port}"
    assert value(scrape(metrics_addr), "proglog_log_next_offset") == 0
    with urllib.request.urlopen(f"http://{metrics_addr}/readyz", timeout=RPC_TIMEOUT) as response:
        assert response.status == 200
    try:
        urllib.request.urlopen(f"http://{metrics_addr}/v1/info", timeout=RPC_TIMEOUT)
        raise AssertionError("the API must not be served on the metrics address")
    except urllib.error.HTTPError as error:
        assert error.code == 404
    assert node.info().next_offset == 0
