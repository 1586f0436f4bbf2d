"""Hostile-input tests of the igrog command."""


def pytest_configure(config):
    config.addinivalue_line("markers", "trains: the case gets past training (its bad input shows only after it)")
