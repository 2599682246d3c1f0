"""The Telegram adapter (python-telegram-bot 22): handlers over the shared command layer, and a Messenger."""
