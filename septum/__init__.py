"""Septum: model-driven separation architecture for connected medical devices."""

__version__ = "0.1.0"
