"""The operations of AWS's resource model that stepd's config file stands in for.

Machines come from the config file, so creating, updating and deleting them (and their
versions and aliases) is refused with a ValidationException that says how to add one. What
can only be read answers truthfully: a machine has no versions or aliases. Activities, tags
and map runs have modules of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from stepd.api import fields
from stepd.engine.arns import Arns
from stepd.errors import (
    InvalidArn,
    ResourceNotFound,
    ValidationException,
)

FROM_CONFIG: Final = (
    "{operation} is not available: stepd takes its state machines from its config file. "
    'To add one, add a [[machines]] entry (name = "...", definition = "path/to/definition'
    '.asl.json") to stepd.toml and reload the daemon (stepd reload -c stepd.toml, or '
    "systemctl reload stepd); to change one, edit its definition file and reload."
)
_ARN_PARTS: Final = 7  # arn:aws:states:region:account:kind:name


class ConfigOperations:
    """`machine(arn)` is the configured machine's name (or raises StateMachineDoesNotExist or
    InvalidArn); `execution(arn)` finds an execution (or raises ExecutionDoesNotExist)."""

    def __init__(
        self,
        arns: Arns,
        machine: Callable[[str], str],
        execution: Callable[[str], Awaitable[Any]],
    ) -> None:
        self.arns = arns
        self._machine = machine
        self._execution = execution

    def handlers(self) -> dict[str, fields.Handler]:
        refused = {
            name: self._refuse(name, FROM_CONFIG)
            for name in (
                "CreateStateMachine",
                "UpdateStateMachine",
                "DeleteStateMachine",
                "PublishStateMachineVersion",
                "DeleteStateMachineVersion",
                "CreateStateMachineAlias",
                "UpdateStateMachineAlias",
                "DeleteStateMachineAlias",
            )
        }
        return {
            **refused,
            "ListStateMachineVersions": self.list_state_machine_versions,
            "ListStateMachineAliases": self.list_state_machine_aliases,
            "DescribeStateMachineAlias": self.describe_state_machine_alias,
        }

    @staticmethod
    def _refuse(operation: str, template: str) -> fields.Handler:
        async def refuse(_: dict[str, Any]) -> dict[str, Any]:
            raise ValidationException(template.format(operation=operation))

        return refuse

    # -- versions and aliases ----------------------------------------------------------------

    async def list_state_machine_versions(self, body: dict[str, Any]) -> dict[str, Any]:
        self._machine(fields.required_string(body, "stateMachineArn"))
        fields.page_token(body)
        return {"stateMachineVersions": []}

    async def list_state_machine_aliases(self, body: dict[str, Any]) -> dict[str, Any]:
        self._machine(fields.required_string(body, "stateMachineArn"))
        fields.page_token(body)
        return {"stateMachineAliases": []}

    async def describe_state_machine_alias(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = fields.required_string(body, "stateMachineAliasArn")
        parts = arn.split(":")
        if len(parts) != _ARN_PARTS + 1 or parts[:3] != ["arn", "aws", "states"]:
            raise InvalidArn(f"Invalid Arn: '{arn[:256]}'")
        raise ResourceNotFound(
            f"Resource not found: '{arn[:256]}' (stepd's state machines have no aliases)"
        )
