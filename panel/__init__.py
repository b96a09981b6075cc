"""panel: a panel of LLM reviewers judges pairs of AI tools and drafts comparison pages."""

__version__ = "0.1.0"
