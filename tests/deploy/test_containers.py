"""A three-node cluster in containers, from the image and deploy/compose.yaml.

Each test starts its own cluster (conftest.cluster), drives it from the host
over HTTP/JSON on the ports Compose publishes, breaks it with the Docker
CLI (kill, network disconnect, stop/start), then reads every record back
from every replica and runs the one loss check (history.check_history,
whose negative controls are in test_history.py). Conditions are polled
with the deadlines below, never slept for.
"""

from __future__ import annotations

import time

from compose_cluster import NODES, Producer, wait_for
from history import History, check_history

# From a leader's SIGKILL to the first acknowledged write through another
# node: followers elect after 1-2 s without heartbeats (100 ms ticks,
# pre-vote), then a follower's forward finds the new leader. 15 s is that
# with room for a loaded 2-core CI machine; a write path that never
# recovers still fails it.
ELECTION_BOUND_S = 15

# From `docker stop` returning (the node handed over leadership before it
# exited) to one leader agreed by the remaining nodes: "within seconds".
LEADER_AFTER_STOP_S = 10

# Compose's stop_grace_period and the rolling restart's `docker stop -t`:
# leadership transfer (<= 3 s) plus the drain (<= 10 s) fit well inside it.
STOP_GRACE_S = 30

# A restarted or reconnected node replays what it missed from the leader; at
# these volumes (hundreds of records) that takes well under a second, and a
# restart also waits for gossip and the first heartbeat.
CATCH_UP_S = 60

# How long the network cut lasts, counted in records committed without the
# cut-off node (time would be a sleep; records are a condition).
RECORDS_WHILE_CUT = 100

# Acknowledged writes wanted in each phase, so every phase is shown to make
# progress rather than assumed to.
ACKS_PER_PHASE = 20


def assert_no_loss(cluster, history: History) -> dict[str, list[tuple[int, str]]]:
    replicas = cluster.wait_same_log(history, CATCH_UP_S)
    problems = check_history(history, replicas)
    assert not problems, "\n".join(problems[:20])
    assert history.acked, "the test acknowledged nothing, so it checked nothing"
    return replicas


def produce_through_each_node(cluster, prefix: str, history: History, count: int = 10) -> None:
    for index in range(count):
        for node in NODES:
            value = f"{prefix}-{node}-{index}"
            history.acked[value] = cluster.produce(node, value)


def test_killing_the_leader_loses_no_acknowledged_record(cluster):
    """Goal: a leader's SIGKILL costs an election, not a record. Method:
    writes through every node; a producer through the two followers; `docker
    kill` of the leader; writes must resume within ELECTION_BOUND_S; the
    dead node is started again and must catch up; every replica is read back
    and checked."""
    history = History()
    produce_through_each_node(cluster, "before", history)
    leader = cluster.wait_leader(NODES, ELECTION_BOUND_S)
    followers = [n for n in NODES if n != leader]

    with Producer(cluster, "during", lambda: followers) as producer:
        wait_for("acks before the kill", lambda: producer.acks() >= ACKS_PER_PHASE, ELECTION_BOUND_S)
        cluster.kill(leader)  # returns once the process is gone
        killed_at = time.monotonic()
        wait_for(
            f"a write acknowledged through {followers} after killing {leader}",
            lambda: producer.first_ack_sent_after(killed_at),
            ELECTION_BOUND_S,
        )
        resumed_after = producer.first_ack_sent_after(killed_at) - killed_at
        new_leader = cluster.wait_leader(followers, ELECTION_BOUND_S)
        assert new_leader != leader
        wait_for("acks after the kill", lambda: producer.acks_since(killed_at) >= ACKS_PER_PHASE, ELECTION_BOUND_S)
    history.merge(producer.history)
    print(f"writes resumed {resumed_after:.2f} s after killing leader {leader}; new leader {new_leader}")

    cluster.start(leader)
    cluster.wait_ready(NODES, CATCH_UP_S)
    produce_through_each_node(cluster, "after", history, count=3)
    assert_no_loss(cluster, history)


def test_a_disconnected_node_catches_up_after_reconnecting(cluster):
    """Goal: a node cut off from the network misses nothing for good.
    Method: `docker network disconnect` a follower, commit
    RECORDS_WHILE_CUT records through the other two, check the cut node
    cannot be reached meanwhile, reconnect it with its address and name, and
    require every replica to hold the same log with no acked record lost."""
    history = History()
    produce_through_each_node(cluster, "before", history, count=5)
    leader = cluster.wait_leader(NODES, ELECTION_BOUND_S)
    cut = next(n for n in NODES if n != leader)
    others = [n for n in NODES if n != cut]
    behind = cluster.next_offset(cut)

    cluster.disconnect(cut)
    try:
        for index in range(RECORDS_WHILE_CUT):
            value = f"cut-{index}"
            history.acked[value] = cluster.produce(others[index % 2], value)
        # The host reaches a node only through its published port, which
        # goes over the network it was cut from.
        try:
            cluster.next_offset(cut)
            reachable = True
        except Exception:  # noqa: BLE001 - unreachable is what we want
            reachable = False
        assert not reachable, f"{cut} still answered while disconnected"
    finally:
        cluster.connect(cut)

    assert max(history.acked.values()) + 1 > behind + RECORDS_WHILE_CUT - 1
    wait_for(
        f"{cut} to catch up",
        lambda: cluster.next_offset(cut) == cluster.next_offset(leader),
        CATCH_UP_S,
    )
    produce_through_each_node(cluster, "after", history, count=3)
    assert_no_loss(cluster, history)


def test_a_rolling_restart_with_a_producer_running_loses_nothing(cluster):
    """Goal: what `kubectl rollout restart` does to the StatefulSet, one pod at
    a time, costs no acknowledged record and leaves a leader within seconds.
    Method: a producer writes through all nodes throughout; each node in
    turn gets `docker stop -t 30` (SIGTERM: leadership transfer, drain,
    clean close), must exit 0 before the grace period, a leader must be
    agreed by the other two within LEADER_AFTER_STOP_S and writes must go on;
    then `docker start`, ready again, and its log reopened without recovery."""
    history = History()
    with Producer(cluster, "rolling", lambda: NODES) as producer:
        wait_for("acks before the restarts", lambda: producer.acks() >= ACKS_PER_PHASE, ELECTION_BOUND_S)
        for node in NODES:
            others = [n for n in NODES if n != node]
            took = cluster.stop(node, STOP_GRACE_S)
            stopped_at = time.monotonic()
            assert took < STOP_GRACE_S, f"{node} needed SIGKILL ({took:.1f} s)"
            assert cluster.exit_code(node) == 0, f"{node} did not exit cleanly:\n{cluster.logs(node)[-3000:]}"
            leader = cluster.wait_leader(others, LEADER_AFTER_STOP_S)
            leader_after = time.monotonic() - stopped_at
            wait_for(f"acks with {node} stopped", lambda: producer.acks_since(stopped_at) >= ACKS_PER_PHASE, ELECTION_BOUND_S)
            print(f"{node}: stopped in {took:.1f} s; leader {leader} agreed {leader_after:.2f} s later")

            cluster.start(node)
            cluster.wait_ready(NODES, CATCH_UP_S)
            logs = cluster.logs(node)
            assert "no recovery needed" in logs, f"{node} reopened its log without saying it was clean"
            assert "not closed cleanly" not in logs, f"{node} needed recovery after a graceful stop"
        restarted_at = time.monotonic()
        wait_for("acks after the last restart", lambda: producer.acks_since(restarted_at) >= ACKS_PER_PHASE, ELECTION_BOUND_S)
    history.merge(producer.history)
    print(f"rolling restart: {len(history.acked)} acked, {len(history.unknown)} unknown")
    assert_no_loss(cluster, history)
