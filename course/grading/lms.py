"""The LMS facts of a run: whose each folder is (roster), who handed nothing in, and how late each notebook was.

:func:`join` runs once the slots are known and before anything is graded; it only adds notes, ``missing`` slots and
the records of :mod:`.people`. :func:`write_identities` leaves them in ``OUT/identities.json`` for ``course export``:

.. code-block:: json

    {"format": 1, "layout": "canvas",
     "students": {"smithjohn_12345": {"name": "Smith, John", "login": "jsmith", "section": "A", "lms_id": "12345",
                                      "sis_id": "S01"}},
     "lateness": [{"student": "smithjohn_12345", "notebook": "01_softmax", "days": 1.0, "penalty": 0.1,
                   "source": "..."}]}
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import CourseError
from . import discover, lateness, roster, text
from .cache import write_atomic
from .layouts import Imported
from .people import Identity, Lateness

IDENTITIES_FILE = "identities.json"


@dataclasses.dataclass
class Joined:
    """What :func:`join` found."""

    identities: dict[str, Identity]
    lateness: dict[tuple[str, str], Lateness]
    missing: list[discover.Submission]  # roster students with no folder: one missing slot per assigned chapter


def _add_note(slot, remark: str) -> None:
    sub = slot.submission
    slot.submission = dataclasses.replace(sub, note="; ".join(filter(None, [sub.note, remark])))


def join(slots: list, imported: Imported, chapter_ids: list[str], entries: list[roster.Entry] | None,
         policy: lateness.Policy) -> Joined:
    """Notes, identities, missing students and lateness for the slots of one run (slots are changed in place)."""
    first: dict[str, object] = {}
    for slot in slots:
        first.setdefault(slot.submission.student, slot)
    _import_problems(slots, imported)
    for student, slot in first.items():
        for remark in imported.notes.get(slot.submission.folder, []):
            _add_note(slot, remark)
    identities: dict[str, Identity] = {}
    missing: list[discover.Submission] = []
    if entries is not None:
        used: dict[int, str] = {}
        for student, slot in first.items():
            folder = slot.submission.folder
            found = roster.match(folder, imported.lms_ids.get(folder, ""), entries, imported.names.get(folder, ""))
            if not found:
                _add_note(slot, "not in the roster")
            elif len(found) > 1:
                lines = ", ".join(str(e.line) for e in found[:5])
                _add_note(slot, f"matches {len(found)} roster rows (lines {lines}); no identity given")
            elif id(found[0]) in used:
                _add_note(slot, f"matches the same roster row (line {found[0].line}) as '{used[id(found[0])]}'")
            else:
                used[id(found[0])] = student
                identities[student] = found[0].identity
        shown = set(first)
        for entry in entries:
            if id(entry) in used:
                continue
            key, number = text.clean(entry.key), 2
            while key in shown:
                key, number = f"{text.clean(entry.key)} ({number})", number + 1
            shown.add(key)
            identities[key] = entry.identity
            missing += [discover.Submission(key, cid, None, "nothing handed in (on the roster, no submission)",
                                            "missing") for cid in chapter_ids]
    else:
        for student, slot in first.items():
            lms_id = imported.lms_ids.get(slot.submission.folder)
            if lms_id:
                identities[student] = Identity(name=imported.names.get(slot.submission.folder, ""), lms_id=lms_id)
    return Joined(identities, _lateness(slots, imported, policy, identities), missing)


def _import_problems(slots: list, imported: Imported) -> None:
    """A notebook the import could not read is that slot's ``unreadable`` reason, not ``missing``."""
    for slot in slots:
        sub = slot.submission
        problems = imported.unreadable.get(sub.folder, [])
        if sub.path is not None or sub.status != "missing" or not problems:
            continue
        for name, why in problems:
            if discover._matches([Path(name)], sub.chapter_id):
                slot.submission = dataclasses.replace(sub, status="unreadable",
                                                      problem=f"'{text.name(name)}' unreadable: {why}")
                break


def _lateness(slots: list, imported: Imported, policy: lateness.Policy,
              identities: dict[str, Identity]) -> dict[tuple[str, str], Lateness]:
    if not (policy.active or imported.late):
        return {}
    result: dict[tuple[str, str], Lateness] = {}
    for slot in slots:
        sub = slot.submission
        if sub.path is None:
            continue
        relative = sub.path.relative_to(imported.root / sub.folder).as_posix()
        marked = (sub.folder, relative) in imported.late
        result[(sub.student, sub.chapter_id)] = (policy.lateness(1.0, lateness.CANVAS_MARK) if marked
                                                 else policy.lateness(0.0, "on time"))
    if policy.submitted_at is not None:
        if policy.due is None:
            raise CourseError("--submitted-at needs --due (the times are compared with the due date)")
        for student, notebook, moment, line in lateness.read_submitted_at(policy.submitted_at):
            keys = [k for k in result if _names(k[0], identities) & {student.casefold()}
                    and (not notebook or k[1] == notebook)]
            if not keys:
                raise CourseError(f"{text.name(policy.submitted_at)}, line {line}: no handed-in notebook of "
                                  f"{text.clean(student)!r}{' for ' + text.clean(notebook) if notebook else ''}")
            days = lateness.days_late(moment, policy.due)
            for key in keys:
                result[key] = policy.lateness(days, f"submitted at {moment.isoformat()}")
    return result


def _names(student: str, identities: dict[str, Identity]) -> set[str]:
    """Every name a ``--submitted-at`` row may use for a student: the folder, the login, the LMS and SIS ids."""
    identity = identities.get(student, Identity())
    return {n.casefold() for n in (student, identity.login, identity.lms_id, identity.sis_id) if n}


def write_identities(out: Path, layout: str, identities: dict[str, Identity],
                     late: dict[tuple[str, str], Lateness]) -> None:
    """``OUT/identities.json`` (only when there is something to say), for ``course export``."""
    path = out / IDENTITIES_FILE
    if not identities and not late:
        path.unlink(missing_ok=True)  # an earlier run's identities would name the wrong students
        return
    data = {"format": 1, "layout": layout,
            "students": {s: dataclasses.asdict(i) for s, i in sorted(identities.items())},
            "lateness": [{"student": s, "notebook": n, **dataclasses.asdict(v)} for (s, n), v in sorted(late.items())]}
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def read_identities(out: Path) -> dict[str, Identity]:
    """The identities a graded run left in ``OUT/identities.json`` (empty when there is none)."""
    path = out / IDENTITIES_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(Identity)}
        return {text.clean(s): Identity(**{k: text.clean(v) for k, v in i.items() if k in fields})
                for s, i in data["students"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CourseError(f"{text.name(path)}: not an identities file written by the grader ({text.clean(exc, 200)})") \
            from None
