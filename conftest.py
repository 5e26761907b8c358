"""Test plugins, registered at the root so their command-line options exist before collection:
each real server has its own fixture module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.redis",
    "tests.fixtures.aws",
    "tests.fixtures.prometheus",
    "tests.fixtures.sql",
    "tests.fixtures.rabbitmq",
    "tests.fixtures.nats",
    "tests.fixtures.conformance",
    "tests.k8s.fixture",
]
