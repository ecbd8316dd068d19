"""Backplanes connect the hubs of several kernel processes so they act as one.

Two interfaces, each next to its implementations and each with its own
conformance suite:

* ``bus.Bus``: messages between nodes on channel, app and node topics
  (``bus_memory``, ``bus_redis``);
* ``registry.Registry``: cluster-wide connections, subscriptions and presence,
  with node liveness (``registry_memory``, ``registry_redis``).

``node.Backplane`` pairs one node's bus and registry; ``node.memory_backplane``
is the default and ``node.redis_backplane`` joins processes and machines
through Redis, where ``redis_link.RedisLink`` owns the connections and the one
outage fallback. ``key_safety`` checks the names that go into keys and topics.
"""
