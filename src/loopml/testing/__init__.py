"""Fixtures and contract suites that plugin authors can run against their own backends."""
