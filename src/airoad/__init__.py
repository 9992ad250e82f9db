"""airoad: the AI-engineer roadmap as runnable, tested labs."""

__version__ = "0.1.0"
