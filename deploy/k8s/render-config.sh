#!/usr/bin/env bash
# pgshard-render-config TEMPLATE OUTPUT: writes pgshard's configuration with
# its passwords filled in. pgshard reads passwords from its configuration
# file only, so in Kubernetes the file is a template in a ConfigMap whose
# passwords are placeholders, "${PGSHARD_...}", each the name of an
# environment variable that the init container of deploy/k8s/deployment.yaml
# takes from a Secret; this script, in the image as pgshard-render-config,
# replaces each placeholder by the variable's value and writes OUTPUT (mode
# 0600, on a memory-backed volume) for the pgshard container.
#
# A placeholder whose variable is not set is an error, and so is a value
# holding a double quote, a backslash or a newline: the placeholders sit in
# double-quoted YAML strings, which would need those escaped.
set -euo pipefail
if [ $# -ne 2 ]; then
	echo "usage: pgshard-render-config TEMPLATE OUTPUT" >&2
	exit 2
fi
template=$1 output=$2
conf=$(<"$template")
# bash 5.2 would otherwise put the match where a value holds "&".
shopt -u patsub_replacement 2>/dev/null || true
names=$(grep -oE '\$\{PGSHARD_[A-Za-z0-9_]+\}' "$template" | sort -u | sed -e 's/^\${//' -e 's/}$//' || true)
for name in $names; do
	if [ -z "${!name+set}" ]; then
		echo "pgshard-render-config: $template uses \${$name}, but $name is not set (is the Secret key there?)" >&2
		exit 1
	fi
	value=${!name}
	case $value in
	*'"'* | *'\'* | *$'\n'*)
		echo "pgshard-render-config: $name holds a double quote, backslash or newline, which its YAML string cannot take as it is" >&2
		exit 1
		;;
	esac
	conf=${conf//"\${$name}"/"$value"}
done
umask 077
printf '%s\n' "$conf" >"$output"
echo "pgshard-render-config: wrote $output from $template (${names:+placeholders: }$(echo $names))"
