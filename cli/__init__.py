"""The `contrastive` command-line application (import name `contrastive_cli`)."""
