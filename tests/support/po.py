"""A reader for the gettext catalogues in locale/ (the subset makemessages writes), for tests."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PoEntry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # plural index -> text (0 if singular)
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str | None, str]:
        return self.msgctxt, self.msgid

    @property
    def translated(self) -> bool:
        return all(self.msgstr.values())

    @property
    def untranslated(self) -> bool:
        return not any(self.msgstr.values())


def read_po(path: Path) -> list[PoEntry]:
    """The entries of ``path`` except the header and obsolete (``#~``) ones."""
    entries: list[PoEntry] = []
    current: PoEntry | None = None
    target: tuple[str, int] | None = None

    def close() -> None:
        if current is not None and (current.msgid or current.msgctxt):
            entries.append(current)

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            close()
            current, target = None, None
            continue
        if line.startswith("#~"):
            continue
        if current is None:
            current = PoEntry()
        if line.startswith("#,"):
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#:"):
            current.references += line[2:].split()
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            _append(current, target, ast.literal_eval(line))
        else:
            keyword, _, value = line.partition(" ")
            if keyword.startswith("msgstr["):
                target = ("msgstr", int(keyword[7:-1]))
            elif keyword == "msgstr":
                target = ("msgstr", 0)
            else:
                target = (keyword, 0)
            if target[0] == "msgstr":
                current.msgstr[target[1]] = ""
            else:
                setattr(current, keyword, "")
            _append(current, target, ast.literal_eval(value))
    close()
    return entries


def _append(entry: PoEntry, target: tuple[str, int] | None, text: str) -> None:
    if target is None:
        raise ValueError(f"string without a keyword: {text!r}")
    name, index = target
    if name == "msgstr":
        entry.msgstr[index] += text
    else:
        setattr(entry, name, (getattr(entry, name) or "") + text)
