package pygate.log_test

import data.pygate.log

_event(doc) := {"input": doc, "result": {"allowed": true}}

_masked(doc) := json.patch(doc, [{"op": "replace", "path": substring(m.path, 6, -1), "value": m.value} |
	some m in log.mask with input as _event(doc)
])

test_secret_keys_masked_at_any_depth_case_insensitive if {
	doc := {
		"output": {"type": "t", "Password": "hunter2", "items": [{"token": {"a": 1}}, 5], "a/b~": {"api_key": "k"}},
		"user": {"id": "u", "ssn": "1"},
		"context": {"service": "s"},
	}
	_masked(doc) == {
		"output": {"type": "t", "Password": "***", "items": [{"token": "***"}, 5], "a/b~": {"api_key": "***"}},
		"user": {"id": "u", "ssn": "***"},
		"context": {"service": "s"},
	}
}

test_nothing_to_mask_masks_nothing if {
	count(log.mask) == 0 with input as _event({"output": {"type": "t"}, "user": {"id": "u"}})
}

test_patterns_mask_free_text if {
	doc := {"output": {"text": "card 4111-1111-1111-1111 ok", "secret": "card 4111-1111-1111-1111"}}
	masked := _masked(doc) with log._pattern as `\d{4}-\d{4}-\d{4}-\d{4}`
	masked == {"output": {"text": "card *** ok", "secret": "***"}}
}

test_failed_patch_erases_the_input if {
	masks := log.mask with input as _event({"output": {"token": "x"}})
		with json.patch as _no_patch
	masks == {"/input"}
}

_no_patch(_, _) := x if {
	x := 1
	false
}

test_result_actions_masked_like_the_output if {
	event := {
		"input": {"output": {"action": "explain", "password": "hunter2"}},
		"result": {"allowed": true, "actions": [{"name": "explain", "arguments": {"password": "hunter2", "n": 1}}]},
	}
	masks := log.mask with input as event
	some m in masks
	m.path == "/result/actions"
	m.value == [{"name": "explain", "arguments": {"password": "***", "n": 1}}]
}

test_failed_result_patch_erases_the_result if {
	event := {"input": {"output": {}}, "result": {"actions": [{"arguments": {"token": "x"}}]}}
	masks := log.mask with input as event with json.patch as _no_patch
	masks == {"/result"}
}

test_keys_compared_normalised_and_by_ending if {
	doc := {"output": {
		"X-API-Key": "a", "api key": "b", "DB_Password": "c", "set-cookie": "d",
		"japan": "e", "max_tokens": 5, "pan": "f", "Client.Secret": "g",
	}}
	_masked(doc) == {"output": {
		"X-API-Key": "***", "api key": "***", "DB_Password": "***", "set-cookie": "***",
		"japan": "e", "max_tokens": 5, "pan": "***", "Client.Secret": "***",
	}}
}

test_luhn_valid_cards_masked_other_numbers_kept if {
	doc := {"output": {"text": "4111 1111 1111 1111 / 4111 1111 1111 1112 / order 1234567890123"}}
	_masked(doc) == {"output": {"text": "*** / 4111 1111 1111 1112 / order 1234567890123"}}
}

test_default_patterns_mask_tokens if {
	doc := {"output": {"text": "AKIAIOSFODNN7EXAMPLE and 078-05-1120 and password=hunter2x"}}
	_masked(doc) == {"output": {"text": "*** and *** and ***"}}
}

# A refusal's why repeats the value of the field it read: a masked field's
# value is masked there too, whatever the value's own key ("value") is.
test_why_values_of_masked_fields_are_masked if {
	result := {"allowed": false, "refusals": [{"policy_id": "GATE-012", "why": [
		{"field": "arguments.password", "op": "<", "value": "hunter2", "bound": 8},
		{"field": "arguments.amount", "op": ">", "value": 5000, "bound": 1000},
		{"field": "arguments.api_key", "op": "not matches", "value": "token=abcdefgh", "bound": "x"},
	]}]}
	masks := log.mask with input as {"input": {"output": {}}, "result": result}
	some m in masks
	m.path == "/result/refusals"
	m.value[0].why == [
		{"field": "arguments.password", "op": "<", "value": "***", "bound": 8},
		{"field": "arguments.amount", "op": ">", "value": 5000, "bound": 1000},
		{"field": "arguments.api_key", "op": "not matches", "value": "***", "bound": "x"},
	]
}
