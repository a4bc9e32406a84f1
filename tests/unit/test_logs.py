"""Worker logs: JSON lines with the lead and correlation ids; nothing personal or secret."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from streams import logs
from streams.errors import ErrorCode, LeadflowError
from streams.settings import Settings
from tests.conftest import SECRET

NOTIFY_SECRET = "notify-shared-Secret-9f2c"
LEAD_ID = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger whose records go through leadflow's filter to a string, JSON formatted."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.formatter(json=True, secrets=(SECRET, NOTIFY_SECRET)))
    logger = logging.getLogger("leadflow.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_the_ids(captured) -> None:
    logger, stream, _ = captured
    logger.warning("routed %s to %s", "lead", "rep-7", extra={
        "lead_id": LEAD_ID, "correlation_id": "req-42"})
    logger.info("no ids here")
    first, second = lines(stream)
    assert first["message"] == "routed lead to rep-7"
    assert (first["level"], first["logger"]) == ("WARNING", "leadflow.test.logs")
    assert (first["lead_id"], first["correlation_id"]) == (LEAD_ID, "req-42")
    assert first["time"].endswith("Z") and first["time"][:2] == "20"
    assert "lead_id" not in second and "correlation_id" not in second


def test_ids_come_from_the_log_context_unless_given(captured) -> None:
    logger, stream, _ = captured
    with logs.log_context(lead_id=LEAD_ID, correlation_id="req-1"):
        logger.info("inside")
        logger.info("explicit", extra={"lead_id": "other-lead"})
    logger.info("after")
    inside, explicit, after = lines(stream)
    assert (inside["lead_id"], inside["correlation_id"]) == (LEAD_ID, "req-1")
    assert (explicit["lead_id"], explicit["correlation_id"]) == ("other-lead", "req-1")
    assert "lead_id" not in after


def test_emails_names_phones_and_secrets_never_appear(captured) -> None:
    logger, stream, _ = captured
    record = {"email": "Dana.Whitfield@Northwind-Analytics.io", "first_name": "Dana",
              "last_name": "Whitfield", "phone": "+1 415 555 0134", "company_name": "Northwind"}
    logger.error("cannot deliver to %s (secret %s): %r", "dana@example.org", SECRET, record)
    logger.error('body {"firstName": "Dana", "lastName": "Whitfield", "salesNotes": "call Dana"}')
    logger.error("notify with %s and Authorization: Bearer abcdefghijklmnop", NOTIFY_SECRET)
    logger.error("signing key %s", SECRET.removeprefix("whsec_"))
    try:
        raise LeadflowError(ErrorCode.INVALID_EMAIL, "not an email: dana.whitfield@northwind")
    except LeadflowError:
        logger.exception("rejected")
    text = stream.getvalue()
    for secret in ("Dana", "Whitfield", "dana@example.org", "415 555", "dana.whitfield",
                   SECRET, SECRET.removeprefix("whsec_"), NOTIFY_SECRET, "abcdefghijklmnop"):
        assert secret not in text, secret
    entries = lines(stream)
    assert "<email>" in entries[0]["message"] and "'company_name': 'Northwind'" in text
    assert "INVALID_EMAIL" in entries[-1]["exception"]


def test_ids_offsets_and_timestamps_are_left_alone(captured) -> None:
    logger, stream, _ = captured
    message = (f"lead {LEAD_ID} at offset 1234567 of leads.captured/2, occurred 1795350551984 "
               "(2026-11-22T12:29:02Z); scoring model points-06dbc827fb in force")
    logger.info(message)
    assert lines(stream)[0]["message"] == message


def test_text_lines_carry_the_ids_and_are_redacted() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter(json=False, secrets=(SECRET,)))
    record = logging.LogRecord("streams.api", logging.WARNING, __file__, 1,
                               "rejected %s", ("x@example.org",), None)
    record.lead_id = LEAD_ID
    handler.emit(record)
    line = out.getvalue()
    assert "[WARNING] [streams.api] rejected <email>" in line
    assert line.rstrip().endswith(f"lead_id={LEAD_ID}") and "x@example.org" not in line


def test_the_format_follows_the_setting_and_the_terminal(tmp_path) -> None:
    primary, secondary = os.openpty()
    with open(secondary, "w") as tty, (tmp_path / "worker.log").open("w") as file:
        assert logs.use_json("auto", tty) is False
        assert logs.use_json("auto", file) is True
        assert logs.use_json("json", tty) is True
        assert logs.use_json("text", file) is False
    os.close(primary)
    with pytest.raises(LeadflowError) as err:
        logs.use_json("xml")
    assert err.value.code is ErrorCode.INVALID_ENUM and err.value.field == "log_format"
    assert Settings.load(env={"LEADFLOW_LOG_FORMAT": "json"}).log_format == "json"


def test_levels_as_leadflow_names_them() -> None:
    assert [logs.level_number(n) for n in ("crit", "error", "warn", "info", "debug", 15)] == [
        logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG, 15]
    with pytest.raises(LeadflowError) as err:
        logs.level_number("loud")
    assert err.value.field == "log_level"


def test_the_process_config_sends_redacted_json_to_stderr(capsys) -> None:
    settings = Settings.load(env={"LEADFLOW_LOG_FORMAT": "json", "LEADFLOW_NOTIFY_SECRET":
                                  NOTIFY_SECRET, "LEADFLOW_WEBHOOK_SECRETS": SECRET})
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure(settings, "info")
        with logs.log_context(correlation_id="req-9"):
            logging.getLogger("streams.agents.notify").info("posting with %s", NOTIFY_SECRET)
        logging.getLogger("streams.agents.notify").debug("below the level")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    (entry,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert entry["message"] == "posting with <redacted>"
    assert (entry["logger"], entry["correlation_id"]) == ("streams.agents.notify", "req-9")


def test_api_keys_never_appear(capsys) -> None:
    from streams.access import keys

    client_key, other = "a-client-key-not-shaped-like-ours", keys.new_key()
    settings = Settings.load(env={"LEADFLOW_LOG_FORMAT": "json", "LEADFLOW_API_KEY": client_key})
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure(settings, "info")
        log = logging.getLogger("streams.access.guard")
        log.info("sending %s", client_key)
        log.info("got %s", other)
        log.info("headers {'X-API-Key': '%s'}", other)
        log.info("api_key: %s, token=%s", other[4:], other[4:])
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    text = capsys.readouterr().err
    assert len(text.splitlines()) == 4 and "<redacted>" in text
    for secret in (client_key, other, other[4:]):
        assert secret not in text, text
