"""Septum runtime."""
