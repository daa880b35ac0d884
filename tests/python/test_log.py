"""proglog's gRPC contract, driven from Python (grpcio) against a real node."""

import signal
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from google.protobuf import descriptor_pool
from prometheus_client.parser import text_string_to_metric_families

from conftest import RPC_TIMEOUT, log_pb2, log_pb2_grpc

MIB = 1 << 20
STREAM_TIMEOUT = 30.0
# Longest a condition on the node (a metric reaching a value) may take; it
# takes milliseconds, so only a real failure waits this long.
CONDITION_TIMEOUT = 10.0


def record(value: bytes):
    return log_pb2.Record(value=value)


def produce_request(value: bytes):
    return log_pb2.ProduceRequest(record=record(value))


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """The error that `call` fails with (the test fails if it succeeds)."""
    kwargs.setdefault("timeout", RPC_TIMEOUT)
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def trailers(error: grpc.RpcError) -> dict:
    return {key: value for key, value in error.trailing_metadata() or ()}


def assert_out_of_range(error: grpc.RpcError, offset: int, lowest: int, next_: int):
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE, error
    meta = trailers(error)
    assert meta.get("proglog-lowest-offset") == str(lowest), meta
    assert meta.get("proglog-next-offset") == str(next_), meta
    details = error.details()
    assert f"offset {offset}" in details, details
    assert f"{lowest}..{next_}" in details, details


def metric(node, name: str, **labels):
    """One sample of the node's /metrics, or None if absent."""
    with urllib.request.urlopen(f"http://{node.addr}/metrics", timeout=RPC_TIMEOUT) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def wait_for_metric(node, name: str, wanted, **labels):
    """Waits until a sample of /metrics equals `wanted` (CONDITION_TIMEOUT)."""
    deadline = time.monotonic() + CONDITION_TIMEOUT
    while (got := metric(node, name, **labels)) != wanted:
        assert time.monotonic() < deadline, f"{name}{labels} is {got}, not {wanted}"
        time.sleep(0.01)  # a poll interval; the deadline bounds the wait


# -- produce and consume --------------------------------------------------


def test_produce_then_consume_round_trip(node):
    # Every byte value, a NUL and a non-UTF-8 tail: bytes must come back exact.
    value = bytes(range(256)) * 3 + b"\x00\xff\xfe"
    before_ms = int(time.time() * 1000)
    assert node.produce(value) == 0
    assert node.produce(b"second") == 1

    first = node.consume(0)
    assert first.value == value
    assert first.offset == 0
    assert first.timestamp_ms > 0
    # Same machine, so the server's clock is ours: within a minute of now.
    assert abs(first.timestamp_ms - before_ms) < 60_000, (first.timestamp_ms, before_ms)

    second = node.consume(1)
    assert second.value == b"second"
    assert second.offset == 1
    assert second.timestamp_ms >= first.timestamp_ms


def test_produce_ignores_client_offset_and_timestamp(node):
    request = log_pb2.ProduceRequest(
        record=log_pb2.Record(value=b"v", offset=77, timestamp_ms=5)
    )
    assert node.stub.Produce(request, timeout=RPC_TIMEOUT).offset == 0
    got = node.consume(0)
    assert got.offset == 0
    assert got.timestamp_ms > 5


def test_empty_value_round_trips(node):
    assert node.produce(b"") == 0
    got = node.consume(0)
    assert got.value == b""
    assert got.offset == 0


def test_produce_without_record_is_invalid_argument(node):
    error = rpc_error(node.stub.Produce, log_pb2.ProduceRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "record" in error.details()
    assert node.info().next_offset == 0


def test_produce_batch_gives_dense_offsets(node):
    values = [f"batch-{i}".encode() * (i + 1) for i in range(10)]
    response = node.stub.ProduceBatch(
        log_pb2.ProduceBatchRequest(records=[record(v) for v in values]),
        timeout=RPC_TIMEOUT,
    )
    assert (response.base_offset, response.count) == (0, 10)

    more = [b"m0", b"m1", b"m2"]
    response = node.stub.ProduceBatch(
        log_pb2.ProduceBatchRequest(records=[record(v) for v in more]),
        timeout=RPC_TIMEOUT,
    )
    assert (response.base_offset, response.count) == (10, 3)

    for offset, value in enumerate(values + more):
        got = node.consume(offset)
        assert (got.offset, got.value) == (offset, value)
    assert node.info().next_offset == 13


def test_empty_produce_batch_is_invalid_argument(node):
    error = rpc_error(node.stub.ProduceBatch, log_pb2.ProduceBatchRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_produce_stream_pipelined_in_order(node):
    node.produce(b"before")  # offsets continue from an existing record
    count = 500
    sent = []

    def requests():
        # Yields every request without waiting for any response.
        for i in range(count):
            sent.append(i)
            yield produce_request(f"stream-{i:04d}".encode())

    responses = list(node.stub.ProduceStream(requests(), timeout=STREAM_TIMEOUT))
    assert len(sent) == count
    assert [r.offset for r in responses] == list(range(1, count + 1))

    batch = node.stub.ConsumeBatch(
        log_pb2.ConsumeBatchRequest(from_offset=1, max_records=count),
        timeout=RPC_TIMEOUT,
    )
    assert [r.offset for r in batch.records] == list(range(1, count + 1))
    assert [r.value for r in batch.records] == [
        f"stream-{i:04d}".encode() for i in range(count)
    ]
    assert batch.next_offset == count + 1


def test_produce_stream_acks_good_records_then_fails_on_bad_one(node):
    def requests():
        yield produce_request(b"ok-0")
        yield produce_request(b"ok-1")
        yield log_pb2.ProduceRequest()  # no record
        yield produce_request(b"never")

    call = node.stub.ProduceStream(requests(), timeout=STREAM_TIMEOUT)
    offsets = []
    with pytest.raises(grpc.RpcError) as caught:
        for response in call:
            offsets.append(response.offset)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert offsets == [0, 1]
    assert node.info().next_offset == 2


def test_concurrent_produce_streams_get_distinct_dense_offsets(node):
    streams, per_stream = 4, 200
    results = [None] * streams
    errors = []

    def run(index):
        try:
            call = node.stub.ProduceStream(
                (produce_request(f"{index}:{i}".encode()) for i in range(per_stream)),
                timeout=STREAM_TIMEOUT,
            )
            results[index] = [r.offset for r in call]
        except grpc.RpcError as error:  # reported below, not lost in a thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(STREAM_TIMEOUT + 5)
    assert not errors, errors
    for offsets in results:
        assert len(offsets) == per_stream
        assert offsets == sorted(offsets), "each stream's responses are in order"
    every = sorted(o for offsets in results for o in offsets)
    assert every == list(range(streams * per_stream))

    # Each offset holds the value its stream sent for it.
    batch = node.stub.ConsumeBatch(
        log_pb2.ConsumeBatchRequest(from_offset=0, max_records=streams * per_stream),
        timeout=RPC_TIMEOUT,
    )
    by_offset = {r.offset: r.value for r in batch.records}
    for index, offsets in enumerate(results):
        assert [by_offset[o] for o in offsets] == [
            f"{index}:{i}".encode() for i in range(per_stream)
        ]


# -- consume ----------------------------------------------------------------


def test_consume_batch(node):
    values = [f"r{i}".encode() * 50 for i in range(20)]  # 100-150 bytes each
    node.stub.ProduceBatch(
        log_pb2.ProduceBatchRequest(records=[record(v) for v in values]),
        timeout=RPC_TIMEOUT,
    )

    def batch(**fields):
        return node.stub.ConsumeBatch(
            log_pb2.ConsumeBatchRequest(**fields), timeout=RPC_TIMEOUT
        )

    first = batch(from_offset=0, max_records=7)
    assert [r.offset for r in first.records] == list(range(7))
    assert [r.value for r in first.records] == values[:7]
    assert all(r.timestamp_ms > 0 for r in first.records)
    assert first.next_offset == 7

    rest = batch(from_offset=first.next_offset)  # server defaults
    assert [r.offset for r in rest.records] == list(range(7, 20))
    assert [r.value for r in rest.records] == values[7:]
    assert rest.next_offset == 20

    # One record is always returned, whatever max_bytes says.
    tiny = batch(from_offset=3, max_bytes=1)
    assert [r.offset for r in tiny.records] == [3]
    assert tiny.next_offset == 4

    # max_bytes counts stored frames: a 36-byte header plus the value. Three
    # 136-byte frames (408) fit in 450 bytes, a fourth would not.
    capped = batch(from_offset=0, max_bytes=450)
    assert [r.offset for r in capped.records] == [0, 1, 2]
    assert capped.next_offset == 3

    # At the end: nothing yet, ask again at the same offset.
    at_end = batch(from_offset=20)
    assert list(at_end.records) == []
    assert at_end.next_offset == 20

    error = rpc_error(
        node.stub.ConsumeBatch, log_pb2.ConsumeBatchRequest(from_offset=25)
    )
    assert_out_of_range(error, 25, 0, 20)


def test_consume_batch_larger_than_the_message_limit(node):
    # A client may ask for more than one gRPC message holds: the server caps
    # the batch below its 16 MiB message limit (minus a 4 KiB envelope), so
    # the answer is the 15 whole 1 MiB records that fit, and the rest come
    # from the next offset on. Never an error: OUT_OF_RANGE is reserved for
    # offsets outside the log, and a RESOURCE_EXHAUSTED would leave the
    # client no way to make progress.
    message_bytes_max = 16 << 20
    channel = grpc.insecure_channel(
        node.addr,
        options=[
            ("grpc.max_receive_message_length", 4 * message_bytes_max),
            ("grpc.max_send_message_length", 4 * message_bytes_max),
        ],
    )
    try:
        stub = log_pb2_grpc.LogStub(channel)
        value = b"m" * MIB
        for _ in range(2):  # 20 MiB of records, in two 10 MiB batches
            stub.ProduceBatch(
                log_pb2.ProduceBatchRequest(records=[record(value)] * 10),
                timeout=RPC_TIMEOUT,
            )
        response = stub.ConsumeBatch(
            log_pb2.ConsumeBatchRequest(from_offset=0, max_bytes=64 * MIB),
            timeout=RPC_TIMEOUT,
        )
        fits = (message_bytes_max - 4096) // (MIB + 36)
        assert fits == 15
        assert [r.offset for r in response.records] == list(range(fits))
        assert all(r.value == value for r in response.records)
        assert response.next_offset == fits
        assert response.ByteSize() <= message_bytes_max
        rest = stub.ConsumeBatch(
            log_pb2.ConsumeBatchRequest(from_offset=response.next_offset, max_bytes=64 * MIB),
            timeout=RPC_TIMEOUT,
        )
        assert [r.offset for r in rest.records] == list(range(fits, 20))
        assert rest.next_offset == 20
    finally:
        channel.close()


def test_consume_stream_follows_the_tail(node):
    for i in range(3):
        node.produce(f"old-{i}".encode())

    stream = node.stub.ConsumeStream(
        log_pb2.ConsumeRequest(offset=0), timeout=STREAM_TIMEOUT
    )
    try:
        for i in range(3):
            got = next(stream).record
            assert (got.offset, got.value) == (i, f"old-{i}".encode())

        # The stream is open and caught up: a record produced now arrives.
        assert node.produce(b"new-3") == 3
        got = next(stream).record
        assert (got.offset, got.value) == (3, b"new-3")
        assert got.timestamp_ms > 0

        # And the next one, from a batch.
        node.stub.ProduceBatch(
            log_pb2.ProduceBatchRequest(records=[record(b"new-4"), record(b"new-5")]),
            timeout=RPC_TIMEOUT,
        )
        assert [next(stream).record.offset for _ in range(2)] == [4, 5]
    finally:
        stream.cancel()

    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert caught.value.code() == grpc.StatusCode.CANCELLED
    # The node is unaffected by the cancelled stream.
    assert node.info().next_offset == 6


def test_consume_stream_from_the_tail_waits_for_new_records(node):
    node.produce(b"existing")
    stream = node.stub.ConsumeStream(
        log_pb2.ConsumeRequest(offset=1), timeout=STREAM_TIMEOUT
    )
    received = []
    done = threading.Event()

    def reader():
        try:
            for response in stream:
                received.append(response.record)
                if len(received) == 2:
                    break
        except grpc.RpcError:
            pass
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        # The server's follower is running and caught up before anything is
        # produced (its gauge says so); it has not woken and sent nothing.
        wait_for_metric(node, "proglog_open_streams", 1, kind="consume")
        assert metric(node, "proglog_follow_wakeups_total", protocol="grpc") in (None, 0)
        assert received == []
        node.produce(b"later-1")
        node.produce(b"later-2")
        assert done.wait(STREAM_TIMEOUT)
        # Only the records produced after it opened: nothing before them.
        assert [(r.offset, r.value) for r in received] == [
            (1, b"later-1"),
            (2, b"later-2"),
        ]
    finally:
        stream.cancel()
        thread.join(STREAM_TIMEOUT)


def test_consume_stream_past_the_end_is_out_of_range(node):
    node.produce(b"only")
    stream = node.stub.ConsumeStream(
        log_pb2.ConsumeRequest(offset=5), timeout=STREAM_TIMEOUT
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert_out_of_range(caught.value, 5, 0, 1)


def test_consume_past_the_end_is_out_of_range(node):
    node.produce(b"a")
    node.produce(b"b")
    error = rpc_error(node.stub.Consume, log_pb2.ConsumeRequest(offset=5))
    assert_out_of_range(error, 5, 0, 2)
    # The next offset itself is not readable yet either.
    error = rpc_error(node.stub.Consume, log_pb2.ConsumeRequest(offset=2))
    assert_out_of_range(error, 2, 0, 2)


def test_consume_on_an_empty_log_is_out_of_range(node):
    error = rpc_error(node.stub.Consume, log_pb2.ConsumeRequest(offset=0))
    assert_out_of_range(error, 0, 0, 0)


# -- limits -----------------------------------------------------------------


def test_record_over_the_limit_is_invalid_argument(node):
    error = rpc_error(node.stub.Produce, produce_request(b"x" * (MIB + 1)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MIB) in error.details(), error.details()
    assert node.info().next_offset == 0

    # The same through a batch and a stream.
    error = rpc_error(
        node.stub.ProduceBatch,
        log_pb2.ProduceBatchRequest(records=[record(b"ok"), record(b"y" * (MIB + 1))]),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MIB) in error.details(), error.details()
    assert node.info().next_offset == 0, "a rejected batch appends nothing"

    call = node.stub.ProduceStream(
        iter([produce_request(b"z" * (MIB + 1))]), timeout=STREAM_TIMEOUT
    )
    with pytest.raises(grpc.RpcError) as caught:
        list(call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(MIB) in caught.value.details()
    assert node.info().next_offset == 0


def test_record_at_the_limit_is_accepted(node):
    value = bytes(i % 251 for i in range(MIB))
    assert node.produce(value) == 0
    assert node.consume(0).value == value


# -- metadata ---------------------------------------------------------------


def test_get_log_info(node):
    info = node.info()
    assert not info.HasField("highest_offset")
    assert (info.lowest_offset, info.next_offset, info.commit_offset) == (0, 0, 0)

    for i in range(5):
        node.produce(bytes([i]))
    info = node.info()
    assert info.HasField("highest_offset")
    assert info.highest_offset == 4
    assert (info.lowest_offset, info.next_offset, info.commit_offset) == (0, 5, 5)


def test_get_servers(node):
    response = node.stub.GetServers(log_pb2.GetServersRequest(), timeout=RPC_TIMEOUT)
    assert len(response.servers) == 1
    server = response.servers[0]
    assert server.id
    assert server.rpc_addr == node.addr
    assert server.is_leader


def test_health(node):
    for service in ("proglog.v1.Log", ""):
        response = node.health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT
        )
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
    error = rpc_error(
        node.health.Check, health_pb2.HealthCheckRequest(service="no.such.Service")
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_v1alpha_lists_and_describes_the_service(node):
    database = ProtoReflectionDescriptorDatabase(node.channel)
    services = database.get_services()
    assert "proglog.v1.Log" in services, services
    assert "grpc.health.v1.Health" in services, services

    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName("proglog.v1.Log")
    methods = {m.name: m for m in service.methods}
    assert set(methods) == {
        "Produce",
        "ProduceBatch",
        "ProduceStream",
        "Consume",
        "ConsumeBatch",
        "ConsumeStream",
        "GetServers",
        "GetLogInfo",
    }
    assert methods["ProduceStream"].client_streaming
    assert methods["ProduceStream"].server_streaming
    assert methods["ConsumeStream"].server_streaming
    assert not methods["ConsumeStream"].client_streaming
    assert methods["Consume"].output_type.full_name == "proglog.v1.ConsumeResponse"


def test_reflection_v1_lists_the_service(node):
    # grpcio-reflection ships only v1alpha stubs; v1's messages are the same
    # on the wire, so call the v1 method with them.
    call = node.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    responses = list(
        call(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            timeout=RPC_TIMEOUT,
        )
    )
    assert len(responses) == 1
    names = [s.name for s in responses[0].list_services_response.service]
    assert "proglog.v1.Log" in names, names


def test_reflection_v1alpha_raw_stub(node):
    stub = reflection_pb2_grpc.ServerReflectionStub(node.channel)
    responses = list(
        stub.ServerReflectionInfo(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="proglog.v1.Log"
                    ),
                ]
            ),
            timeout=RPC_TIMEOUT,
        )
    )
    assert len(responses) == 2
    names = [s.name for s in responses[0].list_services_response.service]
    assert "proglog.v1.Log" in names, names
    assert responses[1].file_descriptor_response.file_descriptor_proto


# -- lifecycle --------------------------------------------------------------


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_records_survive_a_graceful_restart(node_factory, fsync):
    node = node_factory(extra_args=["--fsync", fsync]).start()
    values = [f"durable-{i}".encode() for i in range(5)]
    for value in values[:2]:
        node.produce(value)
    node.stub.ProduceBatch(
        log_pb2.ProduceBatchRequest(records=[record(v) for v in values[2:]]),
        timeout=RPC_TIMEOUT,
    )
    streamed = list(
        node.stub.ProduceStream(
            (produce_request(f"s{i}".encode()) for i in range(50)),
            timeout=STREAM_TIMEOUT,
        )
    )
    assert [r.offset for r in streamed] == list(range(5, 55))
    values += [f"s{i}".encode() for i in range(50)]
    before = [node.consume(i) for i in range(len(values))]

    node.stop(signal.SIGTERM)  # asserts exit code 0
    node.start()  # same data dir, new port

    info = node.info()
    assert (info.lowest_offset, info.next_offset, info.commit_offset) == (0, 55, 55)
    assert info.highest_offset == 54
    after = [node.consume(i) for i in range(len(values))]
    assert [r.value for r in after] == values
    assert after == before, "offsets and timestamps are kept too"

    # Appends continue densely after the restart.
    assert node.produce(b"after-restart") == 55
    assert node.consume(55).value == b"after-restart"


def test_sigint_shuts_down_gracefully_and_keeps_records(node_factory):
    node = node_factory().start()
    node.produce(b"kept")
    node.stop(signal.SIGINT)  # asserts exit code 0
    node.start()
    assert node.consume(0).value == b"kept"


def test_shutdown_ends_an_open_consume_stream(node_factory):
    node = node_factory().start()
    node.produce(b"x")
    channel = grpc.insecure_channel(node.addr)  # survives node.stop()'s close
    try:
        stub = log_pb2_grpc.LogStub(channel)
        stream = stub.ConsumeStream(
            log_pb2.ConsumeRequest(offset=0), timeout=STREAM_TIMEOUT
        )
        assert next(stream).record.value == b"x"
        node.stop(signal.SIGTERM)  # must exit 0 with the stream open
        with pytest.raises(grpc.RpcError) as caught:
            next(stream)
        # Ended by the server with its own status, not cut when the drain
        # timed out (a cut connection is UNAVAILABLE too, with another text).
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
        assert caught.value.details() == "the server is shutting down", caught.value
    finally:
        channel.close()
