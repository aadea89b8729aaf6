"""boto3 sessions for tests under moto that read botocore's models through one shared loader.

`mock_aws` sets boto3's default session aside, and code under test may make sessions of its own, so every test would
otherwise load the service models and endpoint rules from disk again (most of a small test's CPU). They are data;
the sessions, and so the credentials, stay new.
"""

from __future__ import annotations

import boto3
import botocore.loaders
import botocore.session
import pytest

MODELS = botocore.loaders.create_loader()
"""botocore's loader, which caches what it reads, shared by every session made here."""


def shared_models() -> botocore.loaders.Loader:
    """`MODELS`, less the duplicates of the search path every new boto3 session appends to its loader."""
    MODELS.search_paths[:] = dict.fromkeys(MODELS.search_paths)
    return MODELS


def new_default_session() -> None:
    """Make boto3's default session a new one (credentials and region read afresh) on the shared models."""
    session = botocore.session.Session()
    session.register_component("data_loader", MODELS)
    boto3.setup_default_session(botocore_session=session)
    shared_models()


def share_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every botocore session made during the test (boto3's own included) reads the shared models."""
    real = botocore.session.create_loader

    def shared(search_path_string: str | None = None) -> botocore.loaders.Loader:
        return shared_models() if not search_path_string else real(search_path_string)

    monkeypatch.setattr(botocore.session, "create_loader", shared)
