"""Shared test set-up: hypothesis profiles.

Under CI=true the "ci" profile runs a fixed, derandomized set of examples with a
bounded budget, so CI is reproducible and quick; locally the "dev" profile explores
new examples on every run. Choose one explicitly with HYPOTHESIS_PROFILE=ci|dev.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(
    os.environ.get(
        "HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"
    )
)
