"""Terminal text of watch: alerts mark unseen n-grams, repeats count, the status line."""

from __future__ import annotations

from sysgram.watch.alerts import Alert, ProcessContext, Repeat
from sysgram.watch.engine import WatchStats
from sysgram.watch.explain import Explanation
from sysgram.watch.render import alert_text, repeat_text, status_text, summary_text
from sysgram.watch.session import Status

CTX = ProcessContext(7, 1, "web\x1b[31m", "/usr/bin/web", None, 7)


def alert(**kw) -> Alert:
    exp = Explanation(["read", "clone", "execve", "close"], [["clone", "execve"]], [(1, 2)],
                      ["execve"])
    return Alert(3, 10**9, "web", CTX, 8, 0.9, 0.5, exp, **kw)


def test_alert_text_brackets_unseen_ngrams_and_escapes_names():
    text = alert_text(alert())
    assert "ALERT #3 web: web\\x1b[31m[7] tid 8 ppid 1 score 0.9 > threshold 0.5" in text
    assert "read [clone execve] close" in text
    assert "new to this binary: execve" in text and "\x1b" not in text


def test_alert_text_on_a_tty_colours_only_with_its_own_sequences():
    text = alert_text(alert(), colour=True)
    assert "\x1b[1;31mclone execve" in text and "\x1b[31m" not in text.replace("\x1b[1;31m", "")


def test_repeat_text_says_how_many_windows_were_folded():
    rep = Repeat(4, 3, "web", CTX, 5.0, 10**9, 2 * 10**9, windows=12, max_score=0.95,
                 tids={8, 9}, pids={7})
    assert "+12 windows in 5 s (alert #3, web\\x1b[31m[7]; tids 8, 9; max score 0.95)" in (
        repeat_text(rep))
    burst = Repeat(5, None, "web", CTX, 5.0, 10**9, 10**9, windows=40, tids={1}, pids={1, 2})
    assert "2 processes in a burst" in repeat_text(burst)


def test_status_and_summary_show_losses_and_unscored_windows():
    line = status_text("web", Status(12.0, 2, 5, 1234.0, 0.3, 0.5, 1, 17, 4))
    assert line == ("watching web 12s: 2 processes, 5 threads, 1,234 windows/s, max score "
                    "0.3/0.5, 1 alerts, 17 events lost (4 windows unscored)")
    stats = WatchStats(windows_scored=10, windows_warmup=3, windows_unscored_loss=4)
    text = summary_text("web", stats, 2.0, 17, "signal")
    assert "stopped after 2.0 s" in text and "4 unscored after losses; 17 events lost" in text
