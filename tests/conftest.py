"""Shared test configuration: in-house pytest-tornado fixtures (see tornado_fixtures)."""

pytest_plugins = ["tests.tornado_fixtures"]
