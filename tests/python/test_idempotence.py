"""Idempotent produce from another language: a resent (producer id,
sequence) gets its original offset back, over gRPC and HTTP/JSON, on the
default node (a Raft cluster of one) and after it restarts; a standalone
node (--bootstrap-expect 0) refuses producer ids with FAILED_PRECONDITION."""

import json
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import RPC_TIMEOUT, log_pb2

PRODUCER = 0x5EED_0001


def produce(node, value: bytes, sequence: int, producer_id: int = PRODUCER):
    return node.stub.Produce(
        log_pb2.ProduceRequest(
            record=log_pb2.Record(value=value), producer_id=producer_id, sequence=sequence
        ),
        timeout=RPC_TIMEOUT,
    )


def produce_batch(node, values, sequence: int):
    return node.stub.ProduceBatch(
        log_pb2.ProduceBatchRequest(
            records=[log_pb2.Record(value=v) for v in values],
            producer_id=PRODUCER,
            sequence=sequence,
        ),
        timeout=RPC_TIMEOUT,
    )


def trailer(error: grpc.RpcError, key: str):
    return dict(error.trailing_metadata() or ()).get(key)


def values(node):
    batch = node.stub.ConsumeBatch(
        log_pb2.ConsumeBatchRequest(from_offset=0, max_records=1000), timeout=RPC_TIMEOUT
    )
    return [r.value for r in batch.records]


def post(node, path: str, body: dict):
    request = urllib.request.Request(
        f"http://{node.addr}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_a_resent_sequence_is_appended_once_over_grpc_and_http(node_factory):
    node = node_factory().start()
    first = produce(node, b"a", 0)
    assert (first.offset, first.duplicate) == (0, False)
    again = produce(node, b"a", 0)
    assert (again.offset, again.duplicate) == (0, True)

    batch = produce_batch(node, [b"b", b"c"], 1)
    assert (batch.base_offset, batch.count, batch.duplicate) == (1, 2, False)
    resent = produce_batch(node, [b"b", b"c"], 1)
    assert (resent.base_offset, resent.count, resent.duplicate) == (1, 2, True)

    # A resend that overlaps: only the prefix already in the log is
    # answered; the rest is sent again from sequence + count.
    overlap = produce_batch(node, [b"c", b"d"], 2)
    assert (overlap.base_offset, overlap.count, overlap.duplicate) == (2, 1, True)
    rest = produce_batch(node, [b"d"], 3)
    assert (rest.base_offset, rest.count, rest.duplicate) == (3, 1, False)

    status, body = post(
        node, "/v1/records", {"record": {"value": "ZQ=="}, "producerId": str(PRODUCER), "sequence": 4}
    )
    assert (status, body) == (200, {"offset": 4, "duplicate": False})
    status, body = post(
        node, "/v1/records", {"record": {"value": "ZQ=="}, "producerId": PRODUCER, "sequence": 4}
    )
    assert (status, body) == (200, {"offset": 4, "duplicate": True})

    # Without a producer id nothing is deduplicated: the control.
    plain = node.stub.Produce(
        log_pb2.ProduceRequest(record=log_pb2.Record(value=b"a")), timeout=RPC_TIMEOUT
    )
    assert plain.offset == 5
    assert values(node) == [b"a", b"b", b"c", b"d", b"e", b"a"]

    # The producer table survives a restart (rebuilt from its checkpoint).
    node.stop()
    node.start()
    again = produce(node, b"a", 0)
    assert (again.offset, again.duplicate) == (0, True)
    assert values(node) == [b"a", b"b", b"c", b"d", b"e", b"a"]


def test_a_sequence_older_than_the_window_is_refused(node_factory):
    node = node_factory().start()
    window = 4096
    for start in range(0, window + 10, 1000):
        count = min(1000, window + 10 - start)
        produce_batch(node, [b"w"] * count, start)
    with pytest.raises(grpc.RpcError) as caught:
        produce(node, b"w", 0)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "older than the oldest remembered" in caught.value.details()
    assert trailer(caught.value, "proglog-error") == "sequence-too-old"


def test_sequences_past_the_largest_number_are_refused(node_factory):
    node = node_factory().start()
    with pytest.raises(grpc.RpcError) as caught:
        produce_batch(node, [b"x", b"y"], 2**64 - 1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "largest sequence number" in caught.value.details()
    assert values(node) == [], "nothing was written"


def test_a_standalone_node_refuses_producer_ids(node_factory):
    node = node_factory(extra_args=["--bootstrap-expect", "0"]).start()
    with pytest.raises(grpc.RpcError) as caught:
        produce(node, b"x", 0)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs a replicated log" in caught.value.details()
    assert trailer(caught.value, "proglog-error") == "idempotence-unsupported"
    status, body = post(
        node, "/v1/records", {"record": {"value": "eA=="}, "producerId": 1, "sequence": 0}
    )
    assert (status, body["error"]["code"], body["error"]["reason"]) == (
        409,
        "FAILED_PRECONDITION",
        "idempotence-unsupported",
    )
    assert values(node) == [], "nothing was written"
