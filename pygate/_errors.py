"""The one error tree of pygate.

```
PygateError
├── EngineError                 the policy engine could not decide
│   ├── EngineUnavailable       connection refused / dropped, OPA not running
│   ├── EngineTimeout           no answer within the configured timeout
│   ├── BadEngineResponse       HTTP error, not JSON, or a result that breaks the contract
│   └── UndefinedDecision       HTTP 200 without a ``result`` key (no such rule / undefined)
├── InputError                  the output, user or context cannot be gated (names the field)
├── PolicyDataError             a rules-as-data policy is malformed (names policy and field)
├── AuditError                  the audit log could not be written or read
├── ApprovalError               an approval cannot be found, decided or used as asked
├── ConfigError                 settings, paths or the OPA binary are wrong
├── PublishError                a bundle could not be built or signed, or OPA refused a push
├── DispatchError               an allowed decision's actions cannot be run as decided
└── Refused                     raised by ``Gate.execute`` / ``guard`` when the gate says no
```

Engine errors never reach a caller of ``Gate.evaluate``: they become a fail-closed
Decision (``fallback=True``) in exactly one place, ``pygate._core.fallback_decision``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pygate._models import Decision


class PygateError(Exception):
    """Base class of every error pygate raises."""


class EngineError(PygateError):
    """The policy engine could not produce a decision.

    Attributes:
        policy_path: the OPA rule that was queried, e.g. ``pygate/gate/decision``.
    """

    def __init__(self, message: str, *, policy_path: str = "") -> None:
        super().__init__(message)
        self.policy_path = policy_path


class EngineUnavailable(EngineError):
    """OPA refused or dropped the connection."""


class EngineTimeout(EngineError):
    """OPA did not answer within the configured timeout."""


class BadEngineResponse(EngineError):
    """OPA answered with an HTTP error, non-JSON, or a result that breaks the contract."""


class UndefinedDecision(EngineError):
    """OPA answered 200 without a ``result``: the decision rule is undefined or missing."""


class InputError(PygateError):
    """The document to gate is unusable; ``field`` names the offending field.

    Attributes:
        field: dotted path of the bad field, e.g. ``output.amount`` or ``user.id``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PolicyDataError(PygateError):
    """A rules-as-data policy is malformed.

    Attributes:
        policy_id: the policy's id (or its index when it has none).
        field: the offending field inside the policy, e.g. ``conditions[1].op``.
    """

    def __init__(self, policy_id: str, field: str, problem: str) -> None:
        super().__init__(f"policy {policy_id}: {field}: {problem}")
        self.policy_id = policy_id
        self.field = field
        self.problem = problem


class AuditError(PygateError):
    """The audit log could not be written, read or verified."""


class ApprovalError(PygateError):
    """An approval request is unknown, already decided, expired, or the request is invalid."""


class ConfigError(PygateError):
    """Settings are invalid, or a required tool (the OPA binary) is missing."""


class PublishError(PygateError):
    """A policy could not be published: bundle build, signing, ``opa test`` or a live push.

    Attributes:
        step: what failed, e.g. ``opa test``, ``opa build``, ``push``.
    """

    def __init__(self, step: str, problem: str) -> None:
        super().__init__(f"{step}: {problem}")
        self.step = step
        self.problem = problem


class DispatchError(PygateError):
    """The decided actions cannot be run as decided: nothing was run.

    Raised by ``dispatch``/``guard`` when a decision holds no runnable action, an action
    with no registered callable, or arguments that do not fit the callable.
    """


class Refused(PygateError):
    """Raised by ``Gate.execute`` and ``Gate.guard`` when the action is not allowed.

    Attributes:
        decision: the refusal, already audited.
    """

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"refused by {decision.policy_id}: {decision.reason}")
        self.decision = decision
