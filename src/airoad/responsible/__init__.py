"""Responsible AI: fairness audits, explanations of model predictions, and red-teaming."""
