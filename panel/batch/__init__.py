"""Batch mode: a run's missing verdicts as one OpenAI Batch API batch (half price, its own rate limits), or as a
JSONL file for an offline engine (vLLM's run_batch).

jsonl.py    the batch format both ways: request lines (the live body under the verdict's cache key), result lines
            judged by the live rules (ask.reply_text, verdict.parse_verdict)
submit.py   record -> upload -> create, and finding a batch whose create answer was lost (kill -9 safe)
collect.py  stream the output and error files, store each line once (store/batches.py)
draft.py    a run through batches: reviewers, follow-up batches for failed lines, the chair, the pages
probes.py   `panel compare --batch`, `panel check --batch`: every probe run planned up front, its cache filled by batch
offline.py  `panel batch export` / `panel batch import`
"""
