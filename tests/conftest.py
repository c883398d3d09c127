"""Shared test set-up."""

import warnings

# On a failing example, Hypothesis' pytest plugin imports hypothesis.extra._patching (-> libcst ->
# mypy_extensions), whose DeprecationWarning turns, under PYTHONWARNINGS=error, the clean failure
# report into a pytest INTERNALERROR. Import it once here with that third-party warning silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # libcst not installed: the plugin then never imports it either
        pass
