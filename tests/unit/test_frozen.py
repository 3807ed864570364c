"""quick_init: a frozen dataclass with the quicker __init__ behaves as the dataclass would."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

from stepd.frozen import quick_init

CALLS: list[str] = []


def make(*, quick: bool) -> Any:
    @dataclass(frozen=True)
    class Sample:
        first: int
        second: str = "two"
        _: dataclasses.KW_ONLY
        needed: float
        items: list[int] = field(default_factory=list)
        flag: bool = False

        def __post_init__(self) -> None:
            CALLS.append(self.second)
            if self.first < 0:
                raise ValueError("first is negative")

    return quick_init(Sample) if quick else Sample


SAMPLES = [
    ((1,), {"needed": 2.5}),
    ((1, "b"), {"needed": 0.0, "items": [3], "flag": True}),
    ((), {"first": 7, "second": "s", "needed": 1.0}),
]


@pytest.mark.parametrize(("args", "kwargs"), SAMPLES)
def test_an_instance_is_the_one_the_dataclass_makes(args: Any, kwargs: Any) -> None:
    plain, quick = make(quick=False), make(quick=True)
    CALLS.clear()
    a, b = plain(*args, **kwargs), quick(*args, **kwargs)
    assert CALLS[0] == CALLS[1]  # __post_init__ ran for both
    assert vars(a) == vars(b)
    assert list(vars(a)) == list(vars(b)) == [f.name for f in dataclasses.fields(quick)]
    assert repr(a).split("(", 1)[1] == repr(b).split("(", 1)[1]
    assert b == dataclasses.replace(b) == copy.copy(b)
    frozen_items = {**kwargs, "items": tuple(kwargs.get("items", ()))}
    assert hash(plain(*args, **frozen_items)) == hash(quick(*args, **frozen_items))
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.first = 2


def test_defaults_and_factories_are_fresh_for_each_instance() -> None:
    quick = make(quick=True)
    one, two = quick(1, needed=1.0), quick(1, needed=1.0)
    one.items.append(1)
    assert (one.items, two.items, two.second, two.flag) == ([1], [], "two", False)


def test_wrong_arguments_and_post_init_errors_are_raised_as_the_dataclass_raises() -> None:
    plain, quick = make(quick=False), make(quick=True)
    for cls in (plain, quick):
        with pytest.raises(TypeError):
            cls(1)  # the keyword-only field without a default
        with pytest.raises(TypeError):
            cls(1, "b", 2.0)  # a keyword-only field given by position
        with pytest.raises(TypeError):
            cls(1, needed=1.0, other=2)
        with pytest.raises(ValueError, match="negative"):
            cls(-1, needed=1.0)


def test_records_made_with_it_survive_pickling() -> None:
    from stepd.store.records import TaskCall  # noqa: PLC0415 - one of the classes it speeds up

    call = TaskCall(resource="r", payload="{}", timeout_seconds=60, due=1.0)
    assert pickle.loads(pickle.dumps(call)) == call


def test_it_refuses_what_it_cannot_make_alike() -> None:
    @dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    @dataclass
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class WithInitVar:
        a: int
        b: InitVar[int] = 0

    @dataclass(frozen=True)
    class NotInInit:
        a: int
        b: int = field(default=0, init=False)

    for cls in (Slotted, Mutable, WithInitVar, NotInInit):
        with pytest.raises(TypeError):
            quick_init(cls)
