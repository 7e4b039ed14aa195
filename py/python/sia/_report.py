"""What an index run did, as :meth:`sia.Engine.index` returns it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IndexReport:
    """The outcome of one :meth:`sia.Engine.index` run.

    Attributes:
        indexed: files read and indexed in this run.
        unchanged: files skipped because size, mtime and inode had not changed.
        removed: files that vanished and were removed from the index.
        duplicates: ``(path, sop_instance_uid)`` of files whose SOP Instance UID another
            file (the one with the smaller path) already provides.
        skipped: ``(path, reason)`` of files that could not be indexed.
        conflicts: files not indexed because a UID they name is indexed for another
            patient, one sentence each (data never moves to another patient).
        nonconformant_uids: ``(path, attribute, uid)`` of files indexed although a UID is
            not a DICOM UID but a safe identifier.
        normalized_charsets: ``(path, value)`` of files whose misspelled Specific Character
            Set was read as the term it stands for.
        seconds: wall-clock duration of the run, in seconds.
    """

    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    nonconformant_uids: list[tuple[str, str, str]] = field(default_factory=list)
    normalized_charsets: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def from_engine(cls, d: dict[str, Any]) -> IndexReport:
        """The report from the engine's serialized one (unknown keys are ignored, so a
        newer engine's additions do not break an older package)."""

        def conflict(c: dict[str, Any]) -> str:
            ip, fp = c["indexed_patient"], c["file_patient"]
            return (
                f"{c['path']}: {c['level']} {c['uid']} is indexed for patient "
                f"{ip['patient_id']!r} (issuer {ip['issuer']!r}), the file names "
                f"{fp['patient_id']!r} (issuer {fp['issuer']!r})"
            )

        return cls(
            indexed=int(d.get("indexed", 0)),
            unchanged=int(d.get("unchanged", 0)),
            removed=int(d.get("removed", 0)),
            duplicates=[(x["path"], x["sop_instance_uid"]) for x in d.get("duplicates", [])],
            skipped=[(x["path"], x["reason"]) for x in d.get("skipped", [])],
            conflicts=[conflict(x) for x in d.get("conflicts", [])],
            nonconformant_uids=[
                (x["path"], x["attribute"], x["uid"]) for x in d.get("nonconformant_uids", [])
            ],
            normalized_charsets=[(x["path"], x["value"]) for x in d.get("normalized_charsets", [])],
            seconds=float(d.get("seconds", 0.0)),
        )

    def __str__(self) -> str:
        return (
            f"indexed {self.indexed}, unchanged {self.unchanged}, removed {self.removed}, "
            f"duplicates {len(self.duplicates)}, skipped {len(self.skipped)}, "
            f"conflicts {len(self.conflicts)} in {self.seconds:.3f} s"
        )
