"""Re-take the README's screenshots from the committed report pages (headless Chromium, offline).

    make screenshots        # = .venv/bin/python docs/screenshots/retake.py

Needs the dev install's playwright and a Chromium at /usr/bin/chromium (or $CHROMIUM). Each shot is the
top of a page at a fixed viewport, or one section of it, so a re-take after a retrain differs from the old
one only where the pages do. Any request off the local disk is refused and fails the run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent

#: (png, page under reports/, viewport width, height, CSS selector of the section to shoot or None)
SHOTS = [
    ("report_index.png", "mini/index.html", 1280, 1400, None),
    ("report_table2c.png", "mini/table2c.html", 1280, 1700, None),
    ("report_table2c_config_diff.png", "mini/table2c.html", 1280, 900, "section#config-diff"),
    ("report_runs.png", "mini/runs.html", 1280, 1400, None),
    ("report_bench.png", "bench/index.html", 1024, 1100, None),
]


def main() -> int:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("retake.py: needs playwright (make install brings it with the dev extras)", file=sys.stderr)
        return 2
    chromium = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        print(f"retake.py: no browser at {chromium}; install chromium or set CHROMIUM", file=sys.stderr)
        return 2
    refused: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        for png, page_path, width, height, selector in SHOTS:
            source = REPO / "reports" / page_path
            if not source.is_file():
                print(f"retake.py: {source} is missing; build it with `make tables`", file=sys.stderr)
                return 2
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route(
                "**/*",
                lambda r: (
                    r.continue_()
                    if r.request.url.startswith("file:")
                    else (refused.append(r.request.url), r.abort())
                ),
            )
            page.goto(source.as_uri())
            page.wait_for_load_state("load")
            target = page.locator(selector) if selector else page
            target.screenshot(path=str(OUT / png))
            page.close()
            print(f"{OUT.relative_to(REPO) / png}: {page_path}" + (f" {selector}" if selector else ""))
        browser.close()
    if refused:
        print(
            f"retake.py: the pages asked for {len(refused)} off-disk resource(s): {refused[0]}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
