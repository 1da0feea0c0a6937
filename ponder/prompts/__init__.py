"""Prompt templates (jinja2, shipped as package data) and the loader that validates them."""

from ponder.prompts.loader import PromptTemplate, load_template, template_hash, template_names

__all__ = ["PromptTemplate", "load_template", "template_hash", "template_names"]
