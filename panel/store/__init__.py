"""DuckDB: the one owner of the connection and of all SQL.

Concurrency design. DuckDB lets one process open a file read-write and then refuses every other
process, readers included. So:

- One writer: a run holds a lock file (`<db>.lock`, flock) for its whole life; a second `panel`
  process that wants to write is refused at once with a one-line StoreError, never a hang.
- Short opens: every write opens the file, commits one transaction and closes it again (~27 ms), so
  analysts' read-only connections from other processes get in between and only retry briefly when
  they meet a write in progress.
- Batched answers: a run does not open the file once per verdict. AnswerWriter, a background thread,
  takes answers from the event loop through a queue and writes them in batches (every BATCH_SIZE
  answers or BATCH_INTERVAL_S seconds, whichever comes first) to the journal, and folds the journal into
  the file every FOLD_INTERVAL_S and at the end of the run. The event loop never waits on the database.
- The run journal (journal.py; run_writes.py builds and folds its records, journal_reads.py reads them
  before they fold): every write of a run (its record, answer batches, its status, the chair's items) is
  appended to `<db>.journal.jsonl` and fsync'd first, then folded into DuckDB in one transaction if no
  reader holds the file; otherwise it waits there, and the next read-write transaction of any panel
  process folds it. So a reader can delay a run's answers, never drop them. The writing process reads
  through the journal (answered_verdicts, load_run); other processes' readers see answers once folded.
- Votes: `panel serve` journals each batch of votes (vote_writes.py) and acknowledges them once fsync'd,
  folding the journal into DuckDB behind every couple of seconds (community.VoteWriter), so a vote never
  waits for DuckDB, nor for a reader in another process.
- Crash safety: kill -9 loses at most the answers not yet journaled (under BATCH_INTERVAL_S seconds of
  work, asked again on resume) and never a journaled one. A record's id goes into `journal_folds` in
  the transaction that folds it, so folding again after a crash adds nothing; UNIQUE (cache_key,
  generation) and the one-writer lock do the rest: a rerun asks only for keys with no valid current verdict.
"""

from panel.store.connection import LOCK_RETRY_S, connect
from panel.store.database import Store
from panel.store.records import (
    AnsweredVerdict,
    AnswerVersion,
    Approval,
    GoldLabel,
    MemberVote,
    Override,
    PromptVersion,
    Publication,
    StoredConsensus,
    StoredRun,
    StoredVerdict,
    VoteEvent,
    VoteTarget,
)
from panel.store.trust import CheckFlips, ConsensusRow, CorrectedRate
from panel.store.writer import BATCH_INTERVAL_S, BATCH_SIZE, FOLD_WAIT_S, SETTLE_WAIT_S, AnswerWriter

__all__ = [
    "LOCK_RETRY_S",
    "connect",
    "Store",
    "AnsweredVerdict",
    "AnswerVersion",
    "Approval",
    "GoldLabel",
    "MemberVote",
    "Override",
    "PromptVersion",
    "Publication",
    "StoredConsensus",
    "StoredRun",
    "StoredVerdict",
    "CheckFlips",
    "ConsensusRow",
    "CorrectedRate",
    "VoteEvent",
    "VoteTarget",
    "BATCH_INTERVAL_S",
    "BATCH_SIZE",
    "FOLD_WAIT_S",
    "SETTLE_WAIT_S",
    "AnswerWriter",
]
