"""A pytest plugin that runs LocalStack's Step Functions tests without AWS, to note what they
would send: each state machine definition, execution input and Lambda function they make, and
which snapshot key records the execution. Used by localstack_cases.py (read it first); not a
test module of stepd's.

Every module of LocalStack and of the libraries its tests lean on (`localstack*`,
`localstack_snapshot*`, `aws_cdk*`, `rolo*`, `botocore*`, `jsonpath_ng*`, and the test
modules of other services) is replaced by a stand-in that answers any attribute or call;
`is_aws_cloud()` is true, as when the snapshots were recorded. AWS clients are stand-ins too,
and the fixtures that create other services' resources give names and ARNs of AWS's shape.
The Step Functions client keeps the definitions and inputs; `sfn_snapshot.match(key, …)`
writes a line of JSON to $LOCALSTACK_RECORD: {"test", "key", "definition", "input",
"lambdas"}. A test whose definition
or input depends on another service's answer fails here (its JSON holds a stand-in object) and
is left out.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

_STUBBED = (
    "localstack",
    "localstack_snapshot",
    "aws_cdk",
    "rolo",
    "botocore",
    "jsonpath_ng",
    "tests.aws.test_notifications",
    "tests.aws.services.apigateway",
    "tests.aws.services.lambda_",
)
ACCOUNT = "111111111111"
REGION = "us-east-1"


class Anything:
    """Any attribute, call, item or iteration; used as a decorator it returns what it wraps."""

    def __init__(self, name: str = "anything") -> None:
        self._name = name

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything(f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (
            len(args) == 1
            and not kwargs
            and (inspect.isfunction(args[0]) or isinstance(args[0], type))
        ):
            return args[0]
        return Anything(f"{self._name}()")

    def __getitem__(self, key: Any) -> Anything:
        return Anything(f"{self._name}[{key!r}]")

    def __or__(self, other: Any) -> Any:
        return self

    __ror__ = __or__

    def __iter__(self) -> Any:
        return iter(())

    def __str__(self) -> str:
        return self._name.rsplit(".", 1)[-1]

    def __mro_entries__(self, bases: Any) -> tuple[type, ...]:
        return (object,)


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "is_aws_cloud":
            return lambda: True
        if name == "short_uid":
            return lambda: "abcd1234"
        return Anything(name)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == "localstack.testing.pytest.stepfunctions.utils":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=False)
        if fullname.startswith(_STUBBED):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        if spec.name == "localstack.testing.pytest.stepfunctions.utils":
            return _utils_module(spec.name)
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


sys.meta_path.insert(0, _StubFinder())

_CURRENT: dict[str, Any] = {
    "test": "",
    "lambdas": {},
    "machines": {},
    "execution": None,
    "executions": [],
}


class FakeStepFunctions:
    """Keeps the machines created and the executions started; answers the rest with stand-ins."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything(f"stepfunctions.{name}")

    def create_state_machine(self, **kwargs: Any) -> dict[str, Any]:
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{kwargs.get('name', 'm')}"
        _CURRENT["machines"][arn] = kwargs["definition"]
        return {"stateMachineArn": arn, "creationDate": "now"}

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        definition = _CURRENT["machines"][kwargs["stateMachineArn"]]
        _CURRENT["execution"] = {"definition": definition, "input": kwargs.get("input", "{}")}
        _CURRENT["executions"].append(_CURRENT["execution"])
        return {"executionArn": "arn:aws:states:::execution:m:e", "startDate": "now"}

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        return {"events": [{"id": 1, "type": "ExecutionSucceeded"}]}

    def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
        return {"status": "SUCCEEDED", "output": "{}", "executionArn": kwargs.get("executionArn")}


class FakeClients(Anything):
    def __init__(self) -> None:
        super().__init__("aws_client")
        self.stepfunctions = FakeStepFunctions()


class Recorder(Anything):
    """`sfn_snapshot`: `match` notes the execution last started under the key."""

    def __init__(self) -> None:
        super().__init__("sfn_snapshot")

    def match(self, key: str, value: Any) -> None:
        execution = _CURRENT["execution"]
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, dict) and "input" in v for v in value)
        ):
            # The Choice operator tests: one list of {input, output} for many executions.
            for number, run in enumerate(_CURRENT["executions"][-len(value) :]):
                _write({**_line(run), "key": f"{key}#{number}"})
            return
        if execution is None or not isinstance(value, dict) or "events" not in value:
            return
        _write({**_line(execution), "key": key})


def _line(execution: dict[str, Any]) -> dict[str, Any]:
    return {
        "test": _CURRENT["test"],
        "definition": json.loads(execution["definition"]),
        "input": json.loads(execution["input"]),
        "lambdas": _CURRENT["lambdas"],
    }


def _write(line: dict[str, Any]) -> None:
    with Path(os.environ["LOCALSTACK_RECORD"]).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def _utils_module(name: str) -> types.ModuleType:
    module = _StubModule(name)

    # The parameter names are LocalStack's: tests pass some of them by keyword.
    def create_state_machine_with_iam_role(
        target_aws_client,
        create_state_machine_iam_role,
        create_state_machine,
        snapshot,
        definition,
        *args,
        state_machine_name=None,
        **kwargs,
    ):
        created = create_state_machine(
            target_aws_client, name=state_machine_name or "m", definition=definition
        )
        return created["stateMachineArn"]

    def launch_and_record_execution(
        target_aws_client, sfn_snapshot, state_machine_arn, execution_input, *args, **kwargs
    ):
        sfn = target_aws_client.stepfunctions
        sfn.start_execution(stateMachineArn=state_machine_arn, input=execution_input)
        sfn_snapshot.match("get_execution_history", sfn.get_execution_history())
        return "arn:aws:states:::execution:m:e"

    def create_and_record_execution(  # noqa: PLR0917 - LocalStack's signature
        target_aws_client,
        create_state_machine_iam_role,
        create_state_machine,
        sfn_snapshot,
        definition,
        execution_input,
        *args,
        **kwargs,
    ):
        arn = create_state_machine_with_iam_role(
            target_aws_client,
            create_state_machine_iam_role,
            create_state_machine,
            sfn_snapshot,
            definition,
        )
        return launch_and_record_execution(target_aws_client, sfn_snapshot, arn, execution_input)

    def not_recorded(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not an execution recorded against AWS")

    def waits(*args: Any, **kwargs: Any) -> Any:
        return [{"id": 1, "type": "ExecutionSucceeded"}]

    module.create_state_machine_with_iam_role = create_state_machine_with_iam_role  # type: ignore[attr-defined]
    module.launch_and_record_execution = launch_and_record_execution  # type: ignore[attr-defined]
    module.create_and_record_execution = create_and_record_execution  # type: ignore[attr-defined]
    for helper in (
        "create_and_record_mocked_execution",
        "create_and_record_mocked_sync_execution",
        "launch_and_record_mocked_execution",
        "launch_and_record_mocked_sync_execution",
        "create_and_run_mock",
        "create_and_record_logs",
        "launch_and_record_logs",
        "create_and_record_express_sync_execution",
        "create_and_record_express_async_execution",
        "launch_and_record_sync_execution",
        "launch_and_record_express_async_execution",
        "create_and_record_events",
        "record_sqs_events",
    ):
        setattr(module, helper, not_recorded)
    for helper in (
        "await_execution_terminated",
        "await_execution_success",
        "await_execution_started",
        "await_execution_aborted",
        "await_on_execution_events",
        "await_list_execution_status",
        "await_execution_lists_terminated",
    ):
        setattr(module, helper, waits)
    return module


@pytest.fixture(autouse=True)
def _note_test(request: Any) -> None:
    _CURRENT.update(
        test=request.node.nodeid, lambdas={}, machines={}, execution=None, executions=[]
    )


@pytest.fixture
def aws_client() -> Any:
    return FakeClients()


aws_client_no_retry = aws_client
aws_client_no_sync_prefix = aws_client


@pytest.fixture
def sfn_snapshot() -> Any:
    return Recorder()


snapshot = sfn_snapshot


@pytest.fixture
def create_state_machine_iam_role() -> Any:
    return lambda *args, **kwargs: f"arn:aws:iam::{ACCOUNT}:role/sfn-role"


@pytest.fixture
def create_state_machine() -> Any:
    return lambda client, **kwargs: client.stepfunctions.create_state_machine(**kwargs)


@pytest.fixture
def create_lambda_function() -> Any:
    def create(*args: Any, **kwargs: Any) -> dict[str, Any]:
        name = kwargs.get("func_name") or kwargs.get("function_name") or "f"
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        _CURRENT["lambdas"][name] = str(kwargs.get("handler_file", ""))
        return {"CreateFunctionResponse": {"FunctionArn": arn, "FunctionName": name}}

    return create


@pytest.fixture
def account_id() -> str:
    return ACCOUNT


@pytest.fixture
def region_name() -> str:
    return REGION


# Other services' resources: names and ARNs in the shape AWS gives, for tests whose definition
# or input carries them (the calls they make go to the stand-in server).
@pytest.fixture
def sqs_create_queue() -> Any:
    def create(*args: Any, **kwargs: Any) -> str:
        name = kwargs.get("QueueName") or "queue"
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"

    return create


@pytest.fixture
def sns_create_topic() -> Any:
    def create(*args: Any, **kwargs: Any) -> dict[str, Any]:
        name = kwargs.get("Name") or "topic"
        return {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"}

    return create


@pytest.fixture
def dynamodb_create_table() -> Any:
    def create(*args: Any, **kwargs: Any) -> dict[str, Any]:
        name = kwargs.get("table_name") or kwargs.get("TableName") or "table"
        return {"TableDescription": {"TableName": name}}

    return create


@pytest.fixture
def s3_create_bucket() -> Any:
    return lambda *args, **kwargs: kwargs.get("Bucket") or "bucket"


@pytest.fixture
def events_to_sqs_queue() -> Any:
    return lambda *args, **kwargs: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/events"
