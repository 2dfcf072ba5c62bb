"""The endpoint under test: checking it answers, and learning its model name."""

from __future__ import annotations

import httpx

from benchbench.errors import BenchError


def auth_headers(api_key: str | None, headers: dict[str, str]) -> dict[str, str]:
    out = dict(headers)
    if api_key and not any(k.lower() == "authorization" for k in out):
        out["Authorization"] = f"Bearer {api_key}"
    return out


def discover_model(base_url: str, headers: dict[str, str], timeout_s: float = 10.0) -> str:
    """The first model the server lists at GET /models; one clear line when that fails."""
    url = base_url.rstrip("/") + "/models"
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.ConnectError:
        raise BenchError(
            f"cannot connect to {base_url}: is the server running? (check --endpoint)"
        ) from None
    except httpx.TimeoutException:
        raise BenchError(
            f"{url} did not answer within {timeout_s:g} s (check --endpoint)"
        ) from None
    except httpx.HTTPError as exc:
        raise BenchError(f"request to {url} failed: {type(exc).__name__}: {exc}") from None
    if resp.status_code in (401, 403):
        raise BenchError(
            f"{url} answered {resp.status_code} (unauthorised): "
            "pass --api-key or set OPENAI_API_KEY"
        )
    if resp.status_code != 200:
        raise BenchError(
            f"{url} answered HTTP {resp.status_code}; "
            "pass --model NAME if the server has no /models"
        )
    try:
        data = resp.json()
        return str(data["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise BenchError(
            f"{url} did not return an OpenAI model list; pass --model NAME (is this an "
            "OpenAI-compatible /v1 URL?)"
        ) from None
