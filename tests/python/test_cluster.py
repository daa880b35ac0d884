"""The contract against a three-node replicated cluster (--bootstrap-expect
3), driven from Python through a follower: produce is forwarded to the
leader, offsets stay dense, and every node serves the same committed
records; a follower's ConsumeStream follows the leader's commits."""

import socket
import time

import pytest

from conftest import RPC_TIMEOUT, log_pb2

# Records read back in the follow test.
FOLLOW_RECORDS = 5
# Seconds a follower gets to apply what the leader acknowledged (a few
# heartbeats), and the pause between two looks.
CATCH_UP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05


def free_udp_addr() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def cluster(node_factory):
    gossip = [free_udp_addr() for _ in range(3)]
    nodes = []
    for i in range(3):
        seeds = ",".join(g for j, g in enumerate(gossip) if j != i)
        nodes.append(
            node_factory(
                extra_args=[
                    "--node-name", f"n{i + 1}",
                    "--gossip-addr", gossip[i],
                    "--join", seeds,
                    "--bootstrap-expect", "3",
                ]
            )
        )
    for node in nodes:
        node.spawn()
    # SERVING on a replicated node means: a leader is known and this node
    # applied what it knows to be committed.
    for node in nodes:
        node.wait_started()
    return nodes


def leader_and_followers(cluster):
    servers = cluster[0].stub.GetServers(log_pb2.GetServersRequest(), timeout=RPC_TIMEOUT).servers
    leaders = [s for s in servers if s.is_leader]
    assert len(leaders) == 1, servers
    leader = next(n for n in cluster if n.addr == leaders[0].rpc_addr)
    return leader, [n for n in cluster if n is not leader]


def committed_values(node):
    response = node.stub.ConsumeBatch(
        log_pb2.ConsumeBatchRequest(from_offset=0, max_records=1000), timeout=RPC_TIMEOUT
    )
    return [(r.offset, r.value) for r in response.records]


def test_every_node_names_the_same_single_leader(cluster):
    seen = set()
    for node in cluster:
        servers = node.stub.GetServers(log_pb2.GetServersRequest(), timeout=RPC_TIMEOUT).servers
        assert len(servers) == 3
        assert {s.state for s in servers} == {"alive"}
        seen.add(tuple(s.id for s in servers if s.is_leader))
    assert len(seen) == 1 and len(next(iter(seen))) == 1, seen


def test_produce_through_a_follower_is_forwarded_and_read_everywhere(cluster):
    _, followers = leader_and_followers(cluster)
    follower = followers[0]
    first = follower.produce(b"one")
    batch = follower.stub.ProduceBatch(
        log_pb2.ProduceBatchRequest(records=[log_pb2.Record(value=v) for v in (b"two", b"three")]),
        timeout=RPC_TIMEOUT,
    )
    assert (first, batch.base_offset, batch.count) == (0, 1, 2)
    want = [(0, b"one"), (1, b"two"), (2, b"three")]
    for node in cluster:
        # A follower may apply a moment after the leader acknowledged.
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while committed_values(node) != want and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        assert committed_values(node) == want, node.addr


def test_a_followers_consume_stream_follows_the_leaders_commits(cluster):
    leader, followers = leader_and_followers(cluster)
    stream = followers[1].stub.ConsumeStream(log_pb2.ConsumeRequest(offset=0), timeout=RPC_TIMEOUT)
    values = [f"f{i}".encode() for i in range(FOLLOW_RECORDS)]
    for value in values:
        leader.produce(value)
    got = []
    for response in stream:
        got.append((response.record.offset, response.record.value))
        if len(got) == FOLLOW_RECORDS:
            break
    stream.cancel()
    assert got == list(enumerate(values))


def test_a_produce_stream_on_a_follower_acks_in_order(cluster):
    _, followers = leader_and_followers(cluster)
    requests = (log_pb2.ProduceRequest(record=log_pb2.Record(value=f"s{i}".encode())) for i in range(20))
    offsets = [r.offset for r in followers[0].stub.ProduceStream(requests, timeout=RPC_TIMEOUT)]
    assert offsets == list(range(20))
