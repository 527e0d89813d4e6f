"""CLI subcommands; every module here registers its commands with `dlzoo.cli.command` on import."""
