"""Every Mermaid diagram of the documentation renders in a real browser.

The blocks are the ```mermaid fences of README.md and docs/**/*.md, and the docs/diagrams/*.mmd
files. Each is rendered with `mermaid.render` in Debian's chromium, from local files only:
mermaid.min.js comes from `scripts/fetch-mermaid.sh` (pinned, hash-checked), and any request
the page makes to the network fails the test.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page, Route

from tests.console.live import CHROMIUM, chromium

REPO = Path(__file__).parents[2]
MERMAID = Path(sys.prefix) / "share" / "mermaid" / "mermaid.min.js"
"""Where `make venv` puts it (scripts/fetch-mermaid.sh .venv/share/mermaid)."""
RENDER_TIMEOUT_S = 30
_OPEN = re.compile(r"^\s*```mermaid\s*$")
_CLOSE = re.compile(r"^\s*```\s*$")

_RENDER = """
async ([id, text]) => {
  try {
    const { svg } = await mermaid.render(id, text);
    return { svg };
  } catch (error) {
    return { error: String((error && error.message) || error) };
  }
}
"""


@dataclass(frozen=True)
class Block:
    """One diagram: where it is (path:line) and its text."""

    where: str
    text: str


def mermaid_blocks(text: str, where: str) -> list[Block]:
    """The ```mermaid fences of a Markdown text; an unclosed fence is an error."""
    blocks: list[Block] = []
    lines = text.splitlines()
    start: int | None = None
    for number, line in enumerate(lines, start=1):
        if start is None and _OPEN.match(line):
            start = number
        elif start is not None and _CLOSE.match(line):
            blocks.append(Block(f"{where}:{start}", "\n".join(lines[start : number - 1]) + "\n"))
            start = None
    if start is not None:
        raise ValueError(f"{where}:{start}: the ```mermaid fence is never closed")
    return blocks


def documented_blocks() -> list[Block]:
    """Every diagram of README.md, docs/**/*.md and docs/diagrams/*.mmd."""
    blocks: list[Block] = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        where = path.relative_to(REPO).as_posix()
        blocks += mermaid_blocks(path.read_text(encoding="utf-8"), where)
    for path in sorted((REPO / "docs" / "diagrams").glob("*.mmd")):
        blocks.append(Block(path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")))
    return blocks


class MermaidPage:
    """A blank local page with mermaid loaded; records any request that leaves the machine."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self._count = 0

    async def block_network(self, route: Route) -> None:
        self.requests.append(route.request.url)
        await route.abort()

    async def render(self, text: str) -> str:
        """The SVG of `text`; AssertionError with mermaid's message when it does not render."""
        self._count += 1
        async with asyncio.timeout(RENDER_TIMEOUT_S):
            result = await self.page.evaluate(_RENDER, [f"diagram-{self._count}", text])
        assert "error" not in result, result["error"]
        svg = str(result["svg"])
        assert svg.startswith("<svg"), svg[:200]
        assert "Syntax error" not in svg, "mermaid drew its error diagram"
        return svg


@pytest.fixture
async def mermaid() -> AsyncIterator[MermaidPage]:
    if not MERMAID.exists():
        pytest.skip(
            f"{MERMAID} is missing: run `scripts/fetch-mermaid.sh {MERMAID.parent}` "
            "(make venv does)"
        )
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's chromium is not installed ({CHROMIUM}); install it with "
            "`scripts/system-deps.sh` as root (apt-get install chromium)."
        )
    async with chromium() as browser:
        context = await browser.new_context()
        try:
            page = await context.new_page()
            rendering = MermaidPage(page)
            await context.route(re.compile(r"^(?!data:|about:).*"), rendering.block_network)
            await page.set_content("<!doctype html><html><body></body></html>")
            # Read by Playwright and inlined: the page never fetches it.
            await page.add_script_tag(path=MERMAID)
            await page.evaluate(
                "mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' })"
            )
            yield rendering
            assert rendering.requests == [], f"the page tried the network: {rendering.requests}"
        finally:
            await context.close()


def test_fences_are_found_with_their_lines() -> None:
    text = "intro\n```mermaid\ngraph TD\n  a --> b\n```\n```sh\nls\n```\n"
    assert mermaid_blocks(text, "x.md") == [Block("x.md:2", "graph TD\n  a --> b\n")]
    with pytest.raises(ValueError, match=r"x.md:1: .* never closed"):
        mermaid_blocks("```mermaid\ngraph TD\n", "x.md")


def test_the_generated_diagrams_are_among_the_blocks() -> None:
    places = {block.where.split(":")[0] for block in documented_blocks()}
    assert {
        "docs/state-machines.md", "docs/diagrams/session.mmd", "docs/diagrams/candidate.mmd",
        "docs/diagrams/attempt.mmd",
    } <= places  # fmt: skip


async def test_every_documented_diagram_renders(mermaid: MermaidPage) -> None:
    failures: list[str] = []
    blocks = documented_blocks()
    for block in blocks:
        try:
            await mermaid.render(block.text)
        except AssertionError as error:
            failures.append(f"{block.where}: {error}")
    assert not failures, "diagrams that do not render:\n" + "\n".join(failures)
    assert len(blocks) >= 6


async def test_a_broken_diagram_fails(mermaid: MermaidPage) -> None:
    assert "<svg" in await mermaid.render("stateDiagram-v2\n    [*] --> a\n    a --> b: go\n")
    with pytest.raises(AssertionError, match=r"[Pp]arse error"):
        await mermaid.render("stateDiagram-v2\n    a --> : -->\n    }}}\n")
