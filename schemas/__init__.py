"""The event contract: typed models, the published JSON Schema files and the parser."""

from schemas.parse import parse
from schemas.reject import Reason, Reject

__all__ = ["parse", "Reason", "Reject"]
