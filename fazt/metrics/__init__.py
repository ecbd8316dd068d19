"""What fazt counts for its operators: the bottom floor under every layer that counts.

The realtime core, the JS bridge and the HTTP edge each count with one-line
calls into this package; the admin listener (``fazt.ops``) exposes the counts
as Prometheus text through ``prometheus-client``. This package knows none of
its callers, so any layer may import it.

- ``realtime``: the realtime counters, plain integers keyed by app uuid,
  touched only on the IOLoop (one increment per publish, never per delivery);
- ``requests``: JS executions and HTTP requests, ``prometheus-client``
  metrics (thread-safe: JS runs on worker threads);
- ``events``: a short, bounded list of recent limit crossings and kicks for
  the dashboard;
- ``exposition``: the switch that turns counting on, and the registry the
  admin listener serves.

Counting is off until the admin listener turns it on (``enable_counting``):
without ``--admin-port`` every call returns at once.
"""
