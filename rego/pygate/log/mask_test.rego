package pygate.log_test

import data.pygate.log

test_masks_secret_keys_at_any_depth if {
	masked := log.mask with input as {"input": {
		"output": {"type": "tool_call", "api_key": "k", "arguments": {"Password": "p", "n": 1}},
		"user": {"id": "u", "token": "t"},
		"context": {},
	}}
	masked == {"/input/output/api_key", "/input/output/arguments/Password", "/input/user/token"}
}

test_masks_inside_arrays_and_escapes_pointer_segments if {
	masked := log.mask with input as {"input": {"output": {"items": [{"secret": 1}], "a/b": {"ssn": 2}}}}
	masked == {"/input/output/items/0/secret", "/input/output/a~1b/ssn"}
}

test_nothing_to_mask if {
	count(log.mask) == 0 with input as {"input": {"output": {"type": "transfer", "amount": 5}}}
}

test_keys_come_from_policy_data if {
	masked := log.mask with input as {"input": {"output": {"iban": "x", "token": "t"}}}
		with data.pygate.config.redact_keys as ["IBAN"]
	masked == {"/input/output/iban"}
}
