"""docs/security.md is written by more than one test: each owns ``## `` sections and replaces only those."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _split(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(the part before the first section, [(heading line, body)])."""
    head, sections, current = [], [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            current = [line.rstrip("\n"), ""]
            sections.append(current)
        elif current is None:
            head.append(line)
        else:
            current[1] += line
    return "".join(head), [(h, b) for h, b in sections]


def write_sections(owned: dict[str, list[str]], head: str | None = None, doc: Path = DOC) -> str:
    """Replace (or append) the sections whose headings are ``owned``'s keys; keep every other one.

    ``head`` (the title and introduction) replaces the part before the first section if given.
    """
    old_head, sections = _split(doc.read_text() if doc.exists() else "")
    bodies = {f"## {h}": "\n" + "\n".join(lines) + "\n\n" for h, lines in owned.items()}
    out, seen = [], set()
    for heading, body in sections:
        out.append((heading, bodies.get(heading, body)))
        seen.add(heading)
    out += [(h, b) for h, b in bodies.items() if h not in seen]
    text = (head if head is not None else old_head) + "".join(f"{h}\n{b}" for h, b in out)
    text = text.rstrip("\n") + "\n"
    doc.write_text(text)
    return text
