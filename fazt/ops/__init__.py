"""Operating fazt: the admin listener, its API and dashboard, the ``fazt admin`` CLI.

- ``server``: the admin listener (``--admin-port``): ``/metrics``, ``/healthz``,
  ``/readyz``, the admin API under ``/admin/`` and the dashboard page;
- ``backend``: what the admin API asks of a running kernel (cluster-wide
  through the realtime registry) and the gauges computed at scrape time;
- ``workers``: with ``--workers N``, how the worker that answers an admin
  request gathers the others' metrics, readiness and events;
- ``exposition``: merging several workers' Prometheus texts;
- ``admin_cli``: ``fazt admin``; ``json_log``: ``--log-format json``;
- ``webhook``: an example notification plugin that forwards to a webhook URL.

What the hot paths count lives below every layer, in ``fazt.metrics``.
``docs/operations.md`` is the user-facing description.
"""
