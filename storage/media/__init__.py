"""Audio files: uploads probed and decoded in bounded blocks, songs encoded, tagged and fitted to a limit."""
