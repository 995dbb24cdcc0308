"""The ledger of events queued from files: what it remembers, for how long, across reopen."""

from __future__ import annotations

from pathlib import Path

from relay._spool.ledger import RETENTION_S, Ledger


def test_unseen_keys_until_added_and_across_a_reopen(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, now=1000.0)
    keys = [bytes([i]) * 16 for i in range(3)]
    assert ledger.unseen([*keys, keys[0]]) == [True, True, True, False]  # repeats within a call
    ledger.add(keys[:2], now=1000.0)
    assert ledger.unseen(keys) == [False, False, True]
    ledger.close()
    reopened = Ledger.open(tmp_path, now=1000.0)  # durable
    assert reopened.unseen(keys) == [False, False, True]
    reopened.close()


def test_keys_are_forgotten_after_the_retention(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, now=1000.0)
    ledger.add([b"a" * 16], now=1000.0)
    ledger.add([b"b" * 16], now=1000.0 + RETENTION_S)
    ledger.close()
    later = Ledger.open(tmp_path, now=1000.0 + RETENTION_S + 1)
    assert later.unseen([b"a" * 16, b"b" * 16]) == [True, False]
    later.close()


def test_many_keys_at_once(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    keys = [i.to_bytes(16, "big") for i in range(2000)]  # more than one IN (...) chunk
    ledger.add(keys[::2])
    assert ledger.unseen(keys) == [i % 2 == 1 for i in range(2000)]
    ledger.close()
