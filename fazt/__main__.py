"""``python -m fazt`` is the ``fazt`` command."""

from fazt.cli import main

raise SystemExit(main())
