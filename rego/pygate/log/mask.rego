# METADATA
# title: Decision log masking
# description: >-
#   Masks the values of secret-looking keys (password, token, api_key, ...)
#   anywhere in a decision's input before OPA writes its decision log: the
#   same keys pygate masks in its own audit log. A sidecar's config points
#   decision_logs.mask_decision at /pygate/log/mask.
package pygate.log

import data.pygate.lib

# The default mirrors pygate's DEFAULT_REDACT_KEYS; policy data may extend it.
_default_keys := {"password", "secret", "token", "api_key", "apikey", "authorization", "ssn", "card_number"}

_keys := {lower(k) | some k in lib.config("redact_keys", _default_keys)}

# mask holds the JSON pointer of every value under a secret-looking key.
mask contains pointer if {
	walk(input.input, [path, _])
	count(path) > 0
	key := path[count(path) - 1]
	is_string(key)
	lower(key) in _keys
	pointer := concat("/", ["", "input", concat("/", [_segment(p) | some p in path])])
}

# JSON pointer segments: "~" and "/" escaped (RFC 6901), array indexes as numbers.
_segment(p) := strings.replace_n({"~": "~0", "/": "~1"}, p) if is_string(p)

_segment(p) := format_int(p, 10) if is_number(p)
