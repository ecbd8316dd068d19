"""fazt: a personal-cloud kernel that hosts small JS apps, with realtime pub/sub."""

__version__ = "0.1.0"
