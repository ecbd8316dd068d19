"""fazt.realtime: WebSocket pub/sub for fazt apps (the ``/_ws`` endpoint and ``fazt.realtime``)."""
