"""Parsing gin configuration for the command-line tools, checking it, and describing it.

``parse`` reads ``--gin_file``/``--gin_param`` values and fails before any work
on a missing file, an unknown configurable or parameter, a malformed value or a
value of the wrong type (checked against the configurable's annotations), naming
it. ``describe`` lists every configurable parameter with its default and its
bound value (``--print_config``). ``write`` stores the configuration of a run in
its workdir; ``read_workdir`` re-reads it (evaluation, export).

The names that can be bound are those registered so far (``osc_tf.configurables``
registers the library; ``osc_tf.training`` and ``osc_tf.evaluation.run`` the names
of a run), so a command imports what it runs before it parses.
"""

from __future__ import annotations

import collections.abc
import contextlib
import inspect
import logging
import os
import types
import typing
from collections.abc import Sequence

import gin

from osc_tf.configurables import REGISTERED

#: gin files and their includes (``include 'gin/model/default.gin'``) are found
#: relative to the working directory first, then relative to this folder: the
#: package, which holds the configuration files in ``gin/`` (package data).
GIN_BASE = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILE = "operative_config.gin"


_search_path_added: list[str] = []


class ConfigError(ValueError):
    """A gin file or binding could not be parsed, names something unknown or has a bad value."""


def resolve(path: str) -> str:
    """The absolute path of a gin file, relative to the working directory or ``GIN_BASE``."""
    for candidate in (path, os.path.join(GIN_BASE, path)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise ConfigError(f"gin file not found: {path!r} (looked in {os.getcwd()!r} and {GIN_BASE!r})")


def parse(gin_files: Sequence[str] = (), gin_params: Sequence[str] = ()) -> None:
    """Clears gin and parses files, then bindings (later ones win), then checks them.

    Raises:
        ConfigError: naming the file, the binding, the unknown name or the bad value.
    """
    gin.clear_config()
    if not _search_path_added:
        gin.add_config_file_search_path(GIN_BASE)
        _search_path_added.append(GIN_BASE)
    for path in [resolve(f) for f in gin_files]:
        try:
            with _quiet_search():
                gin.parse_config_file(path)
        except (ValueError, SyntaxError, ImportError, OSError, TypeError) as e:
            raise ConfigError(f"in gin file {path!r}: {_one_line(e)}") from e
    for binding in gin_params:
        try:
            with _quiet_search():
                gin.parse_config(binding)
        except (ValueError, SyntaxError, ImportError, TypeError) as e:
            raise ConfigError(f"in --gin_param {binding!r}: {_one_line(e)}") from e
    check_bindings()


class _MissedSearchPath(logging.Filter):
    """Drops gin's error for an ``include 'gin/...'`` not found under the working directory.

    Before it tries the next search path (``GIN_BASE``, where the file is), gin
    looks for it as a resource of the Python package ``gin`` (gin-config itself)
    and logs ``Path not found`` on the root logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Path not found: %s" and str(record.args[0]).startswith("gin/"))


@contextlib.contextmanager
def _quiet_search():
    root, missed = logging.getLogger(), _MissedSearchPath()
    root.addFilter(missed)
    try:
        yield
    finally:
        root.removeFilter(missed)


def _one_line(error: BaseException) -> str:
    """An error's message on one line (gin's add the file, line and text on more lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__


_parsed: dict = {}


@gin.config.register_finalize_hook
def _collect(config) -> None:
    _parsed.clear()
    _parsed.update({key: dict(values) for key, values in config.items()})


def bindings() -> dict[tuple[str, str], dict]:
    """Every parsed binding of a registered name: ``(scope, name) -> {parameter: value}``.

    gin has no public iterator over its bindings; it hands them to finalize hooks,
    so this runs ``gin.finalize`` (config left unlocked) with a hook that copies them.
    """
    with gin.unlock_config():
        gin.finalize()
    return {
        (scope, selector.rsplit(".", 1)[-1]): values
        for (scope, selector), values in _parsed.items()
        if selector.rsplit(".", 1)[-1] in REGISTERED
    }


def check_bindings() -> None:
    """Raises ConfigError for a parameter a configurable lacks or a value of the wrong type."""
    for (scope, name), values in bindings().items():
        fn_or_cls = REGISTERED[name]
        accepted = _accepted_names(fn_or_cls)
        unknown = sorted(set(values) - accepted) if accepted is not None else []
        if unknown:
            raise ConfigError(
                f"{name} has no parameter named {unknown[0]!r} "
                f"(its parameters: {', '.join(sorted(accepted - {'self'}))})"
            )
        hints = _annotations(fn_or_cls)
        for param, value in values.items():
            if param in hints and not _matches(value, hints[param]):
                where = f"{scope}/{name}" if scope else name
                raise ConfigError(
                    f"{where}.{param} = {value!r}: expected {_describe_type(hints[param])}"
                )


def _init_targets(fn_or_cls) -> list:
    if inspect.isclass(fn_or_cls):
        return [c.__init__ for c in fn_or_cls.__mro__ if "__init__" in vars(c)]
    return [fn_or_cls]


def _accepted_names(fn_or_cls) -> set[str] | None:
    """Named parameters a configurable accepts (``None``: any name).

    gin checks names only against the signature, so a class whose ``__init__``
    forwards ``**kwargs`` (every Keras layer) would accept a misspelt name until
    it is constructed; the named parameters of the classes it forwards to (its
    bases' ``__init__``) are the limit here.
    """
    names = set()
    for target in _init_targets(fn_or_cls):
        try:
            params = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def _annotations(fn_or_cls) -> dict:
    """The resolved type annotations of a configurable's own parameters (unresolvable: none)."""
    target = _init_targets(fn_or_cls)[0]
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):
        return {}
    hints.pop("return", None)
    return hints


def _matches(value, annotation) -> bool:
    """Whether a bound value fits an annotation; references, macros and REQUIRED always do."""
    if isinstance(value, gin.config.ConfigurableReference) or value is gin.REQUIRED:
        return True
    if annotation is typing.Any:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return not args or (
            len(value) == len(args)
            and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        )
    if origin in (list, collections.abc.Sequence):
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict) and all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()
        )
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return callable(value)
    if inspect.isclass(annotation):
        return isinstance(value, annotation)
    return True  # an annotation this check does not read


def _describe_type(annotation) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(arg) for arg in args)
    if inspect.isclass(annotation) and not args:
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "")


def describe() -> str:
    """Every configurable parameter: ``Name.param = value`` (default or bound)."""
    lines = []
    for name, fn_or_cls in sorted(REGISTERED.items()):
        bound = gin.get_bindings(name)
        lines.append(f"# {name}  ({fn_or_cls.__module__})")
        for param_name, param in _signature(fn_or_cls).parameters.items():
            if param_name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param_name in bound:
                value, note = bound[param_name], "bound"
            elif param.default is inspect.Parameter.empty:
                value, note = gin.REQUIRED, "required"
            else:
                value, note = param.default, "default"
            text = "%REQUIRED" if value is gin.REQUIRED else _format(value)
            lines.append(f"{name}.{param_name} = {text}  # {note}")
        lines.append("")
    return "\n".join(lines)


def _signature(fn_or_cls):
    return inspect.signature(_init_targets(fn_or_cls)[0])


def _format(value) -> str:
    if isinstance(value, gin.config.ConfigurableReference):
        return repr(value)
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"<{value.__module__}.{value.__qualname__}>"
    return repr(value)


def config_text() -> str:
    """The configuration to store with a run.

    The operative part lists every parameter of every configurable used so far,
    defaults included; it is followed by all parsed bindings so that parameters
    of configurables not yet called (evaluation, export) are kept too. Parsing
    the text reproduces the run's configuration.
    """
    return (
        "# Operative configuration (parameters used, defaults included).\n"
        + gin.operative_config_str()
        + "\n\n# All parsed bindings (including configurables not yet called).\n"
        + gin.config_str()
    )


def write(workdir: str) -> str:
    """Writes ``operative_config.gin`` atomically to ``workdir``; returns its path."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(config_text())
    os.replace(tmp, path)
    return path


def read_workdir(workdir: str, gin_params: Sequence[str] = ()) -> None:
    """Parses a run's stored configuration (plus optional extra bindings).

    The stored configuration binds ``train`` and the evaluation's names, so the
    caller has imported ``osc_tf.training`` (``osc_tf.training.load`` does).
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path!r} does not exist: is {workdir!r} the workdir of a training run?")
    parse([path], gin_params)
