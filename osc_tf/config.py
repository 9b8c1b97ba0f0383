"""Parsing gin configuration for the command-line tools, and describing it.

``parse`` reads ``--gin_file``/``--gin_param`` values and fails before any work
on a missing file, an unknown configurable or parameter, or a malformed value,
naming it. ``describe`` lists every configurable parameter with its default and
its bound value (``--print_config``). ``write`` stores the configuration of a
run in its workdir; ``read_workdir`` re-reads it (evaluation, export).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Sequence

import gin

#: gin files and their includes are resolved relative to the working directory
#: first, then relative to the repository root (so ``include 'gin/model/vit.gin'``
#: works from anywhere).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILE = "operative_config.gin"


class ConfigError(ValueError):
    """A gin file or binding could not be parsed or names something unknown."""


def _resolve(path: str) -> str:
    if os.path.exists(path):
        return path
    candidate = os.path.join(REPO_ROOT, path)
    if os.path.exists(candidate):
        return candidate
    raise ConfigError(f"gin file not found: {path!r} (looked in {os.getcwd()!r} and {REPO_ROOT!r})")


def parse(gin_files: Sequence[str] = (), gin_params: Sequence[str] = ()) -> None:
    """Clears gin and parses files, then bindings (later ones win).

    Raises:
        ConfigError: naming the file, the binding or the unknown name.
    """
    import osc_tf.configurables  # noqa: F401  (registers every configurable)

    gin.clear_config()
    gin.add_config_file_search_path(REPO_ROOT)
    files = [_resolve(f) for f in gin_files]
    for path in files:
        try:
            gin.parse_config_file(path)
        except (ValueError, SyntaxError, ImportError, OSError, TypeError) as e:
            raise ConfigError(f"in gin file {path!r}: {e}") from e
    for binding in gin_params:
        try:
            gin.parse_config(binding)
        except (ValueError, SyntaxError, ImportError, TypeError) as e:
            raise ConfigError(f"in --gin_param {binding!r}: {e}") from e
    _check_parameter_names()


def _accepted_names(fn_or_cls) -> set[str] | None:
    """Named parameters a configurable accepts (``None``: any name).

    gin checks names only against the signature, so a class whose ``__init__``
    forwards ``**kwargs`` (every Keras layer) would accept a misspelt name until
    it is constructed; the named parameters of the classes it forwards to (its
    bases' ``__init__``) are the limit here.
    """
    if inspect.isclass(fn_or_cls):
        targets = [c.__init__ for c in fn_or_cls.__mro__ if "__init__" in vars(c)]
    else:
        targets = [fn_or_cls]
    names = set()
    for target in targets:
        try:
            params = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def _check_parameter_names() -> None:
    for (_, selector), bindings in gin.config._CONFIG.items():  # no public iterator either
        configurable = gin.config._REGISTRY.get_match(selector)
        if configurable is None:
            continue  # a macro or constant
        accepted = _accepted_names(configurable.wrapped)
        unknown = sorted(set(bindings) - accepted) if accepted is not None else []
        if unknown:
            raise ConfigError(
                f"{configurable.name} has no parameter named {unknown[0]!r} "
                f"(its parameters: {', '.join(sorted(accepted - {'self'}))})"
            )


def _configurables() -> Iterable:
    import osc_tf.configurables  # noqa: F401  (registers every configurable)

    registry = gin.config._REGISTRY  # gin has no public iterator over its registry.
    seen = set()
    for _, configurable in sorted(registry.items(), key=lambda item: item[0]):
        if configurable.name in seen or configurable.wrapped.__module__.startswith("gin"):
            continue
        seen.add(configurable.name)
        yield configurable


def _signature(fn_or_cls):
    target = fn_or_cls.__init__ if inspect.isclass(fn_or_cls) else fn_or_cls
    return inspect.signature(target)


def describe() -> str:
    """Every configurable parameter: ``Name.param = value`` (default or bound)."""
    lines = []
    for configurable in _configurables():
        bound = gin.get_bindings(configurable.selector)
        lines.append(f"# {configurable.name}  ({configurable.wrapped.__module__})")
        for name, param in _signature(configurable.wrapped).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if name in bound:
                value, note = bound[name], "bound"
            elif param.default is inspect.Parameter.empty:
                value, note = gin.REQUIRED, "required"
            else:
                value, note = param.default, "default"
            text = "%REQUIRED" if value is gin.REQUIRED else _format(value)
            lines.append(f"{configurable.name}.{name} = {text}  # {note}")
        lines.append("")
    return "\n".join(lines)


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
    """Parses a run's stored configuration (plus optional extra bindings)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path!r} does not exist: is {workdir!r} the workdir of a training run?")
    parse([path], gin_params)
