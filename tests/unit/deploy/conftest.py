"""Fixtures for the deployment-file tests: the expected consumers, from the code."""

from __future__ import annotations

import pytest
from deploy_expectations import Consumer, consumers, model_names


@pytest.fixture(scope="session")
def models() -> list[str]:
    return model_names()


@pytest.fixture(scope="session")
def expected_consumers(models: list[str]) -> list[Consumer]:
    """Every stage worker; infer only for the models that have manifests."""
    return consumers(models)


@pytest.fixture(scope="session")
def require_models(models: list[str]) -> list[str]:
    if not models:
        pytest.skip("no model manifests in models/registry/*.json: the per-model (infer) checks need them")
    return models
