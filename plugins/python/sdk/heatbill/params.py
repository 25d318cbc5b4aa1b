"""Parameters: a ``@dataclass`` is both the parser and the JSON Schema ``describe`` returns.

The host validates a chain entry's parameters against :func:`schema` before ``configure`` sees
them, and shows the schema to integrators (forms, ``plugin check``), so write each field's
``doc`` for them: meaning, unit, an example. Conventions (the same as the Rust SDK's):

- ``Decimal`` fields are JSON strings (``"38.32"``, never ``38.32``): ``"format": "decimal"``;
- ``datetime.date`` fields are ``"YYYY-MM-DD"`` strings: ``"format": "date"``;
- ``Category``, ``Payer``, ``CustomerClass`` are their WIT names (``"base-fee"``), a ``str``
  ``Enum`` or a ``Literal`` its values;
- ``X | None`` also accepts ``null``; a field with a default is optional; ``list[X]``,
  ``frozenset[X]`` (unique items), ``dict[str, X]`` and nested dataclasses nest;
- ``dict[CustomerClass, X]`` is a map keyed by customer class: its keys are ``"residential"``
  and ``"non-residential"`` (each optional), parsed to :class:`CustomerClass`; the schema names
  both, so forms show a field per class;
- a key that is not a Python name (``"non-residential"``) is the field's ``key``:
  ``non_residential: Decimal = param(key="non-residential")``;
- every object refuses unknown keys (``"additionalProperties": false``).

::

    @dataclass
    class Params:
        \"\"\"The parameters of `flat-fee`.\"\"\"
        amount: Decimal = param(doc='Yuan per heating day, e.g. "1.50".')
        code: str = param("flat", doc="The line's code.")
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import re
import types
import typing
from decimal import Decimal, InvalidOperation

from .errors import BadParams, truncate
from .types import WitEnum

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DECIMAL_SCHEMA = {"type": "string", "format": "decimal", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}
DATE_SCHEMA = {"type": "string", "format": "date", "examples": ["2025-10-20"]}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def param(default=dataclasses.MISSING, *, doc: str = "", key: str | None = None):
    """A parameter field: its default (none: required), its description for the schema, and
    its JSON key when that is not the field's name (``key="non-residential"``). A list, set or
    dict default is copied for each instance."""
    meta = {"doc": doc}
    if key is not None:
        if not key:
            raise TypeError("a parameter's key is not empty")
        meta["key"] = key
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class NoParams:
    """No parameters."""


dataclasses.dataclass(NoParams)


# ---- schema ----------------------------------------------------------------------------------


def schema(cls) -> dict:
    """The JSON Schema (draft 2020-12) of a parameter dataclass, as a dict."""
    root = _object_schema(cls, set())
    return {"$schema": DRAFT, **root}


def schema_json(cls) -> str:
    """:func:`schema` as compact JSON text, what ``describe`` returns."""
    return json.dumps(schema(cls), ensure_ascii=False, separators=(",", ":"))


def _doc(cls) -> str:
    doc = cls.__doc__ or ""
    # dataclass makes up a signature docstring when there is none; that is not a description.
    if doc.startswith(cls.__name__ + "("):
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def _object_schema(cls, seen: set) -> dict:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"parameters must be a @dataclass, not {cls!r}")
    if cls in seen:
        raise TypeError(f"parameter dataclass {cls.__name__} is recursive")
    seen = seen | {cls}
    hints = typing.get_type_hints(cls)
    out: dict = {}
    if _doc(cls):
        out["description"] = _doc(cls)
    out["type"] = "object"
    props, required = {}, []
    keys = [_key(f) for f in dataclasses.fields(cls)]
    if len(set(keys)) != len(keys):
        raise TypeError(f"parameter dataclass {cls.__name__} has two fields with one key")
    for f in dataclasses.fields(cls):
        s = _type_schema(hints[f.name], seen)
        doc = f.metadata.get("doc")
        if doc:
            s = {"description": doc, **s}
        if f.default is not dataclasses.MISSING:
            try:
                s["default"] = _to_json(f.default)
            except TypeError:
                pass
        elif f.default_factory is not dataclasses.MISSING:
            try:
                s["default"] = _to_json(f.default_factory())
            except TypeError:
                pass
        else:
            required.append(_key(f))
        props[_key(f)] = s
    if props:
        out["properties"] = props
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _key(f) -> str:
    """A field's JSON key: its ``param(key=...)``, else its name."""
    return f.metadata.get("key") or f.name


def _class_map(tp) -> bool:
    """Whether ``tp`` is ``dict[CustomerClass, X]``."""
    from .types import CustomerClass

    args = typing.get_args(tp)
    return typing.get_origin(tp) is dict and len(args) == 2 and args[0] is CustomerClass


def _optional_inner(tp):
    """X for ``Optional[X]`` / ``X | None``, else None."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
        raise TypeError(f"unsupported parameter type {tp!r}: only X | None unions")
    return None


def _type_schema(tp, seen: set) -> dict:
    inner = _optional_inner(tp)
    if inner is not None:
        s = _type_schema(inner, seen)
        if isinstance(s.get("type"), str) and "enum" not in s:
            return {**s, "type": [s["type"], "null"]}
        return {"anyOf": [s, {"type": "null"}]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Decimal:
        return dict(DECIMAL_SCHEMA)
    if tp is datetime.date:
        return dict(DATE_SCHEMA)
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is str:
        return {"type": "string"}
    if isinstance(tp, type) and issubclass(tp, WitEnum):
        return {"type": "string", "enum": [c.wit for c in tp]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [c.value for c in tp]
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"parameter enum {tp.__name__} must have string values")
        return {"type": "string", "enum": values}
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        if kinds == {str}:
            return {"type": "string", "enum": list(args)}
        return {"enum": list(args)}
    if origin in (list, tuple) or origin in (frozenset, set):
        item = args[0] if args else None
        if item is None:
            raise TypeError(f"give the item type of {tp!r}, e.g. list[str]")
        s = {"type": "array", "items": _type_schema(item, seen)}
        if origin in (frozenset, set):
            s["uniqueItems"] = True
        return s
    if _class_map(tp):
        from .types import CustomerClass

        item = _type_schema(args[1], seen)
        return {
            "type": "object",
            "properties": {c.wit: dict(item) for c in CustomerClass},
            "additionalProperties": False,
        }
    if origin is dict:
        if not args or args[0] is not str:
            raise TypeError(
                f"{tp!r}: parameter maps have string keys (dict[str, Decimal]) or customer "
                "classes (dict[CustomerClass, Decimal])"
            )
        return {"type": "object", "additionalProperties": _type_schema(args[1], seen)}
    if dataclasses.is_dataclass(tp):
        return _object_schema(tp, seen)
    raise TypeError(f"unsupported parameter type {tp!r}")


def _to_json(v):
    if v is None or isinstance(v, (bool, int, str)) and not isinstance(v, enum.Enum):
        return v
    if isinstance(v, WitEnum):
        return v.wit
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, (list, tuple, set, frozenset)):
        items = [_to_json(x) for x in v]
        return sorted(items, key=str) if isinstance(v, (set, frozenset)) else items
    if isinstance(v, dict):
        return {(k.wit if isinstance(k, WitEnum) else k): _to_json(x) for k, x in v.items()}
    raise TypeError(v)


# ---- parsing ---------------------------------------------------------------------------------


def parse(cls, text: str):
    """Parses the JSON parameter object into ``cls``; an empty string is ``{}``. Any refusal is
    :class:`BadParams` naming the key path and what to write instead."""
    if not text.strip():
        text = "{}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadParams(f"the parameters are not JSON: {e}") from None
    return _convert(cls, value, "")


def _fail(path: str, message: str):
    where = f"`{path}`: " if path else ""
    raise BadParams(truncate(where + message))


def _name(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp, v, path: str):
    inner = _optional_inner(tp)
    if inner is not None:
        return None if v is None else _convert(inner, v, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Decimal:
        if not isinstance(v, str):
            _fail(path, f'expected a decimal written as a JSON string, e.g. "38.32", not {json.dumps(v)}')
        try:
            d = Decimal(v.strip())
        except InvalidOperation:
            d = None
        if d is None or not d.is_finite():
            _fail(path, f'{json.dumps(v)} is not a decimal number: write e.g. "38.32"')
        return d
    if tp is datetime.date:
        if not isinstance(v, str) or not _DATE.match(v):
            _fail(path, f'{json.dumps(v)} is not a date written YYYY-MM-DD, e.g. "2025-10-20"')
        try:
            return datetime.date.fromisoformat(v)
        except ValueError as e:
            _fail(path, f"{json.dumps(v)} is not a date: {e}")
    if tp is bool:
        if not isinstance(v, bool):
            _fail(path, f"expected true or false, not {json.dumps(v)}")
        return v
    if tp is int:
        if not isinstance(v, int) or isinstance(v, bool):
            _fail(path, f"expected an integer, not {json.dumps(v)}")
        return v
    if tp is str:
        if not isinstance(v, str):
            _fail(path, f"expected a string, not {json.dumps(v)}")
        return v
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        names = [c.wit if issubclass(tp, WitEnum) else c.value for c in tp]
        if v not in names:
            expected = ", ".join(json.dumps(n) for n in names)
            _fail(path, f"unknown value {json.dumps(v, ensure_ascii=False)}: expected one of {expected}")
        return tp.parse(v) if issubclass(tp, WitEnum) else tp(v)
    if origin is typing.Literal:
        if v not in args or type(v) is not type(args[args.index(v)]):
            expected = ", ".join(json.dumps(a) for a in args)
            _fail(path, f"unknown value {json.dumps(v, ensure_ascii=False)}: expected one of {expected}")
        return v
    if origin in (list, tuple, frozenset, set):
        if not isinstance(v, list):
            _fail(path, f"expected a list, not {json.dumps(v, ensure_ascii=False)}")
        items = [_convert(args[0], x, f"{path}[{i}]") for i, x in enumerate(v)]
        return origin(items)
    if _class_map(tp):
        from .types import CustomerClass

        if not isinstance(v, dict):
            _fail(path, f"expected an object, not {json.dumps(v, ensure_ascii=False)}")
        names = [c.wit for c in CustomerClass]
        out = {}
        for k, x in v.items():
            if k not in names:
                expected = ", ".join(f"`{n}`" for n in names)
                _fail(path, f"unknown customer class `{k}`, expected one of {expected}")
            out[CustomerClass.parse(k)] = _convert(args[1], x, _name(path, k))
        return out
    if origin is dict:
        if not isinstance(v, dict):
            _fail(path, f"expected an object, not {json.dumps(v, ensure_ascii=False)}")
        return {k: _convert(args[1], x, _name(path, k)) for k, x in v.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            _fail(path, f"expected an object, not {json.dumps(v, ensure_ascii=False)}")
        fields = {_key(f): f for f in dataclasses.fields(tp)}
        unknown = [k for k in v if k not in fields]
        if unknown:
            known = ", ".join(f"`{k}`" for k in fields) or "none"
            _fail(path, f"unknown field `{unknown[0]}`, expected one of {known}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for key, f in fields.items():
            if key in v:
                kwargs[f.name] = _convert(hints[f.name], v[key], _name(path, key))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(path, f"missing field `{key}`")
        return tp(**kwargs)
    raise TypeError(f"unsupported parameter type {tp!r}")
