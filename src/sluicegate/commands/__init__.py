"""CLI commands beyond `serve`, each module registering its own sub-commands."""
