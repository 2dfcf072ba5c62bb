"""Schema, as named migrations applied in order; the version is stored in the file.

Times are BIGINT nanoseconds from the run's origin on its monotonic clock; `runs.wall_anchor_s`
is the Unix time at that origin, so any row can be placed on the wall clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# A data move SQL cannot say (None in MIGRATIONS): a function of the connection, supplied by
# the module that knows the records it moves (benchbench.results_v1 registers
# "006_typed_results" when imported), so that the store imports nothing above itself.
DataMove = Callable[[Any], None]
DATA_MOVES: dict[str, DataMove] = {}


def register_data_move(name: str, move: DataMove) -> None:
    """Supply the function of the data move `name` (one of MIGRATIONS with None as its SQL)."""
    DATA_MOVES[name] = move


# Each migration is SQL text, or None for a data move (DATA_MOVES).
MIGRATIONS: list[tuple[str, str | None]] = [
    (
        "001_initial",
        """
        CREATE SEQUENCE IF NOT EXISTS run_ids START 1;
        CREATE TABLE runs (
            run_id INTEGER PRIMARY KEY DEFAULT nextval('run_ids'),
            name VARCHAR,
            created_at TIMESTAMPTZ DEFAULT current_timestamp,
            status VARCHAR NOT NULL,            -- running | complete | interrupted | failed
            wall_anchor_s DOUBLE NOT NULL,      -- Unix time at the run's origin
            endpoint VARCHAR,
            api VARCHAR,
            model VARCHAR,
            load_mode VARCHAR,                  -- open | closed | replay
            requested_rate DOUBLE,
            concurrency INTEGER,
            seed BIGINT,
            fingerprint VARCHAR,                -- hash of the request sequence and schedule
            sweep_id VARCHAR,
            sweep_point INTEGER,
            config JSON,
            versions JSON,
            host JSON,
            collectors JSON,
            warnings JSON,
            extra JSON,                         -- energy, cost and other computed results
            ended_ns BIGINT,
            window_start_ns BIGINT,             -- the measurement window (warm-up excluded)
            window_end_ns BIGINT
        );
        CREATE TABLE requests (
            run_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            intended_ns BIGINT,
            sent_ns BIGINT NOT NULL,
            first_token_ns BIGINT,
            last_token_ns BIGINT,
            closed_ns BIGINT,
            n_events INTEGER NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            input_tokens_expected INTEGER,
            output_tokens_expected INTEGER,
            http_status SMALLINT,
            error_kind VARCHAR,
            error_detail VARCHAR,
            warmup BOOLEAN NOT NULL,
            session_id VARCHAR,
            turn INTEGER,
            output_chars INTEGER,
            server_timings JSON
        );
        CREATE TABLE token_events (
            run_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            t_ns BIGINT NOT NULL,
            tokens INTEGER
        );
        CREATE TABLE samples (
            run_id INTEGER NOT NULL,
            collector VARCHAR NOT NULL,
            device VARCHAR NOT NULL,
            t_ns BIGINT NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE
        );
        CREATE TABLE baselines (
            name VARCHAR PRIMARY KEY,
            run_id INTEGER NOT NULL,
            set_at TIMESTAMPTZ DEFAULT current_timestamp
        );
        """,
    ),
    (
        "002_run_groups",
        """
        -- Runs measured together: a sweep (one run per load point) or --repeat N (pooled).
        ALTER TABLE runs ADD COLUMN group_kind VARCHAR;  -- 'sweep' | 'repeat' | NULL
        """,
    ),
    (
        "003_token_event_gaps",
        """
        -- Gap to the previous token-bearing event of the same request (NULL for the first),
        -- computed at ingest from t_ns, so chunk-gap percentiles need no window function
        -- over 100M rows.
        ALTER TABLE token_events ADD COLUMN gap_ns BIGINT;
        """,
    ),
    (
        "004_output_token_source",
        """
        -- 'usage' (the server's report), 'client_tokenizer' (no usage; counted from the text
        -- with --tokenizer) or NULL (unknown).
        ALTER TABLE requests ADD COLUMN output_tokens_source VARCHAR;
        """,
    ),
    (
        "005_request_notes",
        """
        -- What the parser saw that is not an error, '; '-joined, e.g.
        -- 'malformed_usage: completion_tokens=-5' (that count is then stored as NULL).
        ALTER TABLE requests ADD COLUMN notes VARCHAR;
        """,
    ),
    # Runs stored before typed results: runs.extra into the versioned shape, collectors and
    # warnings into their own columns, window, energy and cost recomputed (Python: see it).
    ("006_typed_results", None),
    (
        "007_cached_input_tokens",
        """
        -- Prompt tokens the server served from its prompt (prefix) cache, as it reported them
        -- (usage.prompt_tokens_details.cached_tokens, cache_read_input_tokens, llama.cpp's
        -- timings.cache_n); NULL where it did not say.
        ALTER TABLE requests ADD COLUMN cached_input_tokens INTEGER;
        """,
    ),
    (
        "008_workers_kinds_inputs",
        """
        -- The client worker that sent each request (0 in a one-process run).
        ALTER TABLE requests ADD COLUMN worker SMALLINT DEFAULT 0;
        -- First streamed event of any kind, even one without text (vLLM's TTFT starts here).
        ALTER TABLE requests ADD COLUMN first_event_ns BIGINT;
        -- Reasoning tokens as the server reported them (completion_tokens_details).
        ALTER TABLE requests ADD COLUMN reasoning_tokens INTEGER;
        -- Prompt tokens the workload expects to be served from the prefix cache.
        ALTER TABLE requests ADD COLUMN cached_input_tokens_expected INTEGER;
        -- Embeddings / rerank: inputs (documents) in the request; NULL for generation.
        ALTER TABLE requests ADD COLUMN inputs INTEGER;
        -- answer | reasoning | tool_call; NULL is an answer event.
        ALTER TABLE token_events ADD COLUMN kind VARCHAR;
        """,
    ),
    (
        "009_calibrations",
        """
        -- `bench calibrate`: this client machine's ceilings against the built-in simulator,
        -- one row per worker count measured (benchbench.calibrate reads the latest per host).
        CREATE SEQUENCE IF NOT EXISTS calibration_ids START 1;
        CREATE TABLE calibrations (
            calibration_id INTEGER DEFAULT nextval('calibration_ids'),
            batch VARCHAR NOT NULL,             -- the rows of one `bench calibrate` share it
            host VARCHAR NOT NULL,
            cores INTEGER NOT NULL,
            workers INTEGER NOT NULL,
            max_rate DOUBLE,                    -- req/s held with lag p99 <= 2 ms, rate +-0.5%
            lag_p99_ms DOUBLE,                  -- schedule lag p99 at max_rate
            max_tokens_per_s DOUBLE,            -- streamed tokens/s held, stamp error p99 <= 1 ms
            stamp_error_p99_ms DOUBLE,          -- timestamp error p99 at max_tokens_per_s
            cpu_s_per_1m_tokens DOUBLE,         -- client CPU-s per 1M streamed tokens, stored
            quick BOOLEAN NOT NULL,
            created_at TIMESTAMPTZ DEFAULT current_timestamp,
            version VARCHAR NOT NULL            -- benchbench version that measured it
        );
        """,
    ),
    (
        "010_calibration_stalls",
        """
        -- How often the machine took the CPU from a spinning process while it was calibrated
        -- (benchbench.stalls): the share of the time in stalls over 0.5 ms, and the share more
        -- than 2 ms into one (that share of sends is late by over 2 ms on any client).
        ALTER TABLE calibrations ADD COLUMN stalled_share DOUBLE;
        ALTER TABLE calibrations ADD COLUMN beyond_lag_bound DOUBLE;
        """,
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)
