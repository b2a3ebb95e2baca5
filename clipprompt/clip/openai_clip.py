"""The one place this toolkit imports OpenAI's ``clip`` package (clip-anytorch).

clip-anytorch imports ``pkg_resources``, whose import warns that it is deprecated (setuptools 67 and
later). That warning is noise to users, and being the first line of an install check or a benchmark
it hides what follows. Only that warning, and only while ``clip`` is imported, is ignored here:
every other warning, and that one from anywhere else, is shown as before.
"""

import warnings

PKG_RESOURCES_WARNING = "pkg_resources is deprecated"  # the start of setuptools' message


def import_clip():
    """The ``clip`` package, with its ``clip.clip`` (load, tokenize) and ``clip.model`` modules imported."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PKG_RESOURCES_WARNING, category=UserWarning)
        import clip
        import clip.clip
        import clip.model
    return clip
