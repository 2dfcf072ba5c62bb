"""The measurement window: one span per run, stored once (runs.window_start_ns/_end_ns) and
used by every headline figure: output tokens/s, requests/s, $ per 1M tokens, J per token, the
server view and sweep points.

Definition: from the first measured send to the last measured completion. Warm-up requests
are outside it by construction (they are not measured). Every token the summary counts (each
ok, measured request's output) is produced inside this span, so tokens / span is a rate with
no pro-rating, and every figure that divides by time divides by the same seconds. The drain
tail (from the last measured send to the last completion: load falling off after sending
stopped) is inside the window; its length is reported beside it (`drain_s`), so a reader
sees when it is large enough to matter."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from benchbench.store import Store

DEFINITION = "first measured send -> last measured completion"

# A request is complete when its stream closed (else at its last token, else at its send).
_DONE = "coalesce(closed_ns, last_token_ns, sent_ns)"


@dataclass(frozen=True, slots=True)
class Window:
    """[start_ns, end_ns] on the run's clock; last_send_ns marks where the drain tail begins."""

    start_ns: int
    end_ns: int
    last_send_ns: int
    definition: str = DEFINITION

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def drain_s(self) -> float:
        """Seconds from the last measured send to the last completion."""
        return max(0, self.end_ns - self.last_send_ns) / 1e9


def compute_window(con: duckdb.DuckDBPyConnection, run_id: int) -> Window | None:
    """The window from the run's measured (non-warm-up) request rows; None without any, or
    when it has no length."""
    row = con.execute(
        f"SELECT min(sent_ns), max({_DONE}), max(sent_ns) FROM requests "
        "WHERE run_id = ? AND NOT warmup",
        [run_id],
    ).fetchone()
    if row is None or row[0] is None or row[1] <= row[0]:
        return None
    return Window(int(row[0]), int(row[1]), int(row[2]))


def store_window(store: Store, run_id: int) -> Window | None:
    """Compute the run's window and store it in runs.window_start_ns/_end_ns. Call once,
    after the last request row is stored and before energy, cost and the server view."""
    window = compute_window(store.con, run_id)
    if window is not None:
        store.update_run(run_id, window_start_ns=window.start_ns, window_end_ns=window.end_ns)
    return window


def load_window(con: duckdb.DuckDBPyConnection, run_id: int) -> Window | None:
    """The stored window; for a run that never stored one (abandoned, still running) the
    same definition over what its rows say now."""
    row = con.execute(
        "SELECT window_start_ns, window_end_ns, "
        "(SELECT max(sent_ns) FROM requests q WHERE q.run_id = r.run_id AND NOT q.warmup) "
        "FROM runs r WHERE run_id = ?",
        [run_id],
    ).fetchone()
    if row is None or row[0] is None or row[1] is None or row[1] <= row[0]:
        return compute_window(con, run_id)
    last_send = int(row[2]) if row[2] is not None else int(row[1])
    return Window(int(row[0]), int(row[1]), min(last_send, int(row[1])))


def tokens_in_window(
    con: duckdb.DuckDBPyConnection, run_id: int, t0: int, t1: int
) -> tuple[int, int, int]:
    """(output tokens, input tokens, requests) produced inside a span of the window (the
    server view's, clipped to its scrapes): each ok request's server-reported output tokens,
    in proportion to its token events inside the span."""
    row = con.execute(
        """WITH ev AS (
               SELECT idx, count(*) FILTER (WHERE t_ns BETWEEN ? AND ?) AS inside, count(*) AS n
               FROM token_events WHERE run_id = ? GROUP BY idx)
           SELECT coalesce(sum(r.output_tokens * ev.inside / ev.n), 0),
                  coalesce(sum(r.input_tokens) FILTER (WHERE r.first_token_ns BETWEEN ? AND ?), 0),
                  count(*) FILTER (WHERE r.last_token_ns BETWEEN ? AND ?)
           FROM requests r JOIN ev USING (idx)
           WHERE r.run_id = ? AND r.error_kind IS NULL AND NOT r.warmup""",
        [t0, t1, run_id, t0, t1, t0, t1, run_id],
    ).fetchone()
    assert row is not None
    return int(round(row[0])), int(row[1]), int(row[2])


def warmup_tokens_in_window(
    con: duckdb.DuckDBPyConnection, run_id: int, window: Window
) -> tuple[int, int]:
    """(requests, output tokens) of the warm-up requests still generating inside the window:
    each ok warm-up's output tokens in proportion to its token events inside it. They are not
    measured (no latency, no throughput), but the GPUs spent energy on them in the window, so
    the energy figure counts their tokens (benchbench.settle.window_energy)."""
    row = con.execute(
        """WITH warm AS (
               SELECT idx, output_tokens FROM requests
               WHERE run_id = ? AND warmup AND error_kind IS NULL AND output_tokens > 0
                 AND last_token_ns >= ?),
           ev AS (
               SELECT idx, count(*) FILTER (WHERE t_ns BETWEEN ? AND ?) AS inside,
                      count(*) AS n
               FROM token_events WHERE run_id = ? AND idx IN (SELECT idx FROM warm)
               GROUP BY idx)
           SELECT count(*), coalesce(sum(w.output_tokens * ev.inside / ev.n), 0)
           FROM warm w JOIN ev USING (idx) WHERE ev.inside > 0""",
        [run_id, window.start_ns, window.start_ns, window.end_ns, run_id],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(round(row[1]))
