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


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _bitstream_cache(tmp_path_factory):
    """Builds in tests never read or fill the user's bitstream cache (~/.cache/csdformer)."""
    import os

    old = os.environ.get("CSDFORMER_CACHE")
    os.environ["CSDFORMER_CACHE"] = str(tmp_path_factory.mktemp("csdformer-cache"))
    yield
    if old is None:
        os.environ.pop("CSDFORMER_CACHE", None)
    else:
        os.environ["CSDFORMER_CACHE"] = old
