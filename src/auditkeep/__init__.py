"""auditkeep: a self-hostable, tamper-evident audit and event log service."""

__version__ = "0.1.0"
