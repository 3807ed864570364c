"""Testing a definition in seconds: time-scaled executions and mocked task results.

Both are for tests only and must be switched on in the config (`[testing] enabled = true`);
otherwise a time scale or a test case is refused.

- A time scale shortens every wait of an execution by its factor: a Wait of N seconds (or until
  an instant N seconds away), and the interval before a Retry, last N / scale seconds.
- Mocked task results come from a MockConfigFile in the format of AWS Step Functions Local:
  `StateMachines` -> machine -> `TestCases` -> test case -> state name -> mocked response name;
  `MockedResponses` -> name -> attempt keys ("0", "1-2") -> `{"Return": value}` or
  `{"Throw": {"Error": ..., "Cause": ...}}`. An execution runs a test case when StartExecution
  names it after the machine's ARN (`...:stateMachine:classroom#HappyPath`), as AWS's emulator
  does; a mocked state answers from its response by attempt (0 is the first call, the last
  key's answer repeats), and a state the test case does not name is called for real.

What an execution was started with is kept in its ExecutionStarted event (`stepd` field in
its details), so it holds through restarts without anything more in the store.
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepd.errors import ConfigError, ValidationException
from stepd.store.base import Store
from stepd.store.records import NewEvent
from stepd.tasks.caller import TaskOutcome

TEST_FIELD = "stepd"  # the ExecutionStarted details field that keeps an execution's settings
MAX_TIME_SCALE = 1_000_000.0
MAX_CACHED = 10_000  # executions whose settings are kept in memory
TEST_CASE_SEPARATOR = "#"


@dataclass(frozen=True, kw_only=True)
class TestSettings:
    """How one execution is tested: its time scale and its test case, if any."""

    time_scale: float = 1.0
    test_case: str | None = None

    def details(self) -> dict[str, Any]:
        """As the ExecutionStarted event keeps them (and DescribeExecution shows them)."""
        shown: dict[str, Any] = {"timeScale": self.time_scale}
        if self.test_case is not None:
            shown["testCase"] = self.test_case
        return shown


NOT_TESTED = TestSettings()


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One mocked answer: a result (`Return`) or an error (`Throw`)."""

    result: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class MockedResponse:
    """Answers by attempt: (first attempt, last attempt, answer), in order."""

    answers: tuple[tuple[int, int, Answer], ...]

    def answer(self, attempt: int) -> Answer:
        for first, last, answer in self.answers:
            if first <= attempt <= last:
                return answer
        return self.answers[-1][2]


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """A MockConfigFile: test cases by machine, and the mocked responses they name."""

    test_cases: Mapping[str, Mapping[str, Mapping[str, str]]]  # machine -> case -> state -> name
    responses: Mapping[str, MockedResponse]

    def mocked(self, machine: str, test_case: str, state: str, attempt: int) -> Answer | None:
        name = self.test_cases.get(machine, {}).get(test_case, {}).get(state)
        return None if name is None else self.responses[name].answer(attempt)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError("expected a JSON object", where=where)
    return value


def _attempts(key: str, where: str) -> tuple[int, int]:
    first, sep, last = key.partition("-")
    if not first.isdigit() or (sep and not last.isdigit()):
        raise ConfigError(f'\'{key}\' is not an attempt ("0") or a range ("1-2")', where=where)
    low, high = int(first), int(last) if sep else int(first)
    if high < low:
        raise ConfigError(f"the range '{key}' ends before it starts", where=where)
    return low, high


def _answer(value: Any, where: str) -> Answer:
    body = _object(value, where)
    if set(body) == {"Return"}:
        return Answer(result=body["Return"])
    if set(body) == {"Throw"}:
        thrown = _object(body["Throw"], f"{where}.Throw")
        error, cause = thrown.get("Error"), thrown.get("Cause")
        if not isinstance(error, str) or not error:
            raise ConfigError("Throw needs an Error (a string)", where=f"{where}.Throw")
        if cause is not None and not isinstance(cause, str):
            raise ConfigError("Cause must be a string", where=f"{where}.Throw")
        return Answer(error=error, cause=cause)
    raise ConfigError('expected {"Return": ...} or {"Throw": {"Error": ...}}', where=where)


def parse_mock_config(data: Any, where: str) -> MockConfig:
    """Read a MockConfigFile's JSON value; ConfigError saying where it is wrong."""
    top = _object(data, where)
    unknown = set(top) - {"StateMachines", "MockedResponses"}
    if unknown:
        raise ConfigError(f"unknown field '{min(unknown)}'", where=where)
    responses: dict[str, MockedResponse] = {}
    for name, keys in _object(top.get("MockedResponses", {}), f"{where}: MockedResponses").items():
        at = f"{where}: MockedResponses.{name}"
        answers = [
            (*_attempts(k, at), _answer(v, f"{at}.{k}")) for k, v in _object(keys, at).items()
        ]
        if not answers:
            raise ConfigError("a mocked response needs at least one answer", where=at)
        answers.sort(key=lambda a: a[0])
        for (_, last, _a), (first, _, _b) in itertools.pairwise(answers):
            if first <= last:
                raise ConfigError(f"the attempt {first} has two answers", where=at)
        responses[name] = MockedResponse(answers=tuple(answers))
    cases: dict[str, dict[str, dict[str, str]]] = {}
    for machine, spec in _object(top.get("StateMachines", {}), f"{where}: StateMachines").items():
        at = f"{where}: StateMachines.{machine}"
        for case, states in _object(_object(spec, at).get("TestCases", {}), at).items():
            case_at = f"{at}.TestCases.{case}"
            mapped: dict[str, str] = {}
            for state, response in _object(states, case_at).items():
                if not isinstance(response, str) or response not in responses:
                    raise ConfigError(
                        f"'{state}' names the mocked response {response!r}, which "
                        "MockedResponses does not have",
                        where=case_at,
                    )
                mapped[state] = response
            cases.setdefault(machine, {})[case] = mapped
    return MockConfig(test_cases=cases, responses=responses)


def read_mock_config(path: Path) -> MockConfig:
    """Read a MockConfigFile; ConfigError naming the file when it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", where=str(path)) from exc
    except ValueError as exc:
        raise ConfigError(f"not valid JSON: {exc}", where=str(path)) from exc
    return parse_mock_config(data, str(path))


def split_test_case(machine_arn: str) -> tuple[str, str | None]:
    """(machine ARN, test case) of `arn...:stateMachine:name#TestCase`, as AWS's emulator
    takes it; (the ARN, None) without a `#`."""
    arn, sep, case = machine_arn.partition(TEST_CASE_SEPARATOR)
    return arn, (case if sep else None)


class TestRuns:
    """What the engine asks about tested executions. Without `enabled`, every execution runs
    in real time and calls its tasks, and asking for a time scale or test case is refused."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        *,
        enabled: bool = False,
        mocks: MockConfig | None = None,
        time_scales: Mapping[str, float] | None = None,
    ) -> None:
        self.enabled = enabled
        self.mocks = mocks
        self.time_scales = dict(time_scales or {})  # machine -> its default time scale
        self._settings: OrderedDict[int, TestSettings] = OrderedDict()

    def take_config(self, other: TestRuns) -> None:
        """Use `other`'s switch, mocks and time scales from now on (a reload); what is known
        of running executions stays."""
        self.enabled, self.mocks, self.time_scales = other.enabled, other.mocks, other.time_scales

    def settings_for_start(
        self, machine: str, *, test_case: str | None, time_scale: float | None
    ) -> TestSettings:
        """The settings a new execution of `machine` runs with; ValidationException when it
        asks for what is not switched on or not there."""
        if not self.enabled:
            if test_case is not None or time_scale is not None:
                asked = "a test case" if test_case is not None else "a time scale"
                raise ValidationException(
                    f"{asked} is for tests only, and testing is not enabled in this stepd's "
                    "config: set [testing] enabled = true to use one"
                )
            return NOT_TESTED
        scale = time_scale if time_scale is not None else self.time_scales.get(machine, 1.0)
        if not 0 < scale <= MAX_TIME_SCALE:
            raise ValidationException(f"timeScale: between 0 and {MAX_TIME_SCALE:g}, not {scale}")
        if test_case is not None:
            cases = self.mocks.test_cases.get(machine, {}) if self.mocks else {}
            if test_case not in cases:
                raise ValidationException(
                    f"the test case '{test_case}' of the machine '{machine}' is not in the "
                    "mock config file ([testing] mock_config)"
                )
        return TestSettings(time_scale=scale, test_case=test_case)

    def mark(self, event: NewEvent, settings: TestSettings) -> NewEvent:
        """The ExecutionStarted event `event`, keeping `settings` when they are not the
        defaults."""
        if settings == NOT_TESTED:
            return event
        details = {**event.details, TEST_FIELD: settings.details()}
        return NewEvent(type=event.type, details=details, ts=event.ts)

    def remember(self, execution_id: int, settings: TestSettings) -> None:
        self._settings[execution_id] = settings
        self._settings.move_to_end(execution_id)
        while len(self._settings) > MAX_CACHED:
            self._settings.popitem(last=False)

    async def load(self, store: Store, execution_id: int) -> TestSettings:
        """The settings of an execution, read from its first event once and then kept."""
        if not self.enabled:
            return NOT_TESTED
        known = self._settings.get(execution_id)
        if known is not None:
            return known
        events = await store.history(execution_id, reverse=False, limit=1, after=None)
        settings = NOT_TESTED
        if events:
            kept = events[0].details.get(TEST_FIELD)
            if isinstance(kept, dict):
                scale = kept.get("timeScale", 1.0)
                case = kept.get("testCase")
                settings = TestSettings(
                    time_scale=float(scale) if isinstance(scale, int | float) else 1.0,
                    test_case=case if isinstance(case, str) else None,
                )
        self.remember(execution_id, settings)
        return settings

    def settings(self, execution_id: int) -> TestSettings:
        """The settings `load` read (the defaults when it did not)."""
        return self._settings.get(execution_id, NOT_TESTED) if self.enabled else NOT_TESTED

    def time_scale(self, execution_id: int) -> float:
        return self.settings(execution_id).time_scale

    def mocked(
        self, execution_id: int, machine: str, state: str, attempt: int
    ) -> TaskOutcome | None:
        """The mocked outcome of a task call of a tested execution, or None: call it."""
        case = self.settings(execution_id).test_case
        if case is None or self.mocks is None:
            return None
        answer = self.mocks.mocked(machine, case, state, attempt)
        if answer is None:
            return None
        if answer.error is not None:
            return TaskOutcome(error=answer.error, cause=answer.cause, final=True)
        return TaskOutcome(result=answer.result, final=True)
