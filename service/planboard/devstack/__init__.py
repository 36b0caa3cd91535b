"""Embedded development servers: install (cached), start and supervise on loopback.

Used by ``planboard dev`` and by the test suite's session fixtures. Nothing in the
API, workers or operator imports this package.
"""
