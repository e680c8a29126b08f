"""Every shell snippet the docs mark runnable runs, and exits 0.

A ```sh or ```bash fence whose line directly above is `<!-- runnable -->` or
`<!-- runnable: demo -->` is a runnable snippet. Each runs as a test of its own (id
`file:line` of its fence) with `bash -euo pipefail`, from the repository root, with
`.venv/bin` first on PATH, in a process group of its own, and must exit 0 within 120 s leaving
no process behind.

Before a `demo` snippet a demo appliance (`orchestrator demo --port 0 --data-dir <tmp>`) is
running, one per document: started for the document's first demo snippet, stopped with SIGINT
after its last, leaving no process behind. The snippet sees ORCHESTRATOR_URL
(`http://127.0.0.1:<port>`, no trailing slash), ORCHESTRATOR_API_KEY and DEMO_DATA_DIR. The
demo accepts each TOTP code once, so a snippet that runs `demo code` starts only once the TOTP
time step an earlier snippet of its document may have spent a code of is over.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO

import pytest

from orchestrator.security import totp

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
DOC_GLOBS = ("README.md", "docs/**/*.md", "contracts/*.md", "deploy/*.md", "ansible/*.md")
SHELL_LANGUAGES = frozenset({"sh", "bash"})
SNIPPET_TIMEOUT_S = 120.0
DEMO_START_TIMEOUT_S = 60.0
DEMO_STOP_TIMEOUT_S = 30.0
"""The demo's own shutdown is bounded at 10 s (orchestrator.demo.appliance); room beyond it."""
HTTP_TIMEOUT_S = 10.0
SHOWN_CHARS = 6000
"""How much of a failed snippet's output (and the demo's log) a failure shows, from the end."""
CODE_COMMAND = "demo code"
"""A snippet that contains this reads (and presumably spends) a demo TOTP code."""
DEMO_VARIABLES = ("ORCHESTRATOR_URL", "ORCHESTRATOR_API_KEY", "DEMO_DATA_DIR")

_MARKER = re.compile(r"^\s*<!--\s*runnable(?:\s*:\s*(?P<kind>[^\s>]*))?\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


class Kind(StrEnum):
    """What a snippet needs before it runs."""

    PLAIN = "plain"
    DEMO = "demo"


@dataclass(frozen=True, slots=True)
class Snippet:
    """A runnable shell block of a Markdown file; `line` is its opening fence's (1-based)."""

    source: str
    line: int
    kind: Kind
    code: str

    @property
    def id(self) -> str:
        """`file:line`, the test id."""
        return f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class Collected:
    """The runnable snippets of some Markdown, and what is wrong with its markers."""

    snippets: list[Snippet] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def collect(text: str, source: str) -> Collected:
    """The runnable snippets of Markdown `text` (named `source` in ids and problems).

    A marker must sit directly above a ```sh or ```bash fence; one anywhere else, or with an
    unknown kind, is a problem (a snippet someone meant to run would silently not run).
    Markers inside code blocks are text, not markers.
    """
    found = Collected()
    lines = text.splitlines()
    index = 0
    pending: tuple[int, Kind | None, str] | None = None  # the marker's line, kind, raw kind
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is not None:
            end = _closing_fence(lines, index, fence.group("fence"))
            language = fence.group("info").strip().split(" ")[0].lower()
            if end is None:
                found.problems.append(f"{source}:{index + 1}: code block never closed")
                end = len(lines)
            if pending is not None:
                marker_line, kind, raw = pending
                if kind is None:
                    found.problems.append(
                        f"{source}:{marker_line}: unknown runnable kind {raw!r} "
                        f"(use `<!-- runnable -->` or `<!-- runnable: demo -->`)"
                    )
                elif language not in SHELL_LANGUAGES:
                    found.problems.append(
                        f"{source}:{marker_line}: runnable marker above a "
                        f"{language or 'plain'!r} block; only sh and bash blocks run"
                    )
                else:
                    body = lines[index + 1 : end]
                    found.snippets.append(
                        Snippet(
                            source=source,
                            line=index + 1,
                            kind=kind,
                            code=_dedent(body, len(fence.group("indent"))),
                        )
                    )
                pending = None
            index = end + 1
            continue
        if pending is not None:
            found.problems.append(
                f"{source}:{pending[0]}: runnable marker not directly above a code block"
            )
            pending = None
        marker = _MARKER.match(line)
        if marker is not None:
            raw = marker.group("kind") or ""
            kind = Kind.DEMO if raw == "demo" else Kind.PLAIN if raw == "" else None
            pending = (index + 1, kind, raw)
        index += 1
    if pending is not None:
        found.problems.append(
            f"{source}:{pending[0]}: runnable marker not directly above a code block"
        )
    return found


def _closing_fence(lines: list[str], opening: int, fence: str) -> int | None:
    """The index of the line closing the block opened at `opening` (same character, at
    least as long, nothing after it), or None."""
    closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for index in range(opening + 1, len(lines)):
        if closing.match(lines[index]):
            return index
    return None


def _dedent(body: list[str], indent: int) -> str:
    """A fenced block's text without the fence's indentation (blocks inside list items)."""
    return "\n".join(line[indent:] if line[:indent].isspace() else line for line in body) + "\n"


def doc_files(root: Path) -> list[Path]:
    """The Markdown files whose snippets run, in a stable order."""
    files: dict[Path, None] = {}
    for pattern in DOC_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                files[path] = None
    return list(files)


def collect_docs(root: Path) -> Collected:
    """The runnable snippets and marker problems of every doc file under `root`."""
    everything = Collected()
    for path in doc_files(root):
        found = collect(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
        everything.snippets.extend(found.snippets)
        everything.problems.extend(found.problems)
    return everything


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a snippet's run ended."""

    returncode: int | None
    """None: it did not end within its time and was killed."""
    stdout: str
    stderr: str
    leftovers: bool
    """It exited but left processes behind (killed since)."""


def run_snippet(
    code: str, env: Mapping[str, str], *, cwd: Path = REPO, timeout_s: float = SNIPPET_TIMEOUT_S
) -> Outcome:
    """Run `code` with `bash -euo pipefail` in a process group of its own; whatever is left
    of the group when it ends (or times out) is killed."""
    process = subprocess.Popen(  # noqa: S603 - bash running our own docs' snippets
        ["bash", "-euo", "pipefail", "-c", code],  # noqa: S607 - bash from PATH, as docs say
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
        return Outcome(returncode=None, stdout=stdout, stderr=stderr, leftovers=False)
    leftovers = _group_alive(process.pid)
    if leftovers:
        _kill_group(process.pid)
    return Outcome(returncode=process.returncode, stdout=stdout, stderr=stderr, leftovers=leftovers)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(text: str) -> str:
    return (
        text
        if len(text) <= SHOWN_CHARS
        else f"[... {len(text) - SHOWN_CHARS} chars]" + (text[-SHOWN_CHARS:])
    )


def failure_report(snippet: Snippet, outcome: Outcome, timeout_s: float, extra: str = "") -> str:
    """What a failed snippet shows: where it is, its text, how it ended, its output."""
    if outcome.returncode is None:
        ending = f"did not finish within {timeout_s:g} s (killed)"
    elif outcome.leftovers:
        ending = f"exit code {outcome.returncode}, but it left processes running (killed)"
    else:
        ending = f"exit code {outcome.returncode}"
    return (
        f"runnable snippet {snippet.id} failed: {ending}\n"
        f"--- snippet ---\n{snippet.code}"
        f"--- stdout ---\n{_tail(outcome.stdout)}\n"
        f"--- stderr ---\n{_tail(outcome.stderr)}\n{extra}"
    )


def check_snippet(
    snippet: Snippet,
    env: Mapping[str, str],
    *,
    timeout_s: float = SNIPPET_TIMEOUT_S,
    extra: str = "",
) -> Outcome:
    """Run `snippet`; AssertionError with the whole story unless it exits 0, in time, clean."""
    outcome = run_snippet(snippet.code, env, timeout_s=timeout_s)
    if outcome.returncode != 0 or outcome.leftovers:
        # Raised, not asserted: pytest would indent the snippet in an assertion's message.
        raise AssertionError(failure_report(snippet, outcome, timeout_s, extra))
    return outcome


def snippet_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment snippets run in: ours, `.venv/bin` first on PATH, no stray demo
    variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in DEMO_VARIABLES}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


# -- the demo -----------------------------------------------------------------------------


class DemoProcess:
    """A running `orchestrator demo`: its URL and API key read from its welcome text."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.url = ""
        self.api_key = ""
        self.last_code_step: int | None = None
        """The newest TOTP step a snippet may have spent a code of."""
        self._stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log: IO[bytes] = log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - our own entry point
            [
                str(VENV_BIN / "orchestrator"),
                "demo",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
            ],
            cwd=REPO,
            env=snippet_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            # Its own group: what the demo starts (Mosquitto) can be found, and killed if
            # the demo fails to stop it.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="demo-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Drains stdout for the demo's whole life (it announces a code every 30 s).
        stream = self._process.stdout
        assert stream is not None
        for line in stream:
            self._stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout_s: float = DEMO_START_TIMEOUT_S) -> None:
        """Wait for the welcome lines naming the URL and the key, then check health once.

        The demo listens before it prints them, so the first request is answered."""
        deadline = time.monotonic() + timeout_s
        while not (self.url and self.api_key):
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"the demo printed no URL and API key within {timeout_s:g} s\n" + self.output()
                ) from None
            if line is None:
                raise AssertionError(
                    f"the demo exited ({self._process.wait()}) before it was ready\n"
                    + self.output()
                )
            if line.startswith("Console:"):
                self.url = line.split(None, 1)[1].strip().rstrip("/")
            elif line.startswith("API key:"):
                self.api_key = line.split(":", 1)[1].strip()
        with urllib.request.urlopen(  # noqa: S310 - http on loopback
            f"{self.url}/api/v1/health", timeout=HTTP_TIMEOUT_S
        ) as response:
            if response.status != 200:
                raise AssertionError(f"health answered {response.status}\n{self.output()}")

    def env(self) -> dict[str, str]:
        """What a demo snippet sees."""
        return snippet_env(
            {
                "ORCHESTRATOR_URL": self.url,
                "ORCHESTRATOR_API_KEY": self.api_key,
                "DEMO_DATA_DIR": str(self.data_dir),
            }
        )

    def wait_for_unused_code(self) -> None:
        """Return once the TOTP step a code was last handed out in is over: the demo accepts
        one code per step. Bounded by one step (30 s)."""
        if self.last_code_step is None:
            return
        while (now := time.time()) < (self.last_code_step + 1) * totp.STEP_S:
            # Waits on the clock itself: the next step begins at a known instant.
            threading.Event().wait((self.last_code_step + 1) * totp.STEP_S - now + 0.05)

    def spent_code(self) -> None:
        """Remember that a code of the current step (or an earlier one) may be spent."""
        self.last_code_step = int(time.time()) // totp.STEP_S

    def output(self) -> str:
        """The demo's stdout so far and the tail of its log."""
        self._log.flush()
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        stdout = "".join(self._stdout_lines)
        return f"--- demo stdout ---\n{_tail(stdout)}\n--- demo log ---\n{_tail(log)}\n"

    def stop(self, timeout_s: float = DEMO_STOP_TIMEOUT_S) -> None:
        """SIGINT, as Ctrl-C; wait for the exit; then nothing of its group may be left."""
        problems: list[str] = []
        try:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
                try:
                    code = self._process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    problems.append(f"the demo did not stop within {timeout_s:g} s of SIGINT")
                    _kill_group(self._process.pid)
                    code = self._process.wait()
                if code != 0 and not problems:
                    problems.append(f"the demo exited with {code} on SIGINT")
            else:
                problems.append(f"the demo had exited early ({self._process.returncode})")
            if _group_alive(self._process.pid):
                problems.append("the demo left processes running (killed)")
                _kill_group(self._process.pid)
            self._reader.join(timeout=timeout_s)
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._log.close()
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + self.output())


class Demos:
    """One demo per document: started for the document's first demo snippet, stopped after
    its last (or when another document's snippet needs one, or at the end of the module).

    Per document, not per module: a demo's fleet is used up by a batch (a verified device
    has left the onboarding network), and each page's examples start from a fresh demo,
    as its reader does.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._source: str | None = None
        self._running: DemoProcess | None = None

    def for_source(self, source: str) -> DemoProcess:
        """The running demo of `source`, started if need be."""
        if self._running is not None and self._source == source:
            return self._running
        self.stop()
        workdir = self._tmp_path_factory.mktemp("demo")
        started = DemoProcess(workdir / "data", workdir / "demo.log")
        self._source, self._running = source, started
        started.wait_ready()
        return started

    def stop(self) -> None:
        """Stop the running demo, if any; AssertionError when it did not stop cleanly."""
        running, self._running, self._source = self._running, None, None
        if running is not None:
            running.stop()


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demos]:
    """The module's demos (at most one runs at a time)."""
    pool = Demos(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.stop()


# -- the snippets of the docs ---------------------------------------------------------------

DOCS = collect_docs(REPO)
LAST_DEMO_SNIPPETS = frozenset(
    {s.source: s.id for s in DOCS.snippets if s.kind is Kind.DEMO}.values()
)
"""Each document's last demo snippet: its demo stops after it."""


def test_every_marker_marks_a_shell_block() -> None:
    assert DOCS.problems == []


@pytest.mark.parametrize("snippet", DOCS.snippets, ids=[s.id for s in DOCS.snippets])
def test_runnable_snippet(snippet: Snippet, request: pytest.FixtureRequest) -> None:
    if snippet.kind is Kind.PLAIN:
        check_snippet(snippet, snippet_env())
        return
    pool: Demos = request.getfixturevalue("demos")
    running = pool.for_source(snippet.source)
    uses_code = CODE_COMMAND in snippet.code
    if uses_code:
        running.wait_for_unused_code()
    try:
        check_snippet(snippet, running.env(), extra=running.output())
    finally:
        if uses_code:
            running.spent_code()
        if snippet.id in LAST_DEMO_SNIPPETS:
            # Here, so that a demo that does not stop cleanly fails its own document's test.
            pool.stop()


# -- the runner itself ------------------------------------------------------------------------

SAMPLE = """\
# Sample

<!-- runnable -->
```sh
echo plain
```

<!-- runnable: demo -->
```bash
curl -s "$ORCHESTRATOR_URL/api/v1/health"
```

```sh
echo not marked
```

<!-- runnable -->

```sh
echo marker separated by a blank line
```

````markdown
<!-- runnable -->
```sh
echo inside another block
```
````

1. In a list:

   <!-- runnable -->
   ```sh
   echo indented
   ```

<!-- runnable: later -->
```sh
echo unknown kind
```

<!-- runnable -->
```python
print("not a shell")
```
"""


def test_collector_finds_marked_shell_blocks_only(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "sample.md"
    doc.parent.mkdir()
    doc.write_text(SAMPLE, encoding="utf-8")

    found = collect_docs(tmp_path)

    assert [(s.id, s.kind, s.code) for s in found.snippets] == [
        ("docs/sample.md:4", Kind.PLAIN, "echo plain\n"),
        ("docs/sample.md:9", Kind.DEMO, 'curl -s "$ORCHESTRATOR_URL/api/v1/health"\n'),
        ("docs/sample.md:33", Kind.PLAIN, "echo indented\n"),
    ]
    assert found.problems == [
        "docs/sample.md:17: runnable marker not directly above a code block",
        "docs/sample.md:37: unknown runnable kind 'later' (use `<!-- runnable -->` or "
        "`<!-- runnable: demo -->`)",
        "docs/sample.md:42: runnable marker above a 'python' block; only sh and bash blocks run",
    ]


def test_collector_reads_only_the_doc_files(tmp_path: Path) -> None:
    marked = "<!-- runnable -->\n```sh\ntrue\n```\n"
    for name in ("README.md", "docs/a/b.md", "contracts/c.md", "notes/d.md", "docs/e.txt"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(marked, encoding="utf-8")

    found = collect_docs(tmp_path)

    assert [s.id for s in found.snippets] == ["README.md:2", "docs/a/b.md:2", "contracts/c.md:2"]


def test_a_passing_snippet_runs_strict_bash_from_the_repo_with_the_venv_first() -> None:
    snippet = Snippet(
        source="x.md",
        line=1,
        kind=Kind.PLAIN,
        code='echo "$PWD"; command -v orchestrator; echo "$-"\n',
    )
    outcome = check_snippet(snippet, snippet_env())
    cwd, orchestrator, flags = outcome.stdout.splitlines()
    assert cwd == str(REPO)
    assert orchestrator == str(VENV_BIN / "orchestrator")
    assert {"e", "u"} <= set(flags)


def test_a_failing_snippet_fails_with_its_text_exit_code_and_output() -> None:
    snippet = Snippet(
        source="docs/x.md",
        line=7,
        kind=Kind.PLAIN,
        code="echo to-stdout\necho to-stderr >&2\nfalse | true\necho unreachable\n",
    )
    with pytest.raises(AssertionError) as failed:
        check_snippet(snippet, snippet_env())
    message = str(failed.value)
    assert "runnable snippet docs/x.md:7 failed: exit code 1" in message
    assert snippet.code in message
    assert "to-stdout" in message
    assert "to-stderr" in message
    assert "unreachable" not in message.split("--- stdout ---")[1]


def test_a_snippet_that_outlives_its_time_or_leaves_processes_fails() -> None:
    slow = Snippet(source="x.md", line=1, kind=Kind.PLAIN, code="exec sleep 30\n")
    with pytest.raises(AssertionError, match=r"did not finish within 0\.5 s"):
        check_snippet(slow, snippet_env(), timeout_s=0.5)
    litter = Snippet(
        source="x.md", line=2, kind=Kind.PLAIN, code="sleep 30 </dev/null >/dev/null 2>&1 &\n"
    )
    with pytest.raises(AssertionError, match="left processes running"):
        check_snippet(litter, snippet_env())
