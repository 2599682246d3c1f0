"""What operators look at: metrics, the health port, the one-screen overview; secrets scrubbed from what is kept."""
