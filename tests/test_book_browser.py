"""The built student edition in a real browser (Debian's Chromium driven by Playwright, fully offline)."""
from __future__ import annotations

import functools
import http.server
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest

from book_build import STUDENT_HTML, built
from course.chapters import all_chapters

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = STUDENT_HTML.parent / "screenshots"
# A word from the prose of each chapter that the search must find on that chapter's page.
SEARCH_TERMS = {"01_softmax": "temperature", "02_losses": "smoothing", "03_optimizers": "Nesterov",
                "04_schedules": "warm", "05_training_loops": "GradientTape", "06_data_pipelines": "DataLoader",
                "08_precision_accumulation_compilation": "GradScaler"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    root = built(STUDENT_HTML, "make book")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def html_pages():
    return sorted(p.relative_to(STUDENT_HTML).as_posix() for p in built(STUDENT_HTML, "make book").rglob("*.html")
                  if "_static" not in p.parts and "mathjax" not in p.parts)


def open_page(browser, url, **context_options):
    """Open ``url`` in a fresh context; returns the page and the problems seen while it loaded."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.on("request", lambda r: problems.append(f"outside request: {r.url}")
            if urlparse(r.url).hostname not in (None, "127.0.0.1") and not r.url.startswith("data:") else None)
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)
    return page, problems


def test_every_page_loads_cleanly_offline(site, browser):
    for name in html_pages():
        page, problems = open_page(browser, f"{site}/{name}")
        broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                               ".map(i => i.src)")
        page.context.close()
        assert problems == [], name
        assert broken == [], f"{name}: images that did not load"


def test_math_is_typeset(site, browser):
    page, problems = open_page(browser, f"{site}/book/01_softmax.html")
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 5", timeout=15000)
    text = page.inner_text("article")
    page.context.close()
    assert problems == []
    assert "\\sum" not in text and "\\frac" not in text, "raw TeX is visible"


def selected_frameworks(page):
    """The framework shown by every tab set that offers both (a Keras-only cell makes a one-tab set)."""
    return page.evaluate("""[...document.querySelectorAll('.framework-tabs')]
        .filter(set => set.querySelectorAll(':scope > label').length > 1)
        .map(set => {
            const input = set.querySelector(':scope > input:checked');
            return set.querySelector(`label[for="${input.id}"]`).dataset.syncId; })""")


def test_tabs_switch_together_and_the_choice_follows_the_reader(site, browser):
    chapters = list(all_chapters())
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site}/book/{chapters[0]}.html")
    assert set(selected_frameworks(page)) == {"keras"}
    page.locator(".framework-tabs label[data-sync-id='pytorch']").first.click()
    assert set(selected_frameworks(page)) == {"pytorch"}, "tab sets on the page did not switch together"
    for chapter in chapters[1:]:
        page.goto(f"{site}/book/{chapter}.html")
        chosen = selected_frameworks(page)
        assert chosen and set(chosen) == {"pytorch"}, f"{chapter} did not follow the reader's choice"
    page.reload()
    assert set(selected_frameworks(page)) == {"pytorch"}
    context.close()


def test_search_finds_each_chapter(site, browser):
    context = browser.new_context()
    page = context.new_page()
    for chapter, term in SEARCH_TERMS.items():
        page.goto(f"{site}/search.html?q={term}")
        page.wait_for_selector("#search-results li, #search-results p", timeout=15000)
        page.wait_for_function("!document.querySelector('#search-results h2')?.textContent.includes('Searching')",
                               timeout=15000)
        links = page.eval_on_selector_all("#search-results li a", "as => as.map(a => a.href)")
        assert any(f"book/{chapter}.html" in link for link in links), f"searching {term!r} misses {chapter}"
    context.close()


def test_pages_fit_a_phone_and_screenshots_are_saved(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for chapter in ["index", *all_chapters()]:
        for label, viewport in [("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})]:
            page, problems = open_page(browser, f"{site}/book/{chapter}.html", viewport=viewport)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            page.screenshot(path=str(SCREENSHOTS / f"{chapter}-{label}.png"))
            page.context.close()
            assert overflow <= 1, f"{chapter} scrolls sideways by {overflow}px at {label} width"


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


@functools.cache
def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def test_every_internal_link_resolves():
    root = built(STUDENT_HTML, "make book")
    broken = []
    for name in html_pages():
        source = root / name
        for href in parse(source).hrefs:
            if urlparse(href).scheme in ("http", "https", "mailto", "javascript"):
                continue
            target_url, fragment = urldefrag(urljoin(f"file:///{name}", href))
            target = root / unquote(urlparse(target_url).path).lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{name}: {href}")
            elif fragment and target.suffix == ".html" and fragment not in parse(target).ids:
                broken.append(f"{name}: {href} (no #{fragment})")
    assert broken == []
