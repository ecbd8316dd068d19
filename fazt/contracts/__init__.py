"""The bottom floor: the types and rules that several layers of fazt share.

Everything here is pure (no Tornado, no QuickJS, no I/O) and imports nothing
else from fazt, so the kernel, the JS bridge and the plugins can all depend on
it without depending on each other:

- :mod:`fazt.contracts.app`: ``App``, one hosted app's identity;
- :mod:`fazt.contracts.host_calls`: what a ``fazt.<ns>.<fn>`` host function
  receives and how it rejects, and the namespace names that are taken;
- :mod:`fazt.contracts.js_engine`: what the kernel asks of a JS engine and
  the finished response it gets back;
- :mod:`fazt.contracts.containment`: whether a path lies inside a folder;
- :mod:`fazt.contracts.strict_json`: whether a value is strict UTF-8 JSON with
  finite numbers.
"""
