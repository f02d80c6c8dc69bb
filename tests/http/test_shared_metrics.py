"""Metrics of worker processes summed by a scrape (framex/http/shared_metrics.py)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from framex.http.metrics import Metrics
from framex.http.shared_metrics import MetricsFile


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scraped(directory: Path) -> str:
    """A scrape by a worker of its own (which adds its zeros)."""
    metrics = Metrics(shared_dir=str(directory))
    try:
        return metrics.render().decode()
    finally:
        metrics.close()


def test_a_scrape_sums_the_series_of_every_worker(tmp_path: Path) -> None:
    workers = [Metrics(), Metrics()]
    workers[0].observe_request("GET", "/a", 200, 0.003)
    workers[0].observe_request("GET", "/a", 200, 0.2)
    workers[1].observe_request("GET", "/a", 200, 0.003)
    workers[1].observe_request("POST", "/b", 500, 7.0)
    workers[0].in_flight, workers[1].in_flight = 2, 1
    for pid, metrics in zip((101, 102), workers, strict=True):
        file = MetricsFile(str(tmp_path), pid)
        file.write(metrics.families())
        file.close()

    scrape = samples(scraped(tmp_path))
    get_a = (("method", "GET"), ("route", "/a"))
    assert scrape[("framex_http_requests_total", (*get_a, ("status", "200")))] == 3
    assert scrape[("framex_http_requests_total", (("method", "POST"), ("route", "/b"), ("status", "500")))] == 1
    duration = "framex_http_request_duration_seconds"
    assert scrape[(f"{duration}_count", get_a)] == 3
    assert abs(scrape[(f"{duration}_sum", get_a)] - 0.206) < 1e-9
    assert scrape[(f"{duration}_bucket", (("le", "0.005"), *get_a))] == 2  # cumulative, as in one process
    assert scrape[(f"{duration}_bucket", (("le", "0.25"), *get_a))] == 3
    assert scrape[(f"{duration}_bucket", (("le", "+Inf"), *get_a))] == 3
    assert scrape[("framex_http_requests_in_flight", ())] == 3


def test_writing_again_replaces_a_workers_totals(tmp_path: Path) -> None:
    metrics = Metrics()
    file = MetricsFile(str(tmp_path), 7)
    for _ in range(3):
        metrics.observe_request("GET", "/a", 200, 0.01)
        file.write(metrics.families())
    file.close()
    scrape = samples(scraped(tmp_path))
    assert scrape[("framex_http_requests_total", (("method", "GET"), ("route", "/a"), ("status", "200")))] == 3
