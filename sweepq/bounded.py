"""Reading untrusted config text in bounded time and memory.

A sweep config can come from anyone who can hand a file to `sweepq validate` or write one next
to a planner. PyYAML alone lets 400 bytes of aliases expand into a billion values (minutes and
gigabytes), recurses once per nesting level (RecursionError, a traceback), and turns a
5,000-digit integer into a ValueError. Here every input is refused fast, with one message, when
it is larger than any real sweep config:

- at most `MAX_BYTES` of text;
- at most `MAX_DEPTH` levels of nesting (lists, mappings, parameter groups);
- at most `MAX_NODES` values once every alias is expanded, counted while the YAML is composed,
  before anything is built;
- integers within 64 bits (what numpy, Optuna and the store can carry).

The same shape limits apply to a mapping handed in from Python (notebook mode), which may be
self-referential: `check_shape` walks it iteratively and stops at the first limit.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from typing import Any

from sweepq.errors import ConfigError, PathPart, Violation

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_NODES",
    "check_shape",
    "load_json",
    "load_yaml",
]

MAX_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
# Longer integer text is refused before int() sees it: int() of a long numeral is quadratic,
# and Python refuses 4,300 digits with a bare ValueError. 2**63 has 19 digits, 0x... 16 + 2.
_MAX_INT_TEXT = 40


def _too_big() -> str:
    return f"the config is longer than {MAX_BYTES:,} characters, the most sweepq reads"


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


def _too_many() -> str:
    return f"more than {MAX_NODES:,} values once YAML aliases are expanded"


def _int_range() -> str:
    return f"integer out of range: must fit in 64 bits ({MIN_INT} .. {MAX_INT})"


def _compose_node(loader: Any, parent: Any, index: Any) -> Any:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    if loader.sweepq_depth >= MAX_DEPTH:
        raise yaml.composer.ComposerError(None, None, _too_deep(), loader.peek_event().start_mark)
    loader.sweepq_depth += 1
    try:
        node = yaml.SafeLoader.compose_node(loader, parent, index)
    finally:
        loader.sweepq_depth -= 1
    if id(node) not in loader.sweepq_weights:  # an alias returns a node already weighed
        loader.sweepq_weights[id(node)] = _weigh(loader.sweepq_weights, node)
    return node


def _weigh(weights: dict[int, int], node: Any) -> int:
    """1 + the children's weights; an alias child weighs what its anchor weighs."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        return 1
    weight = 1 + sum(weights.get(id(child), 1) for child in children)
    if weight > MAX_NODES:
        raise yaml.composer.ComposerError(None, None, _too_many(), node.start_mark)
    return weight


def _refuse_duplicate_keys(node: Any) -> None:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    seen: set[Any] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key)


def _refuse_long_int(node: Any) -> None:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    text = str(node.value)
    if len(text.replace("_", "")) > _MAX_INT_TEXT:
        msg = f"integer out of range: {text[:20]}... has {len(text):,} characters"
        raise yaml.constructor.ConstructorError(None, None, msg, node.start_mark)


def _unreadable(node: Any, err: Exception) -> Exception:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    text = repr(node.value) if isinstance(node.value, str) else type(node).__name__
    text = text if len(text) <= 40 else text[:37] + "..."
    msg = f"cannot read {text} as {node.tag} ({type(err).__name__})"
    return yaml.constructor.ConstructorError(None, None, msg, node.start_mark)  # type: ignore[no-any-return]


def _yaml_loader(resolvers: list[tuple[str, Any, list[str]]]) -> type:
    """A SafeLoader that counts depth and expanded size while composing, and refuses long ints.

    Composition is where aliases are resolved: a node's weight is 1 + its children's weights,
    an alias weighs what its anchor weighs, so a bomb is refused at the first node that would
    expand past `MAX_NODES`, having built only the (small) node graph. yaml is imported here,
    not at module level, so importing sweepq stays cheap.
    """
    import yaml  # type: ignore[import-untyped,unused-ignore]
    from yaml.composer import Composer  # type: ignore[import-untyped,unused-ignore]
    from yaml.constructor import SafeConstructor  # type: ignore[import-untyped,unused-ignore]
    from yaml.resolver import Resolver  # type: ignore[import-untyped,unused-ignore]

    # libyaml's C scanner and parser (events only) under our Python composer: the pure-Python
    # scanner looks ahead quadratically in flow nesting (180 KB of `[[[..]]]` took 20 s).
    try:
        from yaml._yaml import CParser as Parser  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:  # PyYAML built without libyaml
        from yaml import Parser, Reader, Scanner  # type: ignore[import-untyped,unused-ignore]

    class Loader(Composer, Parser, SafeConstructor, Resolver):  # type: ignore[misc,unused-ignore]
        def __init__(self, stream: str) -> None:
            if Parser.__module__ == "yaml.parser":
                Reader.__init__(self, stream)
                Scanner.__init__(self)
                Parser.__init__(self)
            else:
                Parser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.sweepq_depth = 0
            self.sweepq_weights: dict[int, int] = {}

        def compose_node(self, parent: Any, index: Any) -> Any:
            return _compose_node(self, parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            _refuse_duplicate_keys(node)
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: Any) -> Any:
            _refuse_long_int(node)
            return super().construct_yaml_int(node)

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            # PyYAML's scalar constructors raise IndexError on `!!int ''`, ValueError on
            # `!!float x`, ...: each becomes a located YAML error.
            try:
                return super().construct_object(node, deep=deep)
            except yaml.YAMLError:
                raise
            except (ArithmeticError, LookupError, TypeError, ValueError) as err:
                raise _unreadable(node, err) from None

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    for tag, regexp, first in resolvers:
        Loader.add_implicit_resolver(tag, regexp, first)
    return Loader


def _size_check(text: str, origin: str) -> None:
    # Characters, not bytes: a str is what we hold; it bounds the bytes within 4x.
    if len(text) > MAX_BYTES:
        raise ConfigError([Violation((origin,), _too_big())])


def load_yaml(text: str, origin: str, resolvers: list[tuple[str, Any, list[str]]]) -> Any:
    """YAML text -> data, or ConfigError naming the line and column; bounded by the limits."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    _size_check(text, origin)
    try:
        return yaml.load(text, Loader=_yaml_loader(resolvers))  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = err.problem or err.context or "invalid YAML"
        raise ConfigError([Violation((origin,), f"{where}{problem}")]) from None
    except yaml.YAMLError as err:
        raise ConfigError([Violation((origin,), f"invalid YAML: {err}")]) from None
    except (RecursionError, ArithmeticError, LookupError, TypeError, ValueError) as err:  # never a traceback
        raise ConfigError([Violation((origin,), f"invalid YAML: {type(err).__name__}: {err}"[:200])]) from None


def _json_int(text: str) -> int:
    if len(text) > _MAX_INT_TEXT:
        raise ValueError(f"integer out of range: {text[:20]}... has {len(text):,} digits")
    return int(text)


def load_json(text: str, origin: str) -> Any:
    """JSON text -> data, or ConfigError; json's C parser raises RecursionError when deep."""
    _size_check(text, origin)
    try:
        return json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as err:
        msg = f"line {err.lineno}, column {err.colno}: {err.msg}"
        raise ConfigError([Violation((origin,), msg)]) from None
    except RecursionError:
        raise ConfigError([Violation((origin,), _too_deep())]) from None
    except ValueError as err:
        raise ConfigError([Violation((origin,), str(err))]) from None


def _part(key: Any) -> PathPart:
    """A key as a path element that is always printable (a huge int key is not)."""
    if isinstance(key, str):
        # A lone surrogate cannot be printed to a UTF-8 terminal: show it escaped.
        return key if key.isascii() else key.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(key, int) and not isinstance(key, bool) and MIN_INT <= key <= MAX_INT:
        return key
    return f"<{type(key).__name__} key>"


def check_shape(data: Any) -> None:
    """Depth, size and integer range of loaded data (also a dict from Python), iteratively.

    Raises ConfigError at the first limit crossed, with the key path to it: nothing else is
    checked on data this large, since every later step walks it.
    """
    stack: list[tuple[Any, tuple[PathPart, ...]]] = [(data, ())]
    count = 0
    while stack:
        value, path = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError([Violation(path, f"more than {MAX_NODES:,} values in the config")])
        if len(path) > MAX_DEPTH:
            raise ConfigError([Violation(path[:MAX_DEPTH], _too_deep())])
        if isinstance(value, Mapping):
            for key, item in value.items():
                part = _part(key)
                stack.append((key, (*path, part)))
                stack.append((item, (*path, part)))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if not MIN_INT <= int(value) <= MAX_INT:
                raise ConfigError([Violation(path, _int_range())])
        elif isinstance(value, str) and not value.isascii():
            _check_text(value, path)


def _check_text(text: str, path: tuple[PathPart, ...]) -> None:
    """JSON's `"\\ud800"` is a lone surrogate: no UTF-8 for argv, Redis or the YAML we print."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        raise ConfigError([Violation(path, f"not valid Unicode text (lone surrogate U+{ord(bad):04X})")]) from None
