# Tests that kill the survivors of scripts/rego-mutation.py on lib.rego (issue 18).
#
# The mutants that survive are equivalent:
# - _hint: `custom.hint` dropped: without a hint the head render(custom.hint) is
#   undefined and the else applies (it differs only for a hint that is false).
# - render's fast path (`not contains(template, "{{")`, the "{{." of the replacement
#   keys, `not contains(text, "{{")`, _text's `is_string(x)` dropped or negated): when a
#   mutant misfires, the text still holds "{{" or the replacement fails, and
#   strings.render_template gives the same text.
# - canonical_identifier: `is_string(value)`: upper, lower and regex.match fail on
#   anything else.
package pygate.lib_mutation_test

import data.pygate.lib

# A rule without annotations still refuses with every field of a refusal, and says that
# it has no reason rather than giving an empty one.
test_a_refusal_without_metadata_has_every_default if {
	lib.refusal([{"path": ["data", "p", "r"]}], {}) == {
		"policy_id": "UNANNOTATED",
		"title": "UNANNOTATED",
		"description": "",
		"reason": "refused by a rule without a reason",
		"action": "log_refusal",
		"priority": 100,
		"source": "rego",
	}
}

# The built-in asset form: 1 to 12 upper-case ASCII letters or digits, case folded up;
# an identifiers entry that is not an object is ignored in favour of it.
test_the_default_asset_form if {
	every identifiers in [{}, {"asset": "junk"}] {
		lib.canonical_identifier("asset", "a") == "A" with data.pygate.config.identifiers as identifiers
		lib.canonical_identifier("asset", "a9") == "A9" with data.pygate.config.identifiers as identifiers
		lib.canonical_identifier("asset", "ABCDEFGHIJ12") == "ABCDEFGHIJ12" with data.pygate.config.identifiers as identifiers
		not lib.canonical_identifier("asset", "ABCDEFGHIJ123") with data.pygate.config.identifiers as identifiers
		not lib.canonical_identifier("asset", "") with data.pygate.config.identifiers as identifiers
	}
}
