"""README's translation notes are the fidelity table's notes (regenerate them with
`python -m tests.fidelity.table`)."""

from __future__ import annotations

from pathlib import Path

from tests.fidelity.table import readme_section, render_notes

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_translation_notes_match_the_matrix() -> None:
    assert readme_section(README.read_text()) == render_notes(), (
        "README.md translation notes differ from tests/fidelity/table.py: "
        "run `python -m tests.fidelity.table`"
    )
