"""Metrics shared by worker processes, in ``prometheus_client``'s multiprocess format.

With ``--workers N`` every worker counts its own requests and ``@remote`` calls as usual
(:class:`framex.http.metrics.Metrics`) and writes its totals, after each recording pass
and before a scrape, to files of its own in a directory the supervisor made
(``counter_<pid>.db``, ``histogram_<pid>.db``, ``gauge_livesum_<pid>.db``: the files
``prometheus_client``'s multiprocess values write). A scrape, whichever worker answers
it, reads every worker's files with ``prometheus_client``'s ``MultiProcessCollector``:
counters and histograms are summed over the workers, dead ones included (totals never
go back), and the in-flight gauge over the live ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import mmap_dict
from prometheus_client.core import Metric

# Untyped in prometheus_client: FrameX checks its own calls.
MmapedDict: Any = mmap_dict.MmapedDict
mmap_key: Any = mmap_dict.mmap_key

_FILES = {"counter": "counter", "histogram": "histogram", "gauge": "gauge_livesum"}
"""The file of each metric type; gauges are summed over the live workers."""


class MetricsFile:
    """One worker's series, written to its files in ``directory``."""

    def __init__(self, directory: str, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid
        self._files: dict[str, Any] = {}
        self._keys: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}

    def _file(self, typ: str) -> Any:
        file = self._files.get(typ)
        if file is None:
            prefix = _FILES[typ]
            file = self._files[typ] = MmapedDict(os.path.join(self.directory, f"{prefix}_{self.pid}.db"))
        return file

    def _key(self, family: Metric, sample: str, labels: dict[str, str]) -> str:
        ident = (family.name, sample, tuple(labels.items()))
        key = self._keys.get(ident)
        if key is None:
            key = self._keys[ident] = str(
                mmap_key(family.name, sample, list(labels), list(labels.values()), family.documentation)
            )
        return key

    def write(self, families: Iterable[Metric]) -> None:
        """Write the current values of ``families`` (as this process's totals)."""
        for family in families:
            if family.type not in _FILES:
                continue
            file = self._file(family.type)
            if family.type == "histogram":
                self._write_histogram(file, family)
                continue
            for sample in family.samples:
                file.write_value(self._key(family, sample.name, sample.labels), sample.value, 0.0)

    def _write_histogram(self, file: Any, family: Metric) -> None:
        # The exposition's buckets are cumulative; the files hold each bucket's own count
        # (the collector adds them up and derives `_count`).
        below: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                series = tuple((k, v) for k, v in sample.labels.items() if k != "le")
                previous = below.get(series, 0.0)
                below[series] = sample.value
                file.write_value(self._key(family, sample.name, sample.labels), sample.value - previous, 0.0)
            elif sample.name.endswith("_sum"):
                file.write_value(self._key(family, sample.name, sample.labels), sample.value, 0.0)

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
