"""`panel serve` acknowledges a vote once it is in the journal: a reader holding the database, or kill -9, loses none."""

from __future__ import annotations

import threading
from pathlib import Path


from panel.store.journal import Journal

def test_an_append_while_a_fold_commits_does_not_wait_for_it_and_is_kept_for_the_next(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "panel.duckdb")
    journal.append({"id": "folded", "kind": "votes", "run_id": "r", "votes": []})
    appended = threading.Event()
    with journal.folding() as records:  # the block stands for the database's transaction and commit
        assert [record["id"] for record in records] == ["folded"]
        late = threading.Thread(target=lambda: (journal.append({"id": "late", "kind": "votes", "run_id": "r",
                                                                "votes": []}), appended.set()))
        late.start()
        # The old journal held its lock through the commit: a vote's acknowledgement waited for DuckDB.
        assert appended.wait(timeout=5), "the append waited for the fold"
    late.join()
    assert [record["id"] for record in journal.pending()] == ["late"]
    journal.append({"id": "next", "kind": "votes", "run_id": "r", "votes": []})
    assert [record["id"] for record in journal.pending()] == ["late", "next"]
