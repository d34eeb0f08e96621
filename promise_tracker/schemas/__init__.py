"""The event contract: typed models, the published JSON Schema files and the parser."""

from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reason, Reject

__all__ = ["parse", "Reason", "Reject"]
