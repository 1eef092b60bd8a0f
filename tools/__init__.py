"""Entry scripts: flags and a call into common/ or a method package (docs/architecture.md); and
the developer-only fixture makers."""
