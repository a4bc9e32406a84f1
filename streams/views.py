"""Reading the API from the terminal: `leadflow trace` and the summary of `leadflow up`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from streams.access.client import env_key, headers


def get_json(url: str, timeout: float = 5.0, key: str | None = None) -> tuple[int, Any]:
    """GET ``url`` with ``key`` (None: LEADFLOW_API_KEY) as its bearer token."""
    request = urllib.request.Request(url, headers=headers(env_key() if key is None else key))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body)
        except ValueError:
            return err.code, {"code": "HTTP_ERROR", "detail": body.decode(errors="replace")}


def fetch_trace(base_url: str, lead_id: str, key: str | None = None) -> tuple[int, Any]:
    return get_json(f"{base_url.rstrip('/')}/v1/leads/{lead_id}/trace", key=key)


def fetch_link(base_url: str, source: str, object_type: str, object_id: str,
               key: str | None = None) -> tuple[int, Any]:
    """Which lead a vendor's object belongs to (GET /v1/external/…)."""
    path = "/".join(quote(part, safe="") for part in (source, object_type, object_id))
    return get_json(f"{base_url.rstrip('/')}/v1/external/{path}", key=key)


def _ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def duration(ms: int | None) -> str:
    if ms is None:
        return ""
    sign, s = ("-" if ms < 0 else "+"), abs(ms) / 1000
    if s < 1:
        return f"{sign}{abs(ms)}ms"
    for limit, unit, size in ((120, "s", 1), (7200, "m", 60), (172_800, "h", 3600)):
        if s < limit:
            return f"{sign}{s / size:.1f}{unit}"
    return f"{sign}{s / 86400:.1f}d"


def render_trace(body: dict[str, Any]) -> str:
    lines = [f"lead {body['leadId']}"]
    if body.get("canonicalLeadId") and body["canonicalLeadId"] != body["leadId"]:
        lines.append(f"  alias of {body['canonicalLeadId']}")
    if body.get("aliases"):
        lines.append(f"  aliases: {', '.join(body['aliases'])}")
    header = (
        f"{'occurred (UTC)':23}  {'since prev':>10}  {'wait':6}  {'lag':>8}  {'step':14}  "
        f"{'source':12}  detail"
    )
    lines += [header, "-" * len(header)]
    for step in body["steps"]:
        detail = dict(step.get("detail") or {})
        if step["kind"] == "SLA":  # a verdict beside the steps: say it plainly
            text = f"{detail.pop('clause', '')} {detail.pop('verdict', '')} "
            status = detail.pop("status", "FINAL")
            if status != "FINAL" or detail.pop("revision", 1) != 1:
                text += f"({status}) "
            for key in ("deadline", "met_at"):
                if detail.get(key) is not None:
                    detail[key] = _ts(detail[key])
        else:
            text = ""
        text += " ".join(f"{k}={v}" for k, v in detail.items())
        lines.append(
            f"{_ts(step['occurred_at']):23}  {duration(step.get('since_previous_ms')):>10}  "
            f"{step.get('wait') or '':6}  {duration(step.get('lag_ms')):>8}  {step['kind']:14}  "
            f"{step.get('source', ''):12}  {text}"
        )
    summary = body.get("summary")
    if summary:
        lines.append(
            f"time: system {duration(summary['system_ms'])}, waiting on people "
            f"{duration(summary['human_ms'])}"
        )
    return "\n".join(lines)
