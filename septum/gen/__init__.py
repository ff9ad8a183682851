"""Septum gen."""
