"""The package version (a leaf: any module may import it without importing the package facade)."""

__version__ = "0.2.0"
