"""The bounded and the long Hypothesis profile of a property-test file, one way for every such file.

``<name>-ci``: derandomized, no example database, ``ci`` examples (a failure in CI is the same on every machine);
``<name>-long``: ``long`` random examples (a make target's profile). ``ALIGN_TRACK_HYPOTHESIS`` names the profile;
a name of another file's profile leaves this file at its CI one (it used to fail the import when that other file's
profiles were not registered yet). ``examples_env`` overrides either count."""

from __future__ import annotations

import os
from collections.abc import Sequence

from hypothesis import HealthCheck, settings

SLOW = (HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example)
"""Health checks these tests fail by design: big generated inputs, slow real stores."""


def profile(name: str, ci: int, long: int, examples_env: str, also_suppress: Sequence[HealthCheck] = ()) -> settings:
    suppress = [*SLOW, *also_suppress]
    settings.register_profile(f"{name}-ci", max_examples=int(os.environ.get(examples_env, str(ci))), deadline=None,
                              derandomize=True, database=None, suppress_health_check=suppress, print_blob=True)
    settings.register_profile(f"{name}-long", max_examples=int(os.environ.get(examples_env, str(long))),
                              deadline=None, suppress_health_check=suppress, print_blob=True)
    chosen = os.environ.get("ALIGN_TRACK_HYPOTHESIS", "")
    return settings.get_profile(chosen if chosen in (f"{name}-ci", f"{name}-long") else f"{name}-ci")
