"""The one loss check of the container tests.

A producer gives every attempt a value of its own and never retries a value,
so each value is written at most once by the client. An attempt is "acked"
when the node answered with an offset; any other outcome (an error, a
timeout, a reset connection) is "unknown": the record may or may not have
been committed, and both are correct.

check_history() compares that history with what every replica returns when
read from offset 0 and lists every violation in words. No violation means:
  - every replica holds the same sequence of records (offsets 0..n-1, dense);
  - every acked value is present exactly once, at the offset its ack named;
  - no value appears that was never attempted, and none appears twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    """What a producer sent and what it was told.

    acked: value -> offset the node acknowledged it at.
    unknown: values whose attempt failed or timed out (outcome unknown).
    """

    acked: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)

    def attempted(self) -> set[str]:
        return set(self.acked) | self.unknown

    def merge(self, other: "History") -> None:
        self.acked.update(other.acked)
        self.unknown |= other.unknown


def check_history(history: History, replicas: dict[str, list[tuple[int, str]]]) -> list[str]:
    """Every violation of the properties above, one line each; [] if none.

    replicas: node name -> the (offset, value) records it returned, in order.
    """
    problems: list[str] = []
    if not replicas:
        return ["no replica was read"]
    attempted = history.attempted()
    for name, records in sorted(replicas.items()):
        offsets = [offset for offset, _ in records]
        if offsets != list(range(len(records))):
            problems.append(f"{name}: offsets are not dense from 0 (first gap near {_first_gap(offsets)})")
        seen: dict[str, int] = {}
        for offset, value in records:
            if value in seen:
                problems.append(f"{name}: {value!r} appears twice (offsets {seen[value]} and {offset})")
            seen[value] = offset
            if value not in attempted:
                problems.append(f"{name}: {value!r} at offset {offset} was never produced")
        for value, offset in sorted(history.acked.items(), key=lambda item: item[1]):
            if value not in seen:
                problems.append(f"{name}: acknowledged {value!r} (offset {offset}) is lost")
            elif seen[value] != offset:
                problems.append(f"{name}: acknowledged {value!r} was acked at offset {offset} but is at {seen[value]}")
    names = sorted(replicas)
    reference = replicas[names[0]]
    for name in names[1:]:
        if replicas[name] != reference:
            problems.append(
                f"{name} differs from {names[0]}: {len(replicas[name])} vs {len(reference)} records, "
                f"first difference at offset {_first_difference(replicas[name], reference)}"
            )
    return problems


def _first_gap(offsets: list[int]) -> int:
    for expected, offset in enumerate(offsets):
        if offset != expected:
            return expected
    return len(offsets)


def _first_difference(left: list[tuple[int, str]], right: list[tuple[int, str]]) -> int:
    for index, (a, b) in enumerate(zip(left, right)):
        if a != b:
            return index
    return min(len(left), len(right))
