"""Whether a missing Chromium skips the browser tests (locally) or fails them (under CI, where .ci/run
installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import missing_chromium


@pytest.mark.parametrize("ci,expected", [(None, "skip"), ("", "skip"), ("false", "skip"), ("0", "skip"),
                                         ("true", "fail"), ("1", "fail"), ("True", "fail")])
def test_a_missing_browser_skips_locally_and_fails_under_ci(monkeypatch, tmp_path: Path, ci, expected) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert missing_chromium(tmp_path / "chromium") == expected


def test_a_present_browser_runs_under_ci_or_not(monkeypatch, tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("")
    for ci in ("true", ""):
        monkeypatch.setenv("CI", ci)
        assert missing_chromium(browser) is None
