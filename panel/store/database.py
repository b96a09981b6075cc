"""The Store: every read and write of the panel database, one module per area behind this one class.

connection.py  connections and locks (Database: open, migrate, transactions, the writer lock)
runs.py        runs and verdicts (RunStore: begin_run, save_answers, load_run, answered_verdicts, ...)
overrides.py   editors' overrides (OverrideStore: add_override, overrides)
publishing.py  the desk's approvals and publications (PublishingStore: add_approval, add_publication, ...)
votes.py       community votes (VoteStore: journal_votes, add_votes, current_votes, vote_targets)
subscribers.py the newsletter (SubscriberStore: subscribe, confirm, unsubscribe, digest comparisons and sends)
batches.py     batch mode (BatchStore: record_batch, covering_batches, store_lines, failed_tries, ...)
maintainers.py prompt versions and gold labels (MaintainerStore: prompt_versions, add_labels, gold_labels)
versions.py    editors' "ask again" answer versions and picks (VersionStore: versions, add_version, pick_version)
trust.py       juries' and samples' consensus, check flips, labelled answers (TrustStore: save_consensus, ...)
views.py       every view, and the SQL the views share with these reads; migrations.py the tables
"""

from __future__ import annotations

from panel.store.batches import BatchStore
from panel.store.maintainers import MaintainerStore
from panel.store.overrides import OverrideStore
from panel.store.publishing import PublishingStore
from panel.store.runs import RunStore
from panel.store.subscribers import SubscriberStore
from panel.store.trust import TrustStore
from panel.store.versions import VersionStore
from panel.store.votes import VoteStore


class Store(
    RunStore,
    OverrideStore,
    PublishingStore,
    VoteStore,
    MaintainerStore,
    VersionStore,
    SubscriberStore,
    BatchStore,
    TrustStore,
):
    """The panel database: open it with Store(path); every read and write goes through here."""
