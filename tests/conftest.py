import pytest

from mpfas.core.telemetry import quiet_network

quiet_network()  # nothing in the tests may wait on the network

# pytest-timeout's limit for tests marked `slow` (the quick default is `timeout` in pyproject.toml):
# a whole tiny `dvc repro`, or several, in a fixture the first such test pays for
SLOW_TIMEOUT = 1800


def pytest_collection_modifyitems(config, items):
    """Give `slow` tests the longer limit unless they set their own ``timeout`` mark."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
