"""Septum analysis."""
