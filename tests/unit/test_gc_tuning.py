"""The collector settings ``pichat serve`` applies once the app is up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pichat_trio.gc_tuning import THRESHOLDS, tune_for_serving


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    survivor = {"kept": [1, 2, 3]}
    tune_for_serving()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert not any(survivor is obj for obj in gc.get_objects())  # frozen: no longer tracked
