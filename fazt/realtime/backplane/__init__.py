"""Backplanes connect the hubs of several kernel processes so they act as one.

``base.Backplane`` is the interface; ``memory.MemoryBackplane`` is the default
(one process, or several in-process nodes sharing a ``MemoryBroker`` in tests);
``redis.RedisBackplane`` joins processes and machines through Redis.
"""
