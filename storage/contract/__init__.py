"""The contract between the bot and the engine.

The job spec and its value sets, the values that cross the storage boundary, the rules for user text and the
error tree.
"""
