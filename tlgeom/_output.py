"""Safe output directories: staged writes, a manifest, and no overwriting of files tlgeom did not write.

One mechanism for everything tlgeom writes: the commands (``tlgeom report``, ``landscape``, …,
``claims``), ``tlgeom corpus``'s run folder check, and every ``Result.save()`` (:func:`staged`).

A command writes everything into a staging directory next to ``--out`` (``.<name>.partial-XXXX``)
and moves it into place only when every analysis has succeeded, so a failure leaves no partial
output. ``--out`` keeps a manifest, :data:`MANIFEST`, of the files tlgeom wrote there (and which
command wrote each); a file of the same name that is *not* in the manifest is the user's and is
never replaced unless ``overwrite=True``. Files a previous run of the same command wrote and this
run does not (e.g. ``patching.*`` after ``--no-patch``) are removed, so the directory never mixes runs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tlgeom._errors import bad_arg

#: The manifest file in every output directory: ``{"tlgeom": version, "files": {name: command}}``.
MANIFEST = ".tlgeom-manifest.json"


def read_manifest(out: Path) -> dict[str, str]:
    """``{file name: command}`` of what tlgeom wrote in ``out`` (empty when there is no manifest)."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def stage_output(out: Any, planned: Iterable[str], *, overwrite: bool = False, arg: str = "out") -> Path:
    """Check ``out`` and create the staging directory next to it, before any slow work.

    Args:
        out: the output directory (created at commit time if missing).
        planned: the file names the command may write.
        overwrite: replace files of those names that tlgeom did not write.
        arg: the argument name used in error messages (``"--out"`` for the CLI).

    Returns:
        The staging directory (empty), to be passed to :func:`commit_output` or :func:`discard`.

    Raises:
        TlgeomError: ``out`` is a file, is not writable, or holds a planned file tlgeom did not write.
    """
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise bad_arg(arg, out, "a directory path")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise bad_arg(arg, str(out), "a directory (this path is a file)")
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise bad_arg(arg, str(out), "a writable directory (permission denied)")
        ours = read_manifest(out)
        foreign = sorted(n for n in planned if (out / n).exists() and n not in ours)
        if foreign and not overwrite:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise bad_arg(
                arg,
                str(out),
                f"a directory without files tlgeom did not write: it holds {foreign[0]}{more}; "
                "pass --overwrite to replace them, or choose another --out",
            )
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; it becomes --out, so give it the usual mode
        return staging
    except OSError as exc:
        raise bad_arg(arg, str(out), f"a writable directory ({exc.strerror or type(exc).__name__})") from exc


def discard(staging: Path) -> None:
    """Remove a staging directory (after a failure)."""
    shutil.rmtree(staging, ignore_errors=True)


def commit_output(staging: Path, out: Any, command: str) -> list[Path]:
    """Move every file of ``staging`` into ``out`` and update the manifest; returns the files' new paths.

    A missing ``out`` is the staging directory renamed (one atomic step); an existing one receives
    each file by ``os.replace`` (atomic per file). Files the same command wrote before and did not
    write now are removed.
    """
    from tlgeom._version import __version__

    out = Path(out)
    names = sorted(p.name for p in staging.iterdir() if p.name != MANIFEST)
    old = read_manifest(out) if out.is_dir() else {}
    files = {n: c for n, c in old.items() if (out / n).exists() and not (c == command and n not in names)}
    files.update(dict.fromkeys(names, command))
    manifest = {"tlgeom": __version__, "files": dict(sorted(files.items()))}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if not out.exists():
        os.replace(staging, out)
        return [out / n for n in names]
    for n, c in old.items():
        if c == command and n not in names and (out / n).is_file():
            (out / n).unlink()
    for n in [*names, MANIFEST]:
        os.replace(staging / n, out / n)
    discard(staging)
    return [out / n for n in names]


@contextmanager
def staged(
    out: Any,
    planned: Iterable[str],
    command: str,
    *,
    overwrite: bool = False,
    arg: str = "out",
    written: list[Path] | None = None,
) -> Iterator[Path]:
    """``with staged(out, names, command) as tmp:`` write ``names`` into ``tmp``; on success they are
    moved into ``out`` (:func:`commit_output`; their new paths are appended to ``written`` if given),
    on any exception nothing of ``out`` changes.

    ``out`` is checked first (:func:`stage_output`): a file path, an unwritable folder or a file of a
    planned name that tlgeom did not write is a TlgeomError naming ``arg``, before any work."""
    staging = stage_output(out, planned, overwrite=overwrite, arg=arg)
    try:
        yield staging
        try:
            paths = commit_output(staging, out, command)
        except OSError as exc:
            raise bad_arg(arg, str(out), f"a writable directory ({exc.strerror or type(exc).__name__})") from exc
        if written is not None:
            written.extend(paths)
    finally:
        discard(staging)


def probe_writable(folder: Any, arg: str = "out", shown: Any = None) -> None:
    """Check that ``folder`` (existing or still to be made) can be written, leaving nothing behind: an
    empty temporary folder is made and removed in it, or in its nearest existing ancestor. A TlgeomError
    naming ``arg`` and ``shown`` (default ``folder``) otherwise."""
    probe = Path(folder).absolute()
    while not probe.exists():
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".tlgeom-probe-"))
    except OSError as exc:
        where = str(folder if shown is None else shown)
        raise bad_arg(arg, where, f"a writable directory ({exc.strerror or type(exc).__name__})") from None
