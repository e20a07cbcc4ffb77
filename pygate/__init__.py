"""pygate: refuse unsafe AI actions before they run, with policies evaluated by OPA."""

import logging as _logging

from pygate._dispatch import adispatch, dispatch
from pygate._errors import (
    ApprovalError,
    AuditError,
    BadEngineResponse,
    ConfigError,
    DispatchError,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    InputError,
    PolicyDataError,
    PublishError,
    PygateError,
    Refused,
    UndefinedDecision,
)
from pygate._gate import AsyncGate, Gate
from pygate._models import AuditRecord, CanonicalAction, Condition, Decision, Refusal
from pygate._settings import Settings
from pygate.audit import AuditLog, SqliteAuditLog, Summary, VerifyResult, open_audit
from pygate.audit._approvals import Approval, Approvals
from pygate.audit._postgres import PostgresAuditLog
from pygate.engine._opa_process import LocalOpa, find_opa_binary
from pygate.policy._bundle import Bundle, build_bundle, generate_keys
from pygate.policy._policy_data import (
    DeclarativePolicy,
    load_policy_data,
    validate_policies,
    validate_policy,
)

__all__ = [
    "Approval",
    "ApprovalError",
    "Approvals",
    "AsyncGate",
    "AuditError",
    "AuditLog",
    "AuditRecord",
    "BadEngineResponse",
    "Bundle",
    "CanonicalAction",
    "Condition",
    "ConfigError",
    "Decision",
    "DeclarativePolicy",
    "DispatchError",
    "EngineError",
    "EngineTimeout",
    "EngineUnavailable",
    "Gate",
    "InputError",
    "LocalOpa",
    "PolicyDataError",
    "PostgresAuditLog",
    "PublishError",
    "PygateError",
    "Refusal",
    "Refused",
    "Settings",
    "SqliteAuditLog",
    "Summary",
    "UndefinedDecision",
    "VerifyResult",
    "adispatch",
    "build_bundle",
    "dispatch",
    "find_opa_binary",
    "generate_keys",
    "load_policy_data",
    "open_audit",
    "validate_policies",
    "validate_policy",
]

# A library stays quiet unless the application configures logging.
_logging.getLogger("pygate").addHandler(_logging.NullHandler())
