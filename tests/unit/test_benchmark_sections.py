"""benchmarks/sections.py: a benchmark's section of RESULTS.md is replaced in place, or appended."""

from __future__ import annotations

from pathlib import Path

from benchmarks.sections import replace_section

B, E = "<!-- x:begin -->", "<!-- x:end -->"


def test_a_section_is_replaced_in_place_and_the_rest_kept(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Title\n\n{B}\nold\n{E}\n\n## After\n")
    replace_section(results, B, E, f"{B}\nnew\n{E}\n")
    assert results.read_text() == f"# Title\n\n{B}\nnew\n{E}\n\n## After\n"


def test_a_new_section_is_appended_after_one_blank_line(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Title\n\n")
    replace_section(results, B, E, f"{B}\nnew\n{E}\n")
    assert results.read_text() == f"# Title\n\n{B}\nnew\n{E}\n"
