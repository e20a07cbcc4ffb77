"""Where agents act: pygate at the MCP boundary, in agent frameworks, and over HTTP.

Every integration hands the framework's tool call to the gate in the framework's own shape
(OPA's ``pygate.canonical`` reads it into canonical actions, so the bundle protects every
client alike), executes only what the decision allowed, and turns a refusal into the
framework's own "tool refused" outcome with the text from :func:`refusal_text`.
"""
