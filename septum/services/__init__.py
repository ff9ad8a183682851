"""Septum services."""
