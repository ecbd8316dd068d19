"""Packaging for fazt: the kernel, the QuickJS bridge and the realtime plugin.

Tool settings (ruff, mypy, pytest, import-linter) live in pyproject.toml.

Version ranges are the ones we test: the lowest of each is installed and tested
by ``scripts/test-lowest`` (uv's ``--resolution lowest-direct``), the newest by
``scripts/test``. An upper bound stops at the next release line we have not run,
where fazt relies on a library's internals or its exact behaviour.
"""

from setuptools import find_packages, setup

TEST_REQUIREMENTS = [
    "pytest>=8.0,<10",
    "pytest-timeout>=2.3,<3",
    "hypothesis>=6.100,<7",
    # The tests' client passes max_queue=None, which websockets.asyncio takes from 14.1.
    "websockets>=14.1,<18",
    # Redis.from_pool (the backplane's pool) appeared in 5.0.1; with 5.0.1 a Redis
    # restart is sometimes reported twice (tests/realtime/backplane), not from 5.0.2.
    "redis>=5.0.2,<9",
    # Tested against Debian's chromium 156 (executable_path, no `playwright install`).
    "playwright>=1.65,<1.66",
    # The JS bridge's plain hand-offs on a loop without a selector are tested on uvloop.
    "uvloop>=0.19,<1",
    # Lint and type results change between releases: the versions the code is checked with.
    "ruff>=0.17,<0.18",
    "mypy>=2.4,<3",
    # acyclic_siblings and the layers syntax used in pyproject.toml.
    "import-linter>=2.16,<3",
    "types-setuptools",
    "types-jsonschema",
]

setup(
    name="fazt",
    version="0.1.0",
    description="A personal-cloud kernel on Tornado with sandboxed JS apps and realtime pub/sub",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # fazt.realtime.static (the built SDK) and fazt.ops.dashboard (the admin page) hold
    # only data, so they are listed by name.
    packages=[
        *find_packages(include=["fazt", "fazt.*"]),
        "fazt.realtime.static",
        "fazt.ops.dashboard",
    ],
    include_package_data=True,
    package_data={
        "fazt": ["py.typed", "**/*.json", "**/*.js", "**/*.map", "**/*.d.ts", "**/*.html", "**/*.css"]
    },
    install_requires=[
        # 6.4 is Debian 13's; fazt reaches into WebSocket internals (one seam, pinned
        # by tests), so a new major release must be tested first.
        "tornado>=6.4,<7",
        # quickjs-ng: maintained engine, one abi3 wheel for CPython 3.10+. The bridge
        # relies on the wrapper's behaviour (error texts, limits, threads), which can
        # change in any release: each new one is tested before the bound moves.
        # Below 0.17: syntax errors give other columns (0.12-0.15), and a memory bomb
        # held by a global reads as a promise that never settles (0.16).
        "quickjs-ng>=0.17.0.1,<0.18",
        "pyjwt[crypto]>=2.8,<3",
        "jsonschema>=4.18,<5",
        # Metrics for the admin listener (fazt.metrics, fazt.ops). 0.20 is the lowest
        # release tested (scripts/test-lowest); fazt uses only the stable core API.
        "prometheus-client>=0.20,<1",
    ],
    extras_require={
        "redis": ["redis>=5.0.2,<9"],
        "test": TEST_REQUIREMENTS,
        # bench/: the peers measured against fazt, the fast load client, the chart, the profiler.
        "bench": [
            "websockets>=13.0",
            "python-socketio>=5.11",
            "aiohttp>=3.9",
            "uvloop>=0.19",
            "orjson>=3.9",
            "matplotlib>=3.8",
            "py-spy>=0.3.14",
        ],
    },
    entry_points={
        "console_scripts": ["fazt=fazt.cli:main"],
        "fazt.plugins": [
            "realtime=fazt.realtime.plugin:RealtimePlugin",
            "webhook=fazt.ops.webhook:WebhookPlugin",
        ],
    },
)
