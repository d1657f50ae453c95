"""The toolkit's error types: one-line messages that name the fix.

:class:`ConfigError` is bad user input. :class:`ParameterError` is the engine's kind: a
bad value of one of its own parameters, phrased in its own terms (``Adam: lr must be a
positive number; got -1``), which the app re-raises under the config key the value came
from (``optim.lr must be ...``). Both are importable from :mod:`toolkit.registry` too.
Standard library only (the engine stays pure NumPy).
"""

from __future__ import annotations

import re
from collections.abc import Callable


class ConfigError(ValueError):
    """Bad user input (a name, a value, a shape). Its message is one line that names the fix."""


# ``{lr}`` or ``{steps.rotate.max_degrees}`` in a template, with an optional Python literal
# after ``=`` (``{download}=True``) that a config spells in YAML (``dataset.download=true``)
_PARAMETER = re.compile(r"\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\}(?:=(True|False|None)\b)?")
_YAML = {"True": "true", "False": "false", "None": "null"}


class ParameterError(ConfigError):
    """A bad value of an engine object's parameter, said in the engine's own terms:
    ``Adam: lr must be a positive number; got -1``.

    ``template`` marks parameter names in braces (``"{lr} must be > 0; got -1"``); the
    message shows them bare, after ``owner`` (the class or function whose parameter it is).
    The app knows which config key each parameter came from and re-raises the error with
    :meth:`under` (``optim.lr must be > 0; got -1``): the config key is added once, where a
    config group becomes arguments, and a library user never reads one.

    Attributes:
        owner: ``"Adam"``, ``"Trainer"``... (None: the template says it all).
        template: the message with ``{parameter}`` marks.
        params: the parameters the message names, first the one at fault.
    """

    def __init__(self, owner: str | None, template: str) -> None:
        self.owner, self.template = owner, template
        self.params = tuple(dict.fromkeys(m.group(1) for m in _PARAMETER.finditer(template)))
        super().__init__(f"{owner}: {self.render()}" if owner else self.render())

    @property
    def param(self) -> str | None:
        """The parameter at fault (the first one named), or None."""
        return self.params[0] if self.params else None

    def render(self, name: Callable[[str], str] | None = None) -> str:
        """The template with each ``{parameter}`` as ``name(parameter)`` (default: bare);
        with ``name`` given, Python literals after ``=`` are spelled in YAML."""

        def replace(match: re.Match) -> str:
            param, literal = match.group(1), match.group(2)
            if name is None:
                return param + (f"={literal}" if literal else "")
            return name(param) + (f"={_YAML[literal]}" if literal else "")

        return _PARAMETER.sub(replace, self.template)

    def nested(self, prefix: str, owner: str | None = None) -> ParameterError:
        """The same error one level up, for an engine object whose part ``prefix`` raised
        it: parameter ``p`` becomes ``prefix.p`` (the Augmenter's ``steps.rotate.fill``)."""
        return ParameterError(owner, self.render(lambda p: f"{{{prefix}.{p}}}"))

    def under(self, key: str, **keys: str) -> ConfigError:
        """The error in config terms, one line: parameter ``p`` (or ``p.rest``) becomes
        ``keys[p]`` if given, else ``key.p`` (``under("schedule", base_lr="optim.lr")``)."""

        def config_key(param: str) -> str:
            head, dot, rest = param.partition(".")
            return keys.get(head, f"{key}.{head}") + dot + rest

        return ConfigError(self.render(config_key))

    def __reduce__(self) -> tuple:
        return type(self), (self.owner, self.template)


def bad_value(owner: object, param: str, wanted: str, value: object) -> ParameterError:
    """``<owner>: <param> must be <wanted>; got <value!r>``; ``owner`` is a name, or an
    object whose class names it. ``wanted`` may mark other parameters (``"< {max_lr}"``)."""
    return ParameterError(owner_name(owner), f"{{{param}}} must be {wanted}; got {value!r}")


def owner_name(owner: object) -> str | None:
    """``owner`` itself if it is a string (or None), else its class's name."""
    return owner if owner is None or isinstance(owner, str) else type(owner).__name__
