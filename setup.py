"""Packaging for fazt: the kernel, the QuickJS bridge and the realtime plugin.

Tool settings (ruff, mypy, pytest) live in pyproject.toml; packaging lives here,
as the design card asks for a setup.py.
"""

from setuptools import find_packages, setup

TEST_REQUIREMENTS = [
    "pytest>=8.0",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "websockets>=13.0",
    "redis>=5.0",
    # Tested against Debian's chromium 156 (executable_path, no `playwright install`).
    "playwright>=1.65,<1.66",
    "ruff>=0.6",
    "mypy>=1.10",
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
    # fazt.realtime.static holds only data (the built SDK), so it is listed by name.
    packages=[*find_packages(include=["fazt", "fazt.*"]), "fazt.realtime.static"],
    include_package_data=True,
    package_data={"fazt": ["py.typed", "**/*.json", "**/*.js", "**/*.map", "**/*.d.ts"]},
    install_requires=[
        "tornado>=6.3",
        # quickjs-ng: maintained engine, one abi3 wheel for CPython 3.10+ (see README).
        "quickjs-ng>=0.10",
        "pyjwt[crypto]>=2.8",
        "jsonschema>=4.18",
        "prometheus-client>=0.20",
    ],
    extras_require={
        "redis": ["redis>=5.0"],
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
        "fazt.plugins": ["realtime=fazt.realtime.plugin:RealtimePlugin"],
    },
)
