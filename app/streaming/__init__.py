"""Server-sent events: framing (`sse`) and the relay of a provider's stream to the client (`relay`)."""
