# METADATA
# title: pygate shared helpers
# description: >-
#   Builds refusal objects from rule metadata, reads policy data with in-code
#   defaults, and holds the few lookups that several policy packages share.
package pygate.lib

# refusal builds the refusal for the rule whose metadata chain is given, so a
# policy's id, reason and action live once, in its METADATA block. The reason,
# hint, suggestion and message may be Go templates rendered with vars.
#
# Three messages, three readers: reason is internal (audit, operators),
# message is for the end user, hint is for the model (what to try instead).
# custom.suggestion is the older name of the hint: it is still emitted as
# suggestion and, when a rule has no custom.hint, becomes the hint as well.
#
# It is defined even for a rule without metadata: a refusal rule that forgot
# its annotations must still refuse, not vanish. (Mind that METADATA attaches
# to a rule's first body only; chain() called from an `else` branch sees none.)
refusal(chain, vars) := object.union(object.union(base, optional), _overrides(id, vars)) if {
	annotations := _annotations(chain)
	custom := object.get(annotations, "custom", {})
	id := object.get(custom, "id", "UNANNOTATED")
	base := {
		"policy_id": id,
		"title": object.get(annotations, "title", id),
		"description": object.get(annotations, "description", ""),
		"reason": render(object.get(custom, "reason", "refused by a rule without a reason"), vars),
		"action": object.get(custom, "action", "log_refusal"),
		"priority": object.get(custom, "priority", 100),
		"source": "rego",
	}
	optional := object.union(
		{key: render(template, vars) |
			some key in ["suggestion", "message"]
			template := custom[key]
		},
		_hint(custom, vars),
	)
}

# Policy data may set or replace a rule's user message and model hint
# without touching its Rego: messages.<policy id> = {"message": ..., "hint":
# ...} (templates, rendered with the rule's vars). The reason stays in Rego.
_overrides(id, vars) := {key: render(template, vars) |
	some key in ["message", "hint"]
	template := config("messages", {})[id][key]
	is_string(template)
}

# The hint is custom.hint, else the older custom.suggestion; none without either.
_hint(custom, vars) := {"hint": render(custom.hint, vars)} if {
	custom.hint
} else := {"hint": render(custom.suggestion, vars)} if {
	custom.suggestion
} else := {}

# explained is refusal(chain, vars) plus the failing conditions (why: the
# conditions that held, so the rule refused) and the changes that would pass
# (would_pass: alternatives, any one of which lifts this refusal). Each is a
# list of conditions {"field", "op", "value"?, "bound"?}; see condition.
explained(chain, vars, why, would_pass) := object.union(refusal(chain, vars), {"why": why, "would_pass": would_pass})

# condition is one comparison: field (a dotted path into the input, e.g.
# "arguments.amount" or "user.role"), op (">", ">=", "<", "<=", "==", "!=",
# "in", "not in", "matches", "not matches", "is", "is not", "present", "absent", "granted"), the value the
# input had and the bound it was compared with. An absent value is null.
condition(field, op, value, bound) := {"field": field, "op": op, "value": value, "bound": bound}

# change is a condition that would pass: the field, op and bound, no value.
change(field, op, bound) := {"field": field, "op": op, "bound": bound}

# The first chain entry is the rule itself; later entries are its packages.
_annotations(chain) := annotations if {
	annotations := chain[0].annotations
} else := {}

# render fills a Go template from vars. A template that fails to render (bad
# syntax, not a string) is returned as written: a refusal with an ugly reason
# beats a refusal that silently disappears.
#
# Go's template parser costs more than the rest of a decision, and almost
# every template is text with {{.key}} placeholders for string or number
# values, so those are filled by plain replacement (the same text: strings
# as they are, numbers as their JSON). Anything else left in braces (other
# actions, other value types, a value that itself holds braces) goes to
# strings.render_template as before.
render(template, vars) := template if {
	not contains(template, "{{")
} else := text if {
	text := strings.replace_n({concat("", ["{{.", key, "}}"]): _text(value) | some key, value in vars}, template)
	not contains(text, "{{")
} else := text if {
	text := strings.render_template(template, vars)
} else := template

_text(x) := x if {
	is_string(x)
} else := json.marshal(x) if {
	is_number(x)
}

# config reads one key of the policy data loaded at data.pygate.config (from
# rego/pygate/config/data.json or a bundle), falling back to default_value when
# the key, or the whole document, is absent. It is the only place that reads
# policy data, so a rule never depends on where the data lives.
config(key, default_value) := value if {
	value := data.pygate.config[key]
} else := default_value

# field looks up a dotted path ("params.amount") in obj; undefined when any
# step is missing, so callers can tell "absent" from "null".
field(obj, path) := value if {
	value := object.get(obj, split(path, "."), _missing)
	value != _missing
}

# A value no JSON input can contain by accident, used to detect absence.
_missing := {"pygate.lib": "missing"}

# transaction_limit is the user's own limit, or the configured default when
# the user has none (absent or null). Undefined when either is malformed, so
# callers refuse instead of comparing against nothing.
transaction_limit(user) := user.transaction_limit if {
	is_number(user.transaction_limit)
} else := limit if {
	object.get(user, "transaction_limit", null) == null
	limit := config("default_transaction_limit", 1000)
	is_number(limit)
}

# asset_restricted holds when assets marks symbol as restricted. Symbols are
# also tried upper-cased so "acme" cannot slip past an "ACME" entry.
asset_restricted(assets, symbol) if assets[symbol] == "restricted"

asset_restricted(assets, symbol) if assets[upper(symbol)] == "restricted"

# identifier_spec is the declared form of one kind of identifier
# (identifiers.<kind> in policy data: {"pattern": RE2, "canonical": "upper" |
# "lower" | "exact"}); the built-in default for assets is 1 to 12 upper-case
# ASCII letters or digits.
identifier_spec(kind) := spec if {
	spec := config("identifiers", {})[kind]
	is_object(spec)
} else := {"pattern": `^[A-Z0-9]{1,12}$`, "canonical": "upper"} if {
	kind == "asset"
}

# canonical_identifier is value in its canonical form (case folded as its
# spec says) when that form matches the declared pattern, else undefined:
# an identifier with whitespace, a prefix or a look-alike letter is not
# valid, and callers refuse it instead of looking it up. Deny lists compare
# this form; allow lists compare values exactly.
canonical_identifier(kind, value) := id if {
	is_string(value)
	spec := identifier_spec(kind)
	id := _fold(object.get(spec, "canonical", "exact"), value)
	regex.match(spec.pattern, id)
}

_fold("upper", value) := upper(value)

_fold("lower", value) := lower(value)

_fold("exact", value) := value

# valid_regex holds when pattern compiles as RE2. It tries a match against ""
# instead of calling regex.is_valid: regex.match goes through OPA's cache of
# compiled patterns while regex.is_valid compiles again on every query, and
# policy data is validated on every query. An invalid pattern makes
# regex.match fail (undefined), or, under strict builtin errors, fail the
# whole query; both are refusals.
valid_regex(pattern) if {
	is_string(pattern)
	_ := regex.match(pattern, "")
}
