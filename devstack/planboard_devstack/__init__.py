"""Planboard's dev stack: embedded development servers (installed into a cache, started
and supervised on loopback), the local Kubernetes control plane and the one-node cluster.

Used by ``planboard dev`` and by the test suite; a development tool of the source
checkout, never part of the product: the ``planboard`` wheel and image do not carry it and
nothing in the API, workers or operator imports it (docs/devstack.md).
"""
