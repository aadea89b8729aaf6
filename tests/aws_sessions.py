"""A new default boto3 session for a test under moto, reading botocore's models through one shared loader.

`mock_aws` sets boto3's default session aside, so every test would otherwise load the service models and endpoint
rules from disk again (most of a small test's CPU). They are data; the session, and so the credentials, stay new.
"""

from __future__ import annotations

import boto3
import botocore.loaders
import botocore.session

MODELS = botocore.loaders.create_loader()
"""botocore's loader, which caches what it reads, shared by every session made here."""


def new_default_session() -> None:
    """Make boto3's default session a new one (credentials and region read afresh) on the shared models."""
    session = botocore.session.Session()
    session.register_component("data_loader", MODELS)
    boto3.setup_default_session(botocore_session=session)
