"""`bench run` and `bench agent` as a user runs them (subprocess) on a host without a usable
GPU: energy is said to be unmeasured in one line, cost is still computed from the given
price, and bad input is one line and exit code 2, never a traceback.

CUDA_VISIBLE_DEVICES="" hides any GPU, so these tests mean the same on a GPU host.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

BENCH = [sys.executable, "-m", "benchbench.cli"]
# Wide lines: rich wraps at the terminal width, 80 columns when output is not a terminal.
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "200"}


def bench(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BENCH, *args], capture_output=True, text=True, env=ENV, timeout=timeout_s
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_run_without_a_gpu_says_energy_was_not_measured_and_prices_the_run(
    tmp_path: Path,
) -> None:
    db = tmp_path / "b.duckdb"
    done = bench("run", "--requests", "10", "-q", "--gpu-price", "2", "--gpu-count", "1",
                 "--db", str(db))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = lines(done.stdout)
    energy = [line for line in out if "energy not measured" in line]
    assert len(energy) == 1, done.stdout
    assert energy[0].split()[0] == "energy"
    cost = [line for line in out if line.startswith("cost ")]
    assert len(cost) == 1, done.stdout
    match = re.search(r"\$([0-9.]+) per 1M output tokens", cost[0])
    assert match, cost[0]
    with duckdb.connect(str(db), read_only=True) as con:
        (extra,) = con.execute("SELECT extra FROM runs").fetchone()
    stored = json.loads(extra)
    assert "energy not measured" in stored["energy"]["unavailable"]
    c = stored["cost"]
    assert c["price_source"] == "user" and c["usd_per_hour"] == 2.0
    # $ per 1M output tokens = price x GPUs x window hours / output tokens x 1e6, as printed.
    expected = 2.0 * 1 * (c["window_s"] / 3600) / c["output_tokens"] * 1e6
    assert c["usd_per_1m_output_tokens"] == pytest.approx(expected, rel=1e-9)
    assert float(match.group(1)) == pytest.approx(expected, abs=0.0005)


def test_gpu_price_alone_against_a_host_without_gpus_is_priced_as_one_gpu_and_says_so(
    tmp_path: Path,
) -> None:
    # The flag's help and the rule agree: no --gpu-count and no GPU measured is one GPU,
    # said plainly next to the figure.
    done = bench("run", "--requests", "5", "--sim-fast", "-q", "--gpu-price", "2",
                 "--db", str(tmp_path / "c.duckdb"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    cost = [
        line
        for line in lines(done.stdout)
        if line.split()[:2][-1:] != ["note"] and line.startswith("cost ")
    ]
    assert len(cost) == 1 and "per 1M output tokens" in cost[0], done.stdout
    assert "priced as 1 GPU at $2/GPU-hour" in " ".join(done.stdout.split()), done.stdout
    assert "sent 5 = ok 5" in done.stdout


def test_agent_without_nvml_exits_2_with_an_error_line_and_no_traceback() -> None:
    done = bench("agent", "--port", "0", timeout_s=30)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in lines(output) if line.startswith("error:")]
    assert len(errors) == 1 and ("NVML" in errors[0] or "GPU" in errors[0]), output


def test_agent_without_nvml_prints_nothing_but_the_error() -> None:
    done = bench("agent", "--port", "0", timeout_s=30)
    assert len(lines(done.stdout + done.stderr)) == 1, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--gpu-price", "-1"], "--gpu-price"),
        (["--instance-price", "10"], "--gpu-count"),
        (["--gpu-price", "2", "--instance-price", "9", "--gpu-count", "1"], "not both"),
        (["--pue", "0.5"], "--pue"),
    ],
)
def test_bad_price_flags_exit_2_with_one_line_before_any_measurement(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    db = tmp_path / "never.duckdb"
    done = bench("run", "--requests", "5", "-q", *flags, "--db", str(db))
    output = lines(done.stdout + done.stderr)
    assert done.returncode == 2, output
    assert len(output) == 1 and output[0].startswith("error:") and says in output[0], output
    assert not db.exists()  # nothing was started or stored


GPU_CHECK = Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"


@pytest.mark.parametrize(
    "stub",
    [
        "raise ImportError('No module named pynvml')",
        "class NVMLError(Exception):\n    pass\n\n\ndef nvmlInit():\n"
        "    raise NVMLError('NVML Shared Library Not Found')\n",
    ],
    ids=["no nvidia-ml-py", "no driver"],
)
def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path: Path, stub: str) -> None:
    (tmp_path / "pynvml.py").write_text(stub + "\n")
    out = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
        env={**ENV, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (line,) = lines(done.stdout)
    assert line.startswith("gpu_check: nothing measured: ")
    assert not out.exists()


def test_gpu_check_reads_update_periods_and_settling_from_samples() -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    assert spec is not None and spec.loader is not None
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    times = [i / 100 for i in range(1000)]  # 100 Hz for 10 s; the counter steps every 100 ms
    counter = [float(int(t * 10)) for t in times]
    assert gc.update_period_s(times, counter) == pytest.approx(0.1)
    # 300 W of load until 2 s, 200 W until 4 s, then 100 W: settled 4 s after the stop at 0.
    power = [300.0 if t < 2 else 200.0 if t < 4 else 100.0 for t in times]
    readings = [(t, 0.0, w, w) for t, w in zip(times, power, strict=True)]
    assert gc.settle_s(readings, 0.0) == pytest.approx(4.0, abs=0.1)
