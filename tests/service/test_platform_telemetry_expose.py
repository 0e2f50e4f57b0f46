"""`telemetry.expose`: metrics read from state a service already keeps, at scrape time."""

from __future__ import annotations

import uuid

import prometheus_client
import pytest

from services.platform import telemetry


def _scrape() -> str:
    return prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()


def _name() -> str:
    return f"test_exposed_{uuid.uuid4().hex[:8]}"


def test_a_gauge_reports_what_its_reader_returns_at_each_scrape() -> None:
    name, state = _name(), {"quotes": 3, "greeks": 0}
    telemetry.expose(name, "subscribers", lambda: [({"stream": k}, v) for k, v in state.items()])
    text = _scrape()
    assert f'tastyplat_{name}{{stream="quotes"}} 3.0' in text
    assert f'tastyplat_{name}{{stream="greeks"}} 0.0' in text
    state["quotes"] = 5
    assert f'tastyplat_{name}{{stream="quotes"}} 5.0' in _scrape()


def test_a_counter_is_exposed_with_the_total_suffix_and_its_type() -> None:
    name = _name()
    telemetry.expose(name, "alerts", lambda: [({}, 7.0)], kind="counter")
    text = _scrape()
    assert any(line.startswith(f"# TYPE tastyplat_{name}") and line.endswith(" counter") for line in text.splitlines())
    assert f"tastyplat_{name}_total 7.0" in text


def test_exposing_a_name_again_replaces_its_reader() -> None:
    name = _name()
    telemetry.expose(name, "first", lambda: [({}, 1.0)])
    telemetry.expose(name, "second", lambda: [({}, 2.0)])
    text = _scrape()
    assert f"tastyplat_{name} 2.0" in text
    assert f"tastyplat_{name} 1.0" not in text


def test_a_failing_reader_leaves_the_rest_of_the_scrape_intact(caplog: pytest.LogCaptureFixture) -> None:
    broken, healthy = _name(), _name()

    def fail() -> list[tuple[dict[str, str], float]]:
        raise RuntimeError("store gone")

    telemetry.expose(broken, "broken", fail)
    telemetry.expose(healthy, "healthy", lambda: [({}, 4.0)])
    text = _scrape()
    assert f"tastyplat_{healthy} 4.0" in text
    assert f"tastyplat_{broken} " not in text
    assert "metric reader failed" in caplog.text


def test_an_unknown_kind_or_a_name_taken_by_another_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        telemetry.expose(_name(), "x", lambda: [], kind="histogram")
    taken = _name()
    telemetry.gauge(taken, "a real gauge")
    with pytest.raises(ValueError, match="another type"):
        telemetry.expose(taken, "x", lambda: [])
