"""Fixtures every planning test module shares: a fresh user and a workspace they own."""

from __future__ import annotations

import pytest

from tests.utils.api import new_user, new_workspace


@pytest.fixture
async def owner(client):
    return await new_user(client)


@pytest.fixture
async def workspace_id(client, owner):
    return await new_workspace(client, owner)
