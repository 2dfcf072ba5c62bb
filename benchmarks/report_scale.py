"""Report time and size at scale: synthesise a store with 1M requests and ~20M token events
(plus two GPUs' power and energy at 10 Hz) directly in DuckDB SQL, then time write_report.
Target: well under a minute and under 20 MB.

    python benchmarks/report_scale.py                       # 1M requests, ~20 tokens each
    python benchmarks/report_scale.py --requests 100000 --keep /tmp/scale.duckdb
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchbench.report_file import write_report
from benchbench.store import open_store


def synthesise(db: str, requests: int, tokens: int, rate: float, gpus: int) -> int:
    """One complete open-loop run: `requests` at `rate` req/s, `tokens` mean output tokens
    (one token per event), 1% errors of three kinds, power/energy samples per GPU."""
    store = open_store(db)
    con = store.con
    span_s = requests / rate + 30
    run_id = store.create_run(
        wall_anchor_s=time.time(),
        name="synthetic <scale> run",
        endpoint="http://gpu-host:8000/v1",
        api="chat",
        model="synthetic-70b",
        load_mode="open",
        requested_rate=rate,
        seed=0,
        config={
            "rate": rate,
            "requests": requests,
            "api_key": "***",
            "gpu_price": 2.5,
            "gpu_count": gpus,
            "kwh_price": 0.12,
            "pue": 1.3,
        },  # fmt: skip
        versions={"benchbench": "synthetic"},
        collectors={"nvml": {"gpus": [{"index": i, "name": "NVIDIA H100"} for i in range(gpus)]}},
    )
    step_ns = int(1e9 / rate)
    con.execute(
        f"""
        INSERT INTO requests
        SELECT {run_id}, i, i * {step_ns}, i * {step_ns} + 100000 + (hash(i) % 500000),
               first_ns, last_ns, last_ns + 50000, out_tok,
               in_tok, out_tok, in_tok, out_tok, CASE WHEN kind IS NULL THEN 200 ELSE 500 END,
               kind, CASE WHEN kind IS NOT NULL THEN 'synthetic ' || kind END,
               i < 100, NULL, NULL, out_tok * 4, NULL, 'usage'
        FROM (
            SELECT i, kind, out_tok, in_tok,
                   i * {step_ns} + 20000000 + (hash(i * 7) % 180000000) AS first_ns,
                   i * {step_ns} + 20000000 + (hash(i * 7) % 180000000)
                       + (out_tok - 1) * (8000000 + hash(i * 3) % 4000000) AS last_ns
            FROM (
                SELECT i,
                       CASE WHEN hash(i * 11) % 100 <> 0 THEN NULL
                            WHEN hash(i) % 3 = 0 THEN 'timeout'
                            WHEN hash(i) % 3 = 1 THEN 'http_500' ELSE 'reset' END AS kind,
                       1 + (hash(i * 5) % {2 * tokens - 1})::INTEGER AS out_tok,
                       64 + (hash(i * 13) % 4000)::INTEGER AS in_tok
                FROM range({requests}) t(i)))
        """
    )
    con.execute(
        f"""
        INSERT INTO token_events
        SELECT run_id, idx, s, first_token_ns
               + (s * (last_token_ns - first_token_ns) // greatest(n_events - 1, 1)), NULL,
               CASE WHEN s > 0 THEN (last_token_ns - first_token_ns) // greatest(n_events - 1, 1)
               END
        FROM (SELECT run_id, idx, first_token_ns, last_token_ns, n_events,
                     unnest(range(n_events)) AS s
              FROM requests WHERE run_id = {run_id})
        """
    )
    n_samples = int(span_s * 10)
    con.execute(
        f"""
        INSERT INTO samples
        SELECT {run_id}, 'nvml', g::VARCHAR, k * 100000000, m,
               CASE WHEN m = 'power_instant_w' THEN 350 + 200 * sin(k / 300.0) + (hash(k) % 40)
                    ELSE k * 100.0 * 450 END
        FROM range({gpus}) a(g), range({n_samples}) b(k),
             (VALUES ('power_instant_w'), ('energy_mj')) c(m)
        """
    )
    window = (10**9, int((requests / rate) * 1e9))
    extra = {
        "energy": {"source": "nvml_counter", "idle_w": 70.0 * gpus, "avg_power_w": 450.0 * gpus,
                   "j_per_output_token": 0.4, "gpus": [str(g) for g in range(gpus)],
                   "idle_window_ns": [0, 10**9]},
        "cost": {"price_source": "user", "usd_per_1m_output_tokens": 0.9,
                 "energy_usd_per_1m_output_tokens": 0.02, "notes": []},
    }  # fmt: skip
    store.update_run(
        run_id,
        status="complete",
        ended_ns=int(span_s * 1e9),
        extra=extra,
        window_start_ns=window[0],
        window_end_ns=window[1],
    )
    store.close()
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=20, help="mean output tokens per request")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--keep", help="write the store here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.keep or str(Path(tmp) / "scale.duckdb")
        t0 = time.perf_counter()
        run_id = synthesise(db, args.requests, args.tokens, args.rate, args.gpus)
        t_syn = time.perf_counter() - t0
        out = str(Path(tmp) / "report.html")
        info = write_report(db, [run_id], out)
        result = {
            "requests": args.requests,
            "synthesise_s": round(t_syn, 2),
            "report_s": round(info.seconds, 2),
            "report_mb": round(info.bytes / 1e6, 2),
            "charts": info.charts,
        }
        print(json.dumps(result))
        print(f"report of {args.requests:,} requests: {info.seconds:.1f} s, "
              f"{info.bytes / 1e6:.1f} MB, {info.charts} charts")  # fmt: skip


if __name__ == "__main__":
    main()
