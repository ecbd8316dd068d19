"""The HTTP edge: where connections enter the kernel.

``server`` (the kernel's ``HTTPServer``: timeouts, the cap on connections that
have not finished their headers or upgrade), ``accept`` (the accept loop that
pauses instead of spinning when descriptors run out), ``fd_limits`` (raise the
open-file limit at start and fit the realtime connection limit into it),
``redaction`` and ``access_log`` (no ``token`` query value ever reaches a log
line). ``docs/kernel.md`` ("The HTTP edge") describes the behaviour.
"""
