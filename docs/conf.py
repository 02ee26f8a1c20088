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
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    # scikit-learn's metadata-routing helpers: their docstrings cite sklearn's glossary
    "exclude-members": (
        "set_fit_request,set_fit_predict_request,set_predict_request,"
        "set_transform_request,set_score_request,set_partial_fit_request,"
        "set_inverse_transform_request,set_output"
    ),
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
intersphinx_mapping = {}
templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["config.cache"]
