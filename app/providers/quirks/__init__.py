"""One module per provider whose behaviour differs from plain OpenAI passthrough."""
