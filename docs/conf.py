"""Sphinx configuration for sklearn-ecluster."""

import sklearn_ecluster

project = "sklearn-ecluster"
author = "sklearn-ecluster developers"
copyright = "2026, sklearn-ecluster developers"
release = sklearn_ecluster.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
]
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
intersphinx_mapping = {}
templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["config.cache"]
