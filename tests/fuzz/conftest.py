"""Hypothesis profiles for the fuzz tests.

CI runs ``ci``: a fixed seed and ``ZOO_FUZZ_EXAMPLES`` (default 25) examples a
test, so the suite stays short and repeatable. ``benchmarks/fuzz.py`` runs the
long ``campaign`` profile with fresh randomness.
"""
import os

from hypothesis import HealthCheck, settings

from tests.fuzz import harness

_COMMON = dict(
    deadline=None,  # the harness enforces its own per-call deadline; timing noise must not fail a test
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile("ci", max_examples=int(os.environ.get("ZOO_FUZZ_EXAMPLES", "25")),
                          derandomize=True, **_COMMON)
settings.register_profile("campaign", max_examples=int(os.environ.get("ZOO_FUZZ_EXAMPLES", "1000")), **_COMMON)
settings.load_profile(os.environ.get("ZOO_FUZZ_PROFILE", "ci"))


def pytest_sessionfinish(session, exitstatus):
    harness.write_stats()
