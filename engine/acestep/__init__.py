"""Our own ACE-Step 1.5 (turbo) engine: DiT, condition encoder, FSQ tokenizer, VAE and text encoder.

The modules load the official checkpoint layout (``acestep-v15-turbo/``, ``vae/``,
``Qwen3-Embedding-0.6B/``) without ``trust_remote_code``. They never touch the database
or a chat platform; ``backend.AceStepGenerator`` is what the engine worker sees.
"""
