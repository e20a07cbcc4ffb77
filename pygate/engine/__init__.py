"""How a decision is obtained: the OPA transports, the embedded local OPA, the Docker sidecar."""
