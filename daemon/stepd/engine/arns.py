"""Names and ARNs as AWS spells them."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass

from stepd.errors import InvalidArn, InvalidName

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
ROLE_ARN = "arn:aws:iam::{account}:role/stepd"  # the role every execution reports
MAX_NAME_LENGTH = 80
MAX_LABEL_LENGTH = 40  # a Map state's Label
MAX_ARN_SHOWN = 256  # characters of a bad ARN repeated in an error message
# AWS: no whitespace, brackets < > { } [ ], wildcards ? *, special characters
# " # % \ ^ | ~ ` $ & , ; : /, control characters (U+0000-001F, U+007F-009F) or surrogates.
_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def check_name(name: str, what: str = "execution") -> None:
    """Raise InvalidName unless `name` is a valid AWS execution or state machine name."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidName(f"Invalid Name: '{name}' ({what} names are 1 to 80 characters)")
    bad = _FORBIDDEN.search(name)
    if bad is not None:
        raise InvalidName(f"Invalid Name: '{name}' ({what} names may not contain {bad.group()!r})")


@functools.lru_cache(maxsize=1024)  # asked for each state's context object
def role_arn(arn: str) -> str:
    """The role ARN reported for executions of the account the ARN `arn` belongs to."""
    parts = arn.split(":")
    return ROLE_ARN.format(account=parts[4] if len(parts) > 4 else DEFAULT_ACCOUNT)


@dataclass(frozen=True, kw_only=True)
class Arns:
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT

    def state_machine(self, machine: str) -> str:
        return f"arn:aws:states:{self.region}:{self.account}:stateMachine:{machine}"

    def execution(self, machine: str, name: str) -> str:
        return f"arn:aws:states:{self.region}:{self.account}:execution:{machine}:{name}"

    @staticmethod
    def machine_of(arn_or_name: str) -> str:
        """The machine name in a state machine ARN; a bare name is accepted as is."""
        if not arn_or_name.startswith("arn:"):
            return _check_part(arn_or_name, arn_or_name)
        parts = arn_or_name.split(":")
        if len(parts) != 7 or parts[2] != "states" or parts[5] != "stateMachine":
            raise InvalidArn(f"Invalid Arn: '{_shown(arn_or_name)}'")
        return _check_part(parts[6], arn_or_name)

    @staticmethod
    def execution_of(arn: str) -> tuple[str, str]:
        """(machine, name) of an execution ARN."""
        parts = arn.split(":")
        if len(parts) != 8 or parts[0] != "arn" or parts[2] != "states" or parts[5] != "execution":
            raise InvalidArn(f"Invalid Arn: '{_shown(arn)}'")
        return _check_part(parts[6], arn), _check_part(parts[7], arn)

    @staticmethod
    def map_run_of(arn: str) -> tuple[str, str, int] | None:
        """(machine, execution name, id of its MapRunStarted event) of a map run ARN as stepd
        makes them (`map_run_arn`); None for another map run ARN (AWS's: no run of stepd's).
        InvalidArn for what is not a map run ARN."""
        parts = arn.split(":")
        if len(parts) < 8 or parts[0] != "arn" or parts[2] != "states" or parts[5] != "mapRun":
            raise InvalidArn(f"Invalid Arn: '{_shown(arn)}'")
        machine, _, label = parts[6].partition("/")
        name, _, event = parts[7].rpartition("-")
        if not label or len(parts) != 8 or not name or not _number(event):
            return None
        return _check_part(machine, arn), _check_part(name, arn), int(event)

    @staticmethod
    def child_of(arn: str) -> tuple[str, str, int, int] | None:
        """(machine, execution name, id of the run's MapRunStarted, index) of the ARN of a Map
        Run's child execution (`child_execution_arn`); None for any other ARN."""
        parts = arn.split(":")
        if len(parts) != 8 or parts[0] != "arn" or parts[5] != "execution" or "/" not in parts[6]:
            return None
        name, _, rest = parts[7].rpartition("-")
        name, _, run = name.rpartition("-")
        if not (name and _number(run) and _number(rest)):
            return None
        return parts[6].partition("/")[0], name, int(run), int(rest)

    def is_ours(self, arn_or_name: str) -> bool:
        """False for an ARN of another region or account: nothing of ours lives there."""
        if not arn_or_name.startswith("arn:"):
            return True
        parts = arn_or_name.split(":")
        return parts[3] == self.region and parts[4] == self.account


def map_run_arn(execution_arn: str, label: str | None, event_id: int) -> str:
    """The ARN of the Map Run an execution started with its MapRunStarted event `event_id`:
    AWS's `...:mapRun:MACHINE/LABEL:ID`, the Map state's Label (or a UUID, also for a Label
    AWS would refuse) as LABEL, and as ID the execution's name, `-` and the event's id (a Map
    Run is found from its ARN alone)."""
    prefix, _, rest = execution_arn.partition(":execution:")
    machine, _, name = rest.partition(":")
    part = label
    if not part or len(part) > MAX_LABEL_LENGTH or _FORBIDDEN.search(part):  # AWS refuses it
        part = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{execution_arn}#{event_id}"))
    return f"{prefix}:mapRun:{machine}/{part}:{name}-{event_id}"


def map_run_machine_arn(map_run: str) -> str:
    """The `stateMachineArn` AWS lists a Map Run with: the machine's ARN, then /LABEL."""
    head, _, _ = map_run.rpartition(":")
    return head.replace(":mapRun:", ":stateMachine:", 1)


def child_execution_arn(map_run: str, index: int) -> str:
    """The ARN of the child execution of the Map Run `map_run` for the item `index`: AWS's
    `...:execution:MACHINE/LABEL:ID`, the ID naming the parent execution, the run and the
    index (`Arns.child_of`)."""
    head, _, run = map_run.rpartition(":")
    return f"{head.replace(':mapRun:', ':execution:', 1)}:{run}-{index}"


def _number(text: str) -> bool:
    """Whether `text` is a whole number in ASCII digits."""
    return text.isascii() and text.isdigit()


def _shown(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()[:MAX_ARN_SHOWN]


def _check_part(part: str, arn: str) -> str:
    if not 1 <= len(part) <= MAX_NAME_LENGTH or _FORBIDDEN.search(part):
        raise InvalidArn(f"Invalid Arn: '{_shown(arn)}'")
    return part
