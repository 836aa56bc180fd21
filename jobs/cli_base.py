"""The command line's conventions, in one place: how ``meshfleet`` reports errors and shows help.

* A user error is one line on stderr, ``error: <input>: <what is wrong>``, and exit code 2; never a
  traceback (``-v`` adds it). Click's own usage errors (unknown option, a value that is not a
  number) follow the same rule.
* ``-h`` / ``--help`` everywhere, ``--version`` on ``meshfleet``; help is plain text that reads at
  80 columns, with ``FLOAT`` / ``TEXT``-style value names instead of type tags.
* Renamed options keep their old names as hidden aliases (:func:`aliased`): flag names are contracts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import typer
from typer import _click as click  # typer vendors click: its exceptions are not those of `import click`
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

USAGE_ERROR = 2
METAVARS: dict[Any, str] = {str: "TEXT", float: "FLOAT", int: "INTEGER", Path: "PATH"}
CONTEXT = {"help_option_names": ["-h", "--help"]}

# One help text per option that several commands share (same name, meaning and default everywhere).
SPEC_HELP = "Job spec file (YAML/TOML); options given on the command line override it."
DRY_HELP = "Print the fully resolved spec and stop."
VERBOSE_HELP = "Log progress details; errors come with their traceback."
MLFLOW_URI_HELP = "MLflow tracking URI. Default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db."
MODEL_HELP = ("romp, bev, or auto: the model a meshfleet checkpoint records, else from the checkpoint file "
              "name (bev if it holds 'bev', as BEV.pth and BEV_ft_agora.pth; else romp).")
BEV_VARIANT_HELP = "BEV defaults table: bev, bev_ft_agora, or auto (from the checkpoint file name)."


def one_line(message: object) -> str:
    """The first line of ``message``; a longer text is marked as cut (``-v`` shows all of it)."""
    lines = [line for line in str(message).strip().splitlines() if line.strip()] or [""]
    return lines[0] + (" [...]" if len(lines) > 1 else "")


class CommandLine(TyperGroup):
    """The top-level group: usage errors as one line, and value names on every option's help."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _name_values(self)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            err.show()
            sys.exit(USAGE_ERROR)
        except click.exceptions.UsageError as err:
            hint = f" (see '{err.ctx.command_path} -h')" if err.ctx is not None else ""
            typer.echo(f"error: {one_line(err.format_message())}{hint}", err=True)
            sys.exit(USAGE_ERROR)
        except click.exceptions.ClickException as err:
            typer.echo(f"error: {one_line(err.format_message())}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _name_values(command: click.Command) -> None:
    """Give every option that takes a value a click-style value name (``FLOAT``) and every argument
    its upper-case name, recursively; flags get none (typer would print ``<bool>``)."""
    for param in command.params:
        if isinstance(param, TyperOption) and param.metavar is None and not param.is_flag:
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", str)
            inner = getattr(annotation, "__args__", (annotation,))[0] if getattr(annotation, "__args__", None) \
                else annotation
            param.metavar = METAVARS.get(inner, "TEXT")
        elif isinstance(param, TyperArgument) and param.name:
            param.metavar = param.metavar or param.name.upper()
            setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010 - the name says it; typer adds <str>
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)


def aliased(**aliases: str) -> type[TyperCommand]:
    """A command class that also accepts old option names (``old_name="--new-name"``, with ``_`` for
    ``-`` in the old name), hidden from the help: ``@app.command(cls=aliased(det_thresh="--track-det-thresh"))``."""
    table = {"--" + old.replace("_", "-"): new for old, new in aliases.items()}

    class AliasedCommand(TyperCommand):
        old_names = table

        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            return super().parse_args(ctx, rename_options(args, self.old_names))

    return AliasedCommand


def rename_options(args: list[str], table: dict[str, str]) -> list[str]:
    """``args`` with old option names replaced (``--old V`` and ``--old=V``), up to a bare ``--``."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        name, eq, value = arg.partition("=")
        out.append(table[name] + eq + value if name in table else arg)
    return out


def show_version(value: bool) -> None:
    """``--version``: meshfleet's version and those of the stack it runs on."""
    if not value:
        return
    from jobs.infer import meshfleet_version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    typer.echo(f"meshfleet {meshfleet_version()} (Python {sys.version.split()[0]}, Ray {of('ray')}, "
               f"torch {of('torch')})")
    raise typer.Exit()
