"""Root pytest configuration: the shared fixtures live in tests/fixtures as plugins."""

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.s3", "tests.fixtures.hub", "tests.fixtures.operator"]
