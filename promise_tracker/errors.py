"""Every error a user acts on, in one place: a base class and the families to tell apart.

Each message is one line that names the field, the setting or the address, and the fix.
``promise-tracker`` prints it after the command's name and exits with the family's code
(README.md, "Exit codes"); code that calls the library catches the family it can handle,
e.g. ``StoreUnavailable`` (retry later) apart from ``StoreError`` (the request is wrong).

    PromiseTrackerError               exit 1
    ├── UsageError                    exit 2   unusable arguments, unreadable input files
    │   └── SettingsError             exit 2   a setting that cannot be used
    │       ├── KafkaAuthError                 the brokers refused our credentials or TLS
    │       ├── MetricsPortTaken               the metrics port is in use
    │       ├── CalendarError                  the business calendars file cannot be used
    │       └── ObjectivesError                the objectives file (OpenSLO) cannot be used
    ├── BadInput                      exit 3   an event that breaks the contract (SDK, emit)
    ├── BrokerError                   exit 1   Kafka: the pipeline's side of it
    │   ├── KafkaUnreachable                   no broker accepts connections
    │   ├── TopicError                         a topic is missing or has the wrong shape
    │   ├── BrokerRefused                      the broker did not take a batch's records
    │   └── DeliveryFailed                     events an emitter could not write
    └── StoreError                    exit 1   ClickHouse refused a request (retry won't help)
        └── StoreUnavailable          exit 1   ClickHouse cannot be reached now (retry later)
"""

from __future__ import annotations


class PromiseTrackerError(Exception):
    """Base of every error promise-tracker raises for a user to act on."""

    exit_code = 1


class UsageError(PromiseTrackerError):
    """Unusable arguments or input files: fix the command line."""

    exit_code = 2


class SettingsError(UsageError, ValueError):
    """A setting that cannot be used; the message names the variable and the fix."""


class KafkaAuthError(SettingsError):
    """The brokers refused our credentials (SASL) or our TLS setup: retrying will not help."""


class MetricsPortTaken(SettingsError):
    """The metrics port is in use (another worker or sink on this host, most likely)."""


class CalendarError(SettingsError):
    """The business calendars file (SPEC 2.1) cannot be used; the message names the file, the
    calendar and the field, and the fix."""


class ObjectivesError(SettingsError):
    """The objectives file (OpenSLO v1 SLO documents, docs/objectives.md) cannot be used; the
    message has one line per problem, each naming the file, the document, the field and the
    fix. ``problems`` holds those lines."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class BadInput(PromiseTrackerError, ValueError):
    """An event that breaks the contract; ``reason`` is its reject reason code."""

    exit_code = 3

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class BrokerError(PromiseTrackerError):
    """Kafka could not be used as the pipeline needs it."""


class KafkaUnreachable(BrokerError):
    """No broker of the bootstrap list accepts connections."""


class TopicError(BrokerError):
    """A topic is missing, or exists with a shape the worker cannot use."""


class BrokerRefused(BrokerError):
    """The broker did not take a batch's records: its offsets must not be committed."""


class DeliveryFailed(BrokerError):
    """Events an emitter accepted but Kafka did not acknowledge."""


class StoreError(PromiseTrackerError, RuntimeError):
    """The store refused a request that will not succeed on retry."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now, or is overloaded: retry later."""
