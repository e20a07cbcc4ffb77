package pygate.lib_test

import data.pygate.lib

_chain := [
	{
		"path": ["data", "pkg", "refusals"],
		"annotations": {
			"title": "Too big",
			"description": "Amounts over the limit are refused.",
			"custom": {
				"id": "T-001",
				"reason": "Amount {{.amount}} is over {{.limit}}",
				"action": "show_user_limit",
				"priority": 7,
				"suggestion": "Try less than {{.limit}}",
				"message": "Sorry",
			},
		},
	},
	{"path": ["data", "pkg"], "annotations": {"title": "package"}},
]

test_refusal_renders_templates_and_optional_fields if {
	lib.refusal(_chain, {"amount": 5000, "limit": 1000}) == {
		"policy_id": "T-001",
		"title": "Too big",
		"description": "Amounts over the limit are refused.",
		"reason": "Amount 5000 is over 1000",
		"action": "show_user_limit",
		"priority": 7,
		"suggestion": "Try less than 1000",
		"hint": "Try less than 1000",
		"message": "Sorry",
		"source": "rego",
	}
}

test_refusal_omits_undeclared_optional_fields if {
	chain := [{"path": ["data", "p", "r"], "annotations": {"custom": {"id": "T-2", "reason": "no", "action": "log_refusal"}}}]
	r := lib.refusal(chain, {})
	r == {
		"policy_id": "T-2",
		"title": "T-2",
		"description": "",
		"reason": "no",
		"action": "log_refusal",
		"priority": 100,
		"source": "rego",
	}
}

test_refusal_without_metadata_still_refuses if {
	r := lib.refusal([{"path": ["data", "p", "r"]}], {})
	r.policy_id == "UNANNOTATED"
	r.action == "log_refusal"
}

test_refusal_with_empty_chain_still_refuses if {
	lib.refusal([], {}).policy_id == "UNANNOTATED"
}

test_render_keeps_broken_template if {
	lib.render("bad {{.x", {"x": 1}) == "bad {{.x"
}

test_render_non_string_template if {
	lib.render(42, {}) == 42
}

test_config_reads_data if {
	lib.config("daily_quota", 1) == 100 with data.pygate.config as {"daily_quota": 100}
}

test_config_default_when_key_missing if {
	lib.config("daily_quota", 7) == 7 with data.pygate.config as {}
}

test_config_default_when_data_missing if {
	lib.config("daily_quota", 7) == 7 with data.pygate.config as null
}

test_config_keeps_falsy_values if {
	lib.config("flag", true) == false with data.pygate.config as {"flag": false}
}

test_field_dotted_path if {
	lib.field({"params": {"amount": 5}}, "params.amount") == 5
}

test_field_top_level if {
	lib.field({"amount": 5}, "amount") == 5
}

test_field_keeps_false_and_null if {
	lib.field({"a": false}, "a") == false
	lib.field({"a": null}, "a") == null
}

test_field_missing_is_undefined if {
	not lib.field({"a": {"b": 1}}, "a.c")
	not lib.field({"a": 1}, "a.b")
}

test_transaction_limit_from_user if {
	lib.transaction_limit({"transaction_limit": 250}) == 250
}

test_transaction_limit_default_from_data if {
	lib.transaction_limit({}) == 2000 with data.pygate.config as {"default_transaction_limit": 2000}
}

test_transaction_limit_null_means_default if {
	lib.transaction_limit({"transaction_limit": null}) == 2000 with data.pygate.config as {"default_transaction_limit": 2000}
}

test_transaction_limit_in_code_default if {
	lib.transaction_limit({}) == 1000 with data.pygate.config as {}
}

test_transaction_limit_malformed_user_value_is_undefined if {
	not lib.transaction_limit({"transaction_limit": "1000"})
}

test_transaction_limit_malformed_default_is_undefined if {
	not lib.transaction_limit({}) with data.pygate.config as {"default_transaction_limit": "lots"}
}

test_asset_restricted if {
	assets := {"ACME": "restricted", "GLOBEX": "active"}
	lib.asset_restricted(assets, "ACME")
	lib.asset_restricted(assets, "acme")
	not lib.asset_restricted(assets, "GLOBEX")
	not lib.asset_restricted(assets, "UNKNOWN")
	not lib.asset_restricted(null, "ACME")
}

test_valid_regex if {
	lib.valid_regex(`\bdef\s+\w+\(`)
	lib.valid_regex("")
	not lib.valid_regex("(unclosed")
	not lib.valid_regex(`\p{Nope}`)
	not lib.valid_regex(5)
}

test_render_gives_the_text_of_render_template if {
	cases := [
		["Transfer of {{.amount}} exceeds your limit of {{.limit}}", {"amount": 5000, "limit": 1000}],
		["{{.a}} and {{.b}}", {"a": 1.5, "b": 1e21}],
		["{{.a}}{{.a}}", {"a": "x"}],
		["value {{.a}}", {"a": "has {{.b}} inside", "b": "no"}],
		["flag {{.a}}", {"a": true}],
		["list {{.a}}", {"a": [1, "x"]}],
		["{{ .a }} spaced", {"a": "x"}],
		["{{.a | printf \"%05d\"}}", {"a": 7}],
		["no placeholders", {"a": 1}],
		["{{.missing}}", {"a": 1}],
	]
	every c in cases {
		lib.render(c[0], c[1]) == _render_template_or_template(c[0], c[1])
	}
}

_render_template_or_template(template, vars) := strings.render_template(template, vars) if {
	strings.render_template(template, vars)
} else := template

test_policy_data_sets_message_and_hint if {
	r := lib.refusal(_chain, {"amount": 5000, "limit": 1000}) with data.pygate.config.messages as {"T-001": {"message": "Max {{.limit}}", "hint": "Go below {{.limit}}", "reason": "ignored"}}
	r.message == "Max 1000"
	r.hint == "Go below 1000"
	r.reason == "Amount 5000 is over 1000"
}

test_malformed_message_data_is_ignored if {
	every messages in ["x", {"T-001": 5}, {"T-001": {"message": 5}}] {
		r := lib.refusal(_chain, {"amount": 5000, "limit": 1000}) with data.pygate.config.messages as messages
		r.message == "Sorry"
	}
}

test_explained_adds_conditions if {
	r := lib.explained(_chain, {"amount": 5000, "limit": 1000}, [lib.condition("a", ">", 2, 1)], [lib.change("a", "<=", 1)])
	r.why == [{"field": "a", "op": ">", "value": 2, "bound": 1}]
	r.would_pass == [{"field": "a", "op": "<=", "bound": 1}]
	r.policy_id == "T-001"
}
