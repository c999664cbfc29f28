"""What the page and `xpm-sync status` say is left of the day's calls."""

from __future__ import annotations

from xpm_sync.api.usage import calls_left


def test_before_xpm_says_anything_the_count_here_decides() -> None:
    assert calls_left(920, None, 5000) == 4080


def test_xpm_s_figure_decides_once_it_has_sent_one() -> None:
    # 920 made here, one of them refused (XPM does not count it): XPM says 4,081 are left.
    assert calls_left(920, 4081, 5000) == 4081


def test_xpm_s_figure_wins_when_it_says_less() -> None:
    # Calls made elsewhere on the same practice today (another app) count against the same limit.
    assert calls_left(920, 3000, 5000) == 3000


def test_never_below_nothing() -> None:
    assert calls_left(5200, None, 5000) == 0
    assert calls_left(10, -3, 5000) == 0
