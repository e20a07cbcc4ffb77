# METADATA
# title: The seed's two rules
# description: >-
#   The baseline every pygate benchmark compares against: the seed's two
#   refusals (a transfer over the user's limit, code for a user without a
#   code role) written as plainly as Rego allows, over the same input
#   document pygate's gate reads. Not part of the bundle.
package two_rules

decision := {"allowed": count(deny) == 0, "deny": deny}

deny contains "transfer exceeds the transaction limit" if {
	input.output.type == "transfer"
	input.output.amount > input.user.transaction_limit
}

deny contains "code generation needs a developer role" if {
	contains(input.output.text, "```")
	not input.user.role in {"developer", "admin"}
}
