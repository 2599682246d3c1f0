"""The Discord adapter (discord.py 2.7 app commands) over the shared command layer in `bot.core`.

May import `bot.core`, `storage` and discord.py; never `engine`.
"""
