"""Fixtures: each real server has its own plugin module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.redis",
    "tests.fixtures.aws",
    "tests.fixtures.prometheus",
    "tests.fixtures.conformance",
]
