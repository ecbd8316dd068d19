"""``App`` as the kernel's modules and plugins import it (defined in ``fazt.contracts.app``)."""

from fazt.contracts.app import App

__all__ = ["App"]
