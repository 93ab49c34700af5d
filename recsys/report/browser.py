"""Render an HTML report in headless Chromium: a screenshot and the rendered page's text.

Used by the browser test of the report (the page must open and show its numbers in a real
browser, not only be well-formed source). The browser is found by :func:`find_chromium`:
``$RECSYS_CHROMIUM`` first, then ``chromium``, ``chromium-browser`` or ``google-chrome`` on
``PATH``. On Debian ``.ci/chromium.sh`` installs it (``recsys_chromium_install``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from recsys.errors import RecsysError

CHROMIUM_VAR = "RECSYS_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# Elements whose content is never shown as text.
_HIDDEN = frozenset({"script", "style", "title", "template", "noscript", "head"})
# Inline elements: their tags do not separate words (``<b>0.1</b>2`` reads ``0.12``).
_INLINE = frozenset(
    {"a", "abbr", "b", "code", "em", "i", "kbd", "mark", "s", "small", "span", "strong", "sub"}
    | {"sup", "u", "var"}
)


def find_chromium() -> str | None:
    """The browser to run: ``$RECSYS_CHROMIUM`` if set, else the first of
    ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``, else None.

    A set ``RECSYS_CHROMIUM`` that names no executable gives None (it is not silently replaced
    by another browser).
    """
    chosen = os.environ.get(CHROMIUM_VAR, "").strip()
    if chosen:
        return shutil.which(chosen)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def render(
    html_path: Path, out_png: Path, *, width: int = 1280, height: int = 1800, timeout: float = 60
) -> str:
    """Open ``html_path`` (as a ``file://`` URL) in headless Chromium; return its visible text.

    One browser run writes a ``width`` x ``height`` screenshot of the top of the page to
    ``out_png`` and dumps the DOM after rendering (scripts run, entities resolved); the text is
    taken from that DOM by :func:`visible_text`. The browser runs without sandbox (needed as
    root), without GPU, with a throwaway profile.

    Raises:
        RecsysError: the page does not exist, no browser is found, or the browser fails, times
            out or writes no screenshot (the message ends with the tail of its stderr).
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise RecsysError(f"{html_path}: no such HTML file to render")
    browser = find_chromium()
    if browser is None:
        raise RecsysError(
            f"no headless browser: install Debian's chromium (apt-get install chromium, or "
            f"source .ci/chromium.sh; recsys_chromium_install) or set {CHROMIUM_VAR}"
        )
    out_png = Path(out_png).resolve()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="recsys-chromium-") as profile:
        env = dict(os.environ)
        home = env.get("HOME", "")
        if not home or not os.access(home, os.W_OK):
            env["HOME"] = profile
        command = [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out_png}",
            "--dump-dom",
            page.as_uri(),
        ]
        try:
            done = _run(command, env, timeout)
        except subprocess.TimeoutExpired as error:
            raise RecsysError(
                f"{browser} did not finish rendering {page} within {timeout:g} s"
                f"{_stderr_tail(str(error.stderr or ''))}"
            ) from error
        except OSError as error:
            raise RecsysError(f"{browser} could not be started: {error}") from error
    if done.returncode != 0:
        raise RecsysError(
            f"{browser} failed on {page} (exit status {done.returncode}){_stderr_tail(done.stderr)}"
        )
    if not out_png.is_file() or "<html" not in done.stdout.lower():
        raise RecsysError(
            f"{browser} rendered {page} but wrote no "
            f"{'screenshot' if not out_png.is_file() else 'DOM'}{_stderr_tail(done.stderr)}"
        )
    return visible_text(done.stdout)


def _run(
    command: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run the browser in its own process group; on timeout kill the whole group (the browser
    forks renderer and utility processes) and re-raise with the stderr read so far."""
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(command, timeout, out, err) from None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _stderr_tail(stderr: str, lines: int = 15) -> str:
    """The last ``lines`` lines of the browser's stderr without its D-Bus noise, or ''."""
    kept = [line for line in stderr.splitlines() if line.strip() and "dbus" not in line.lower()]
    return (":\n" + "\n".join(kept[-lines:])) if kept else ""


class _TextCollector(HTMLParser):
    """Collects character data outside hidden elements; block tags separate words."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag not in _INLINE:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag not in _INLINE:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    """The text a reader sees in an HTML document, as one line.

    Contents of ``head``, ``script``, ``style``, ``title``, ``template`` and ``noscript`` are
    dropped, tags are removed (a non-inline tag counts as a space, an inline one such as ``b``
    or ``span`` as nothing), entities are unescaped and runs of whitespace (non-breaking space
    included) become one space.
    """
    collector = _TextCollector()
    collector.feed(dom)
    collector.close()
    return re.sub(r"\s+", " ", "".join(collector.parts)).strip()


def png_rgb8(path: Path) -> np.ndarray:
    """The image at ``path`` as an ``(H, W, 3)`` uint8 array (grey expanded, alpha dropped)."""
    import matplotlib.image as mpimg

    try:
        image = np.asarray(mpimg.imread(path))
    except (OSError, ValueError, SyntaxError) as error:
        raise RecsysError(f"{path}: not a readable PNG ({error})") from error
    if image.dtype != np.uint8:
        image = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def png_is_blank(path: Path, tol: float = 1e-4) -> bool:
    """True when (almost) every pixel has the same colour.

    Blank means: the share of pixels whose 8-bit RGB colour differs from the most common one
    is at most ``tol`` (alpha ignored). With the default, a white 1280 x 1800 page may hold
    about 230 stray pixels and still be blank; a heading of a few words is not blank.
    """
    rgb = png_rgb8(path).reshape(-1, 3).astype(np.int64)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    counts = np.unique(packed, return_counts=True)[1]
    return int(packed.size - counts.max()) <= tol * packed.size
