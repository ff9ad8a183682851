"""Partition code of the example neonatal warmer (examples/warmer/model.yaml)."""
