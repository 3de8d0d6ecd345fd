"""Checks spec values against the annotations of component arguments.

Components declare their arguments with ordinary Python annotations. Ranges
are attached with `typing.Annotated`, e.g.
`temperature: Annotated[float, Range(0, None, min_inclusive=False)]`, or with
the ready-made aliases below (`PositiveFloat`, `Probability`, ...). The spec
loader and the registry use `check_value` so that a wrong type or an
out-of-range value is reported with its key path before anything is built.
"""

import dataclasses
import datetime
import math
import sys
import types
import typing
from typing import Annotated, Any, Literal


class TypeMismatch(ValueError):
    """A value does not fit its annotation. The message says what was
    expected and what was received."""


@dataclasses.dataclass(frozen=True)
class Range:
    """An inclusive or exclusive numeric interval, for `typing.Annotated`."""

    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    def describe(self):
        parts = []
        if self.min is not None:
            parts.append((">= " if self.min_inclusive else "> ") + repr(self.min))
        if self.max is not None:
            parts.append(("<= " if self.max_inclusive else "< ") + repr(self.max))
        return " and ".join(parts)

    def contains(self, value):
        if self.min is not None:
            if value < self.min or (value == self.min and not self.min_inclusive):
                return False
        if self.max is not None:
            if value > self.max or (value == self.max and not self.max_inclusive):
                return False
        return True


@dataclasses.dataclass(frozen=True)
class Length:
    """Bounds on the number of items of a list, for `typing.Annotated`."""

    min: int = 0
    max: int | None = None

    def describe(self):
        if self.max is None:
            return f"with at least {self.min} item{'s' if self.min != 1 else ''}"
        return f"with {self.min} to {self.max} items"

    def contains(self, value):
        return len(value) >= self.min and (self.max is None or len(value) <= self.max)


@dataclasses.dataclass(frozen=True)
class Ordered:
    """Items in non-decreasing order (a range written `[low, high]`), for
    `typing.Annotated`."""

    def describe(self):
        return "in increasing order (low, high)"

    def contains(self, value):
        return all(a <= b for a, b in zip(value, value[1:]))


@dataclasses.dataclass(frozen=True)
class NotBlank:
    """Text holding more than white space (a path: `""` would name the
    working directory), for `typing.Annotated`."""

    def describe(self):
        return "that is not blank"

    def contains(self, value):
        return bool(value.strip())


CONSTRAINTS = (Range, Length, Ordered, NotBlank)

PositiveFloat = Annotated[float, Range(0, None, min_inclusive=False)]
NonNegativeFloat = Annotated[float, Range(0, None)]
Probability = Annotated[float, Range(0, 1)]
PositiveInt = Annotated[int, Range(1, None)]
NonNegativeInt = Annotated[int, Range(0, None)]
# Seeds every backend accepts (JAX's keys hold 32 bits).
Seed = Annotated[int, Range(0, 2**32 - 1)]
# A layer's width or an image side. Beyond this a 3x3 convolution between two
# such layers no longer fits in memory, and the backends abort rather than
# say so.
Width = Annotated[int, Range(1, 8192)]
# `[low, high]` ranges: of positive numbers, and of shares in (0, 1].
PositiveRange = Annotated[tuple[PositiveFloat, PositiveFloat], Ordered()]
FractionRange = Annotated[
    tuple[Annotated[float, Range(0, 1, min_inclusive=False)],
          Annotated[float, Range(0, 1, min_inclusive=False)]],
    Ordered(),
]
# A file or folder.
PathText = Annotated[str, NotBlank()]
# A nested component: a mapping `{name: <registered name>, <arguments>}`.
ComponentSpec = dict


def received(value):
    """Renders a received value for an error message."""
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        text = _text(value)
        kind = "a mapping" if isinstance(value, dict) else "a list"
        return f"{kind} {text if len(text) < 60 else text[:57] + '...'}"
    return _text(value)


def _text(value):
    """`repr(value)`, but dates and times as written (ISO 8601), and an
    integer of more digits than Python turns into text described."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        items = ", ".join(_text(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' * (len(value) == 1)})"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    try:
        return repr(value)
    except ValueError:  # an integer beyond sys.get_int_max_str_digits()
        return "an integer too long to show"


def describe(annotation):
    """A human description of an annotation: "a number", "one of a, b"..."""
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is inspect_empty:
        return "any value"
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        ranges = [e.describe() for e in extras if isinstance(e, CONSTRAINTS)]
        text = describe(base)
        return f"{text} {' and '.join(ranges)}" if ranges else text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        parts = [describe(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in args else text
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if origin is dict or annotation is dict:
        return "a mapping"
    return _SIMPLE.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(text):
    """The first noun made plural: "an integer >= 1" gives "integers >= 1"."""
    for article in ("an ", "a "):
        if text.startswith(article):
            noun, space, rest = text[len(article):].partition(" ")
            return f"{noun}s{space}{rest.replace('that is ', 'that are ')}"
    return text


inspect_empty = object()
_SIMPLE = {
    float: "a number",
    int: "an integer",
    bool: "true or false",
    str: "a string",
    type(None): "null",
}


def check_value(value, annotation):
    """Returns `value` checked (and widened: int to float) against `annotation`.

    Numbers must be finite (NaN and infinity are never a setting), and the
    constraints attached with `typing.Annotated` (`Range`, `Length`,
    `Ordered`) must hold.

    Args:
        value: a value read from a spec file.
        annotation: a type annotation as written on a component argument.

    Returns:
        The value, with integers widened to floats where a float is expected
        and lists turned into tuples where a tuple is expected.

    Raises:
        TypeMismatch: the value does not fit; the message reads
            `expected ..., received ...`.
    """
    if annotation is Any or annotation is inspect_empty:
        return value
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _check_annotated(value, annotation)
    if origin is Literal:
        return _check_literal(value, annotation)
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, annotation)
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        return _check_sequence(value, annotation, origin)
    if origin is dict or annotation is dict:
        return _check_instance(value, annotation, dict)
    return _check_scalar(value, annotation)


def _check_annotated(value, annotation):
    base, *extras = typing.get_args(annotation)
    try:
        value = check_value(value, base)
    except TypeMismatch:
        raise _mismatch(value, annotation) from None
    for extra in extras:
        if isinstance(extra, CONSTRAINTS) and not extra.contains(value):
            raise _mismatch(value, annotation)
    return value


def _check_literal(value, annotation):
    options = typing.get_args(annotation)
    # true/false are not the numbers 1/0 here, unless a bool is an option.
    if value in options and (not isinstance(value, bool)
                             or any(isinstance(a, bool) for a in options)):
        return value
    raise _mismatch(value, annotation)


def _check_union(value, annotation):
    for option in typing.get_args(annotation):
        try:
            return check_value(value, option)
        except TypeMismatch:
            continue
    raise _mismatch(value, annotation)


def _check_sequence(value, annotation, origin):
    if not isinstance(value, (list, tuple)):
        raise _mismatch(value, annotation)
    args = typing.get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise TypeMismatch(f"expected a list of {len(args)} items, received {received(value)}")
        items = [check_value(v, a) for v, a in zip(value, args)]
    else:
        item = args[0] if args else Any
        items = [check_value(v, item) for v in value]
    return tuple(items) if origin is tuple or annotation is tuple else items


def _check_instance(value, annotation, kind):
    if isinstance(value, kind):
        return value
    raise _mismatch(value, annotation)


def _check_scalar(value, annotation):
    if annotation is type(None):
        if value is None:
            return None
        raise _mismatch(value, annotation)
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) <= sys.float_info.max else math.inf
            if math.isfinite(number):
                return number
        raise _mismatch(value, annotation)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _mismatch(value, annotation)
    if isinstance(annotation, type):
        return _check_instance(value, annotation, annotation)
    return value


def _mismatch(value, annotation):
    return TypeMismatch(f"expected {describe(annotation)}, received {received(value)}")
