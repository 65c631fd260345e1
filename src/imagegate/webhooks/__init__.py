"""Signed webhooks for task ends: an outbox written with the end, sent with retries.

``tasks.ending.end_task`` calls :func:`outbox.record_end` inside the transaction that ends a
task: when the task has a ``callback_url``, one ``webhook_deliveries`` row. Nothing is lost
between the end and the send, and a rolled-back end sends nothing. A task without a callback
costs nothing there: ``imagegate listen`` (:mod:`listen`) tails the ended task rows themselves.

:func:`delivery.deliver_due` is the whole sender: it claims due rows with a lease, POSTs the
task view through the URL guard, signed per Standard Webhooks with the account's secret
(``secrets``), records every attempt, and schedules the next with capped, jittered
exponential back-off. It is safe in several processes at once; the in-process queue runs
it every ``webhook_poll_s`` today.
"""
