"""The one wrapper every `bench` command runs under, so an exit code does not depend on
whether the command ran from the console script or a test's CliRunner:

- a user-fixable error (benchbench.errors: BenchError, or a foreign root it translates) is one
  `error:` line on stderr, URLs' passwords removed, and exit 2;
- Ctrl-C (or SIGTERM, handled as SIGINT) is "interrupted" and exit 130;
- `typer.Exit(n)` is exit n;
- anything else is a bug: it propagates with its traceback."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from benchbench.errors import as_user_error
from benchbench.urls import redact_url

# A URL inside free text: a scheme, "://", and everything up to a blank, quote or bracket.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"()<>]+")


def redact_words(text: str) -> str:
    """Defence in depth: no URL password in a printed line."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def print_error(message: str) -> None:
    Console(stderr=True).print(
        f"[red]error:[/] {escape(redact_words(message))}", highlight=False, soft_wrap=True
    )


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with the exit codes above. SystemExit, not typer.Exit: under
    standalone_mode=False click turns typer.Exit into a return value, under CliRunner into an
    exit; SystemExit passes through both the same way."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit as exc:
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            Console(stderr=True).print("interrupted")
            raise SystemExit(130) from None
        except Exception as exc:
            user = as_user_error(exc)
            if user is None:
                raise
            print_error(str(user))
            raise SystemExit(2) from None

    return run


def guard_commands(app: typer.Typer) -> None:
    """Wrap every command of `app` and of its sub-apps (once)."""
    for command in app.registered_commands:
        if command.callback is not None and not hasattr(command.callback, "__wrapped__"):
            command.callback = guarded(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard_commands(group.typer_instance)
