"""Token economy: output caps, context-window policies and server-side sessions."""
