"""notecheck: documentation completeness checker for epidural injection procedure notes."""

__version__ = "0.1.0"
