"""The loss check itself, without Docker: it passes a correct history and
reports each kind of violation (the negative controls the container tests
rely on, since a check that cannot fail proves nothing)."""

from history import History, check_history


def correct_history() -> tuple[History, dict[str, list[tuple[int, str]]]]:
    history = History(acked={"a": 0, "b": 1, "d": 3}, unknown={"c", "e"})
    # "c" (outcome unknown) was committed, "e" was not: both are correct.
    log = [(0, "a"), (1, "b"), (2, "c"), (3, "d")]
    return history, {"n1": list(log), "n2": list(log), "n3": list(log)}


def test_a_correct_history_has_no_violation():
    history, replicas = correct_history()
    assert check_history(history, replicas) == []


def test_an_acknowledged_value_missing_from_one_replica_is_reported_lost():
    history, replicas = correct_history()
    replicas["n2"] = [(0, "a"), (1, "b"), (2, "c")]
    problems = check_history(history, replicas)
    assert any("n2: acknowledged 'd' (offset 3) is lost" in p for p in problems), problems
    assert any("n2 differs from n1" in p for p in problems), problems


def test_an_acknowledged_value_removed_everywhere_is_reported_lost():
    history, replicas = correct_history()
    log = [(0, "a"), (1, "c"), (2, "d")]
    problems = check_history(history, {"n1": log, "n2": log, "n3": log})
    assert any("acknowledged 'b' (offset 1) is lost" in p for p in problems), problems


def test_a_value_at_another_offset_than_acked_is_reported():
    history, _ = correct_history()
    log = [(0, "b"), (1, "a"), (2, "c"), (3, "d")]
    problems = check_history(history, {"n1": log})
    assert any("'a' was acked at offset 0 but is at 1" in p for p in problems), problems


def test_a_duplicate_and_an_invented_value_are_reported():
    history, _ = correct_history()
    log = [(0, "a"), (1, "b"), (2, "a"), (3, "d"), (4, "zzz")]
    problems = check_history(history, {"n1": log})
    assert any("'a' appears twice" in p for p in problems), problems
    assert any("'zzz' at offset 4 was never produced" in p for p in problems), problems


def test_a_gap_in_offsets_is_reported():
    history, _ = correct_history()
    log = [(0, "a"), (1, "b"), (3, "d")]
    problems = check_history(history, {"n1": log})
    assert any("not dense" in p for p in problems), problems


def test_no_replica_read_is_a_violation():
    history, _ = correct_history()
    assert check_history(history, {}) == ["no replica was read"]
