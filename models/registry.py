"""Versioned models on disk, champion/challenger, and the history of every decision.

Layout under the root (the caller passes ``settings.data_path / "models"``)::

    versions/<version>/model.json      the published form (ModelPublished's fields + pipeline)
    versions/<version>/metadata.json   window, label counts, metrics, calibration, data sha256,
                                       created_by/at, status, rejection reason
    versions/<version>/model.joblib    gradient boosting only (sha256 in both JSON files)
    history.jsonl                      promote | rollback | reject, with time, who and why

The history is the truth about who is champion: promotions push a version, a rollback pops
back to the previous one (none left: the points model). ``status`` in metadata.json mirrors
it for ``list``. Every file is written whole to a temporary name and renamed over the old
one, so a reader never sees half a file; writers take a lock on ``.lock`` because appending
to the history is a read-modify-write.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.features import FeatureSpace
from models.scorer import GRADIENT_BOOSTING, ArtifactModel, LinearModel
from models.train import TrainResult, evaluate_model
from streams.core.handoff import Model

CANDIDATE, CHAMPION, RETIRED, REJECTED = "candidate", "champion", "retired", "rejected"
DEFAULT_MARGIN = 0.005
DEFAULT_MIN_LABELS = 200
HISTORY = "history.jsonl"
_PREFIX = {"LOGISTIC_REGRESSION": "lr", GRADIENT_BOOSTING: "gbm"}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once (temporary file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as src:
        return [json.loads(line) for line in src if line.strip()]


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one line; the file is rewritten atomically, so it is never seen half-written.
    (Histories hold one line per human-scale decision: rewriting them is cheap.)"""
    old = path.read_bytes() if path.exists() else b""
    line = json.dumps(record, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    write_atomic(path, old + line)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Serialise writers of one root (the retraining worker and a CLI promote, say)."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class Verdict:
    promote: bool
    reason: str


def consider(
    candidate_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float],
    *,
    margin: float = DEFAULT_MARGIN,
    min_labels: int = DEFAULT_MIN_LABELS,
) -> Verdict:
    """Promote only a candidate built from >= ``min_labels`` labels (``positives`` +
    ``negatives``) whose holdout ROC AUC beats the champion's ON THE SAME HOLDOUT by at
    least ``margin``. With no trained champion yet, the champion is the points model."""
    labels = int(candidate_metrics.get("positives", 0) + candidate_metrics.get("negatives", 0))
    if labels < min_labels:
        return Verdict(False, f"only {labels} labels, need at least {min_labels}")
    auc, best = candidate_metrics.get("roc_auc"), champion_metrics.get("roc_auc")
    if auc is None or best is None:
        return Verdict(False, "ROC AUC missing for the candidate or the champion")
    if auc < best + margin:
        return Verdict(
            False, f"ROC AUC {auc:.4f} does not beat the champion's {best:.4f} by {margin:g}"
        )
    return Verdict(True, f"ROC AUC {auc:.4f} beats the champion's {best:.4f} by {auc - best:.4f}")


# ModelPublished v1's fields besides event_id/occurred_at, all kept in model.json.
_PUBLISHED_FIELDS = (
    "model_version", "kind", "created_at", "features", "weights", "intercept", "threshold",
    "metrics", "artifact_sha256", "training_window_start", "training_window_end",
)


def model_published_record(
    published: Mapping[str, Any], *, event_id: str, occurred_at: int
) -> dict[str, Any]:
    """The ModelPublished (v1) record of a ``model.json``; its ``pipeline`` has no field
    there (a consumer scores with its configured scoring policy's space)."""
    return {"event_id": event_id, **{k: published[k] for k in _PUBLISHED_FIELDS},
            "occurred_at": occurred_at}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


class Registry:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.history_path = self.root / HISTORY

    # -- saving ---------------------------------------------------------------------------

    def save(
        self,
        result: TrainResult,
        *,
        created_by: str,
        threshold: float | None = None,
        now_ms: int | None = None,
    ) -> str:
        """Store a trained model as a new candidate version; return its version.

        ``threshold``: the default MQL threshold recorded with it, in score points (default:
        the one it was evaluated at); ModelPublished holds it as a probability."""
        created_at = _now_ms() if now_ms is None else now_ms
        points = result.evaluation.threshold if threshold is None else threshold
        model: dict[str, Any] = {
            "kind": result.kind,
            "created_at": created_at,
            "features": result.features,
            "weights": result.weights or {},
            "intercept": result.intercept or 0.0,
            "threshold": points / 100,
            "metrics": result.metrics(),
            "artifact_sha256": None,
            "training_window_start": result.window_start,
            "training_window_end": result.window_end,
            "pipeline": result.space.as_dict(),
        }
        with locked(self.root):
            staging = self.root / f".staging-{os.getpid()}-{created_at}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            if result.kind == GRADIENT_BOOSTING:
                import joblib

                joblib.dump({"vectorizer": result.vectorizer, "estimator": result.estimator},
                            staging / "model.joblib")
                model["artifact_sha256"] = _sha256(staging / "model.joblib")
            # The version names the content, so the same model saved twice is one version.
            digest = hashlib.sha256(_json({**model, "created_at": 0})).hexdigest()[:10]
            version = f"{_PREFIX.get(result.kind, 'model')}-{_iso(created_at)}-{digest}"
            model["model_version"] = version
            metadata = {
                "version": version,
                "kind": result.kind,
                "status": CANDIDATE,
                "rejection_reason": None,
                "created_by": created_by,
                "created_at": created_at,
                "training_window_start": result.window_start,
                "training_window_end": result.window_end,
                "label_counts": {
                    "train": result.train_counts,
                    "holdout": {"positives": result.evaluation.positives,
                                "negatives": result.evaluation.n - result.evaluation.positives},
                },
                "metrics": result.metrics(),
                "calibration": [b.as_dict() for b in result.evaluation.calibration],
                "features": result.features,
                "data_sha256": result.data_sha256,
                "artifact_sha256": model["artifact_sha256"],
                "params": result.params,
            }
            write_atomic(staging / "model.json", _json(model))
            write_atomic(staging / "metadata.json", _json(metadata))
            target = self.versions / version
            if target.exists():
                shutil.rmtree(staging)
            else:
                self.versions.mkdir(parents=True, exist_ok=True)
                os.replace(staging, target)
        return version

    # -- reading --------------------------------------------------------------------------

    def _dir(self, version: str) -> Path:
        path = self.versions / version
        if not version or "/" in version or version.startswith(".") or not path.is_dir():
            raise KeyError(f"no model version {version!r} in {self.versions}")
        return path

    def metadata(self, version: str) -> dict[str, Any]:
        return json.loads((self._dir(version) / "metadata.json").read_text(encoding="utf-8"))

    def published(self, version: str) -> dict[str, Any]:
        return json.loads((self._dir(version) / "model.json").read_text(encoding="utf-8"))

    def show(self, version: str) -> dict[str, Any]:
        return {"model": self.published(version), "metadata": self.metadata(version)}

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.history_path)

    def _stack(self) -> list[str]:
        stack: list[str] = []
        for entry in self.history():
            if entry["action"] == "promote":
                stack.append(entry["version"])
            elif entry["action"] == "rollback" and stack:
                stack.pop()
        return stack

    def champion(self) -> str | None:
        """The champion's version; None: no trained model, the points model scores."""
        stack = self._stack()
        return stack[-1] if stack else None

    def load(self, version: str) -> LinearModel | ArtifactModel:
        """The live scorer of a version (the joblib artefact is checked against its sha256
        before it is unpickled: pickles run code)."""
        model = self.published(version)
        if model["kind"] != GRADIENT_BOOSTING:
            return LinearModel.from_published(model)
        import joblib

        path = self._dir(version) / "model.joblib"
        if _sha256(path) != model["artifact_sha256"]:
            raise ValueError(f"{path} does not match its recorded sha256; refusing to load it")
        parts = joblib.load(path)
        return ArtifactModel(version, parts["vectorizer"], parts["estimator"],
                             FeatureSpace.from_dict(model["pipeline"]))

    def champion_model(self) -> LinearModel | ArtifactModel | None:
        version = self.champion()
        return None if version is None else self.load(version)

    # -- decisions ------------------------------------------------------------------------

    def _set_status(self, version: str, status: str, reason: str | None = None) -> None:
        meta = self.metadata(version)
        meta["status"] = status
        meta["rejection_reason"] = reason if status == REJECTED else None
        write_atomic(self._dir(version) / "metadata.json", _json(meta))

    def _record(self, action: str, version: str | None, previous: str | None, by: str,
                reason: str, now_ms: int | None, **extra: Any) -> dict[str, Any]:
        entry = {"at": _now_ms() if now_ms is None else now_ms, "action": action,
                 "version": version, "previous": previous, "by": by, "reason": reason, **extra}
        append_jsonl(self.history_path, entry)
        return entry

    def consider(
        self,
        version: str,
        champion_metrics: Mapping[str, float],
        *,
        by: str,
        margin: float = DEFAULT_MARGIN,
        min_labels: int = DEFAULT_MIN_LABELS,
        hold: str | None = None,
        now_ms: int | None = None,
    ) -> Verdict:
        """Judge a candidate against the champion's (or the points model's) metrics on the
        candidate's holdout: promote it, or keep it as rejected with the reason. ``hold``:
        why a candidate that wins must still not be promoted automatically."""
        verdict = consider(self.metadata(version)["metrics"], champion_metrics,
                           margin=margin, min_labels=min_labels)
        if verdict.promote and hold:
            verdict = Verdict(False, f"{verdict.reason}, but {hold}")
        if verdict.promote:
            self.promote(version, by=by, reason=verdict.reason, now_ms=now_ms)
            return verdict
        with locked(self.root):
            self._set_status(version, REJECTED, verdict.reason)
            self._record("reject", version, self.champion(), by, verdict.reason, now_ms,
                         champion_roc_auc=champion_metrics.get("roc_auc"))
        return verdict

    def challenge(
        self,
        result: TrainResult,
        version: str,
        points: Model,
        *,
        by: str,
        margin: float = DEFAULT_MARGIN,
        min_labels: int = DEFAULT_MIN_LABELS,
        hold: str | None = None,
        now_ms: int | None = None,
    ) -> Verdict:
        """``consider`` the saved ``result`` against the champion scored on ITS holdout (the
        ``points`` model while no trained model is champion): the one-call retraining step."""
        champion = self.champion_model() or points
        metrics = evaluate_model(champion, result.holdout,
                                 threshold=result.evaluation.threshold).numbers()
        return self.consider(version, metrics, by=by, margin=margin, min_labels=min_labels,
                             hold=hold, now_ms=now_ms)

    def promote(self, version: str, *, by: str, reason: str = "manual promotion",
                now_ms: int | None = None) -> None:
        """Make ``version`` the champion (the previous one is retired)."""
        with locked(self.root):
            self._dir(version)
            previous = self.champion()
            if previous == version:
                return
            if previous is not None:
                self._set_status(previous, RETIRED)
            self._set_status(version, CHAMPION)
            self._record("promote", version, previous, by, reason, now_ms)

    def rollback(self, *, by: str, reason: str = "manual rollback",
                 now_ms: int | None = None) -> str | None:
        """Retire the champion and bring the previous one back (None: the points model)."""
        with locked(self.root):
            stack = self._stack()
            if not stack:
                raise ValueError("no trained champion to roll back: the points model scores")
            current = stack.pop()
            restored = stack[-1] if stack else None
            self._set_status(current, RETIRED)
            if restored is not None:
                self._set_status(restored, CHAMPION)
            self._record("rollback", restored, current, by, reason, now_ms)
            return restored

    def list(self) -> list[dict[str, Any]]:
        """Every version's metadata, oldest first. (Last in the class: the name shadows
        the builtin in the class body.)"""
        if not self.versions.is_dir():
            return []
        out = [
            json.loads((d / "metadata.json").read_text(encoding="utf-8"))
            for d in self.versions.iterdir()
            if d.is_dir() and (d / "metadata.json").exists()
        ]
        out.sort(key=lambda m: (m["created_at"], m["version"]))
        return out
