"""Septum report."""
