"""The `lendbox` command: one console script whose subcommands live in each package."""
