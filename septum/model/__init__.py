"""The device model: schema, loader with located errors, and JSON Schema export."""

from .errors import Location, ModelError, ModelIssue
from .loader import load, load_model, loads
from .schema import (
    CRITICALITY_RANK,
    Action,
    Channel,
    Component,
    Device,
    Interface,
    MessageField,
    Model,
    Partition,
    Role,
    json_schema,
)
from .source import SourceMap

__all__ = [
    "CRITICALITY_RANK",
    "Action",
    "Channel",
    "Component",
    "Device",
    "Interface",
    "Location",
    "MessageField",
    "Model",
    "ModelError",
    "ModelIssue",
    "Partition",
    "Role",
    "SourceMap",
    "json_schema",
    "load",
    "load_model",
    "loads",
]
