"""Septum compliance."""
