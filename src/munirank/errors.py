"""Errors that munirank reports to users, and the exit code each one gives on the command line.

========================= ====================================================================
exit code                 meaning
========================= ====================================================================
0 (:data:`EXIT_OK`)       done
2 (:data:`EXIT_INPUT`)    bad input or usage (:class:`InputError`): one line on stderr naming
                          the file, column and rows, or the command-line option; nothing
                          written
3 (:data:`EXIT_UNCONVERGED`) fitted but not converged: outputs written and flagged, unless
                          ``--allow-unconverged``
130, 143                  interrupted by SIGINT or SIGTERM (:class:`Interrupted`, 128 + the
                          signal): nothing written
========================= ====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK, EXIT_INPUT, EXIT_UNCONVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130


class InputError(ValueError):
    """Bad input or usage: names the file, the column and the first offending rows.

    A bad command-line value names the option instead (``option --preset: unknown preset
    'bad'; known: ...``): an option is not a column.

    Parameters
    ----------
    message : str
        What is wrong and what to do about it.
    file : str, optional
        The file that holds the problem.
    column : str, optional
        The column (or spec key) that holds the problem.
    rows : sequence of int, optional
        Offending rows, numbered as in the file (1 = first data row).
    option : str, optional
        The command-line option (or the API keyword of the same name) whose value is bad,
        e.g. ``"--preset"``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        rows: Sequence[int] | None = None,
        option: str | None = None,
    ) -> None:
        self.file = file
        self.column = column
        self.rows = list(rows) if rows is not None else []
        self.option = option
        parts = [f"option {option}"] if option else []
        if file:
            parts.append(str(file))
        if column:
            parts.append(f"column {column!r}")
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:5])
            more = f" (+{len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
            parts.append(f"rows {shown}{more}")
        prefix = ", ".join(parts)
        message = " ".join(str(message).split())  # one line, whatever a library said
        super().__init__(f"{prefix}: {message}" if prefix else message)


class MissingExtra(ImportError):
    """An optional feature's packages are not installed (exit code 2, one line).

    Parameters
    ----------
    feature : str
        What needs them, e.g. ``"munirank study"``.
    extra : str
        The extra that installs them, e.g. ``"study"``.
    """

    def __init__(self, feature: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs munirank's optional packages '{extra}': "
                         f"pip install 'munirank[{extra}]'")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while munirank worked; nothing was written.

    Parameters
    ----------
    signum : int
        The signal number (the command line exits with 128 + ``signum``).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"signal {signum}")


class DisclosureError(RuntimeError):
    """An output would hold per-person data; it is refused before anything is written."""


class NotConvergedError(RuntimeError):
    """A fit finished but did not pass the convergence gate (exit code 3)."""
