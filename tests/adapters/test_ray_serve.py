"""Deployment options of the Serve application (no Ray needed: plain dictionaries)."""

from __future__ import annotations

import importlib.util
import warnings

import pytest

if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # Ray Serve's own use of older pydantic APIs
    from framex.adapters.ray_serve import MAX_ONGOING_REQUESTS, deployment_options


def test_replicas_reserve_no_cpu_and_take_many_requests_unless_told() -> None:
    assert deployment_options() == {"ray_actor_options": {"num_cpus": 0}, "max_ongoing_requests": MAX_ONGOING_REQUESTS}
    assert MAX_ONGOING_REQUESTS > 5  # Serve's own default, which leaves awaiting replicas idle under load


def test_later_layers_win_and_actor_options_merge() -> None:
    options = deployment_options(
        {"num_replicas": 1, "max_ongoing_requests": 50},
        {"max_ongoing_requests": 8, "ray_actor_options": {"memory": 1024}},
    )
    assert options == {
        "num_replicas": 1,
        "max_ongoing_requests": 8,
        "ray_actor_options": {"num_cpus": 0, "memory": 1024},
    }
