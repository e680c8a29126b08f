"""Tests of the documentation: generated pages, diagrams that render, snippets that run."""
