"""Safe output directories: moved to :mod:`tlgeom._output` (one mechanism for the commands, ``tlgeom
claims``, ``tlgeom corpus`` and every ``Result.save()``); these names keep working."""

from tlgeom._output import MANIFEST, commit_output, discard, read_manifest, stage_output

__all__ = ["MANIFEST", "commit_output", "discard", "read_manifest", "stage_output"]
