"""The ACE-Step 1.5 planner: the Qwen3-based 5 Hz LM that writes song blueprints and audio codes."""
