"""Alembic environment and versions for the songbot schema."""
