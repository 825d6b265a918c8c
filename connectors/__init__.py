"""Platform connectors: the only code that imports a platform SDK."""
