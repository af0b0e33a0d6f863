"""Each stage's declared `output_topics` (from which the k8s KafkaUsers' write ACLs are derived,
D-028) names every topic its module builds an `Output` for: a stage that starts writing a new
topic without declaring it would be refused by the broker in production."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest
from radstream.streams.kafka import topics
from radstream.streams.stage import Stage
from radstream.streams.stages.registry import STAGES


def _stage_class(name: str) -> type[Stage]:
    module = importlib.import_module(f"radstream.streams.stages.{name}")
    (cls,) = [c for _, c in inspect.getmembers(module, inspect.isclass)
              if issubclass(c, Stage) and c is not Stage and getattr(c, "name", None) == name]
    return cls


def _output_topics_in_source(cls: type[Stage]) -> set[str]:
    tree = ast.parse(inspect.getsource(inspect.getmodule(cls)))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Output" and node.args:
            first = node.args[0]
            assert isinstance(first, ast.Name), f"{cls.name}: Output's topic must be a constant from topics.py"
            found.add(getattr(topics, first.id))
    return found


@pytest.mark.parametrize("name", sorted(STAGES))
def test_declared_output_topics_cover_every_output_the_stage_builds(name: str) -> None:
    cls = _stage_class(name)
    built = _output_topics_in_source(cls)
    assert built, f"{name}: no Output(...) found, this test would check nothing"
    # infer's shadow mode (D-056) writes its own topic instead, declared apart for its own ACLs
    declared = set(cls.output_topics) | set(getattr(cls, "shadow_output_topics", ()))
    assert built == declared, f"{name}: builds outputs for {built}, declares {declared}"
