package parser

import "strings"

type funcKind uint8

const (
	funcReadOnly funcKind = iota // a pg_catalog function without side effects
	funcEffects                  // a pg_catalog function that writes, locks or changes the session
	funcUnknown                  // anything else: user functions, unlisted built-ins
)

// funcClass says whether calling the function named by parts (as written,
// possibly schema-qualified) keeps a statement read-only.
//
// Without a catalog the analyzer cannot know every function of pg_catalog,
// so it errs on the side of the primary: a function qualified with
// pg_catalog is read-only unless it is known to have effects, and an
// unqualified one is read-only only when it is on the list below of
// common built-ins. Anything else is funcUnknown, for the proxy's
// read_only_functions setting to decide (Analysis.ReadOnlyWith).
func funcClass(parts []string) funcKind {
	name := parts[len(parts)-1]
	schema := ""
	if len(parts) > 1 {
		schema = parts[len(parts)-2]
	}
	if schema != "" && schema != "pg_catalog" {
		return funcUnknown
	}
	if hasEffects(name) {
		return funcEffects
	}
	if schema == "pg_catalog" || readOnlyBuiltins[name] {
		return funcReadOnly
	}
	return funcUnknown
}

// hasEffects reports whether a pg_catalog function writes data, takes
// locks, assigns a transaction id or changes session or server state.
func hasEffects(name string) bool {
	switch {
	case effectFuncs[name],
		strings.HasPrefix(name, "pg_advisory_"),
		strings.HasPrefix(name, "pg_try_advisory_"),
		strings.HasPrefix(name, "lo_"),
		strings.HasPrefix(name, "pg_stat_reset"),
		strings.HasPrefix(name, "pg_replication_origin_"),
		strings.HasPrefix(name, "pg_create_") && strings.HasSuffix(name, "_replication_slot"):
		return true
	}
	return false
}

var effectFuncs = map[string]bool{
	"nextval": true, "setval": true, "currval": true, "lastval": true, "set_config": true, "loread": true, "lowrite": true,
	"pg_notify": true, "txid_current": true, "pg_current_xact_id": true,
	"pg_terminate_backend": true, "pg_cancel_backend": true, "pg_reload_conf": true,
	"pg_rotate_logfile": true, "pg_switch_wal": true, "pg_create_restore_point": true,
	"pg_drop_replication_slot": true, "pg_logical_emit_message": true,
	"pg_import_system_collations": true, "pg_promote": true, "pg_backup_start": true,
	"pg_backup_stop": true, "pg_log_backend_memory_contexts": true,
	"pg_wal_replay_pause": true, "pg_wal_replay_resume": true,
	"pg_logical_slot_get_changes": true, "pg_logical_slot_get_binary_changes": true,
	"pg_replication_slot_advance": true, "pg_copy_logical_replication_slot": true,
	"pg_copy_physical_replication_slot": true,
}

// readOnlyBuiltins are common pg_catalog functions without side effects,
// callable unqualified. The list is deliberately short; a function missing
// from it only costs a trip to the primary.
var readOnlyBuiltins = func() map[string]bool {
	m := make(map[string]bool)
	for _, f := range strings.Fields(`
		count sum avg min max bool_and bool_or every array_agg string_agg json_agg jsonb_agg
		json_object_agg jsonb_object_agg stddev stddev_pop stddev_samp variance var_pop var_samp
		percentile_cont percentile_disc mode corr covar_pop covar_samp regr_slope
		row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
		now current_timestamp clock_timestamp statement_timestamp transaction_timestamp timeofday
		date_trunc date_part extract age to_char to_date to_timestamp to_number make_date make_time
		make_timestamp make_timestamptz make_interval date_bin justify_days justify_hours justify_interval isfinite
		lower upper initcap length char_length octet_length bit_length substr substring position strpos
		trim btrim ltrim rtrim lpad rpad replace translate concat concat_ws format left right reverse
		repeat split_part starts_with regexp_replace regexp_match regexp_matches regexp_split_to_array
		regexp_split_to_table regexp_like regexp_count regexp_substr regexp_instr md5 sha224 sha256 sha384 sha512
		encode decode quote_ident quote_literal quote_nullable to_hex ascii chr overlay
		string_to_array array_to_string array_length array_lower array_upper array_dims array_ndims
		array_position array_positions array_append array_prepend array_cat array_remove array_replace
		cardinality unnest generate_series generate_subscripts
		abs ceil ceiling floor round trunc sign sqrt cbrt power pow exp ln log log10 mod div
		gcd lcm greatest least pi degrees radians sin cos tan asin acos atan atan2 width_bucket random
		to_json to_jsonb row_to_json array_to_json json_build_object jsonb_build_object json_build_array
		jsonb_build_array json_object jsonb_object json_array_length jsonb_array_length json_extract_path
		jsonb_extract_path json_extract_path_text jsonb_extract_path_text json_typeof jsonb_typeof
		json_each jsonb_each json_each_text jsonb_each_text json_array_elements jsonb_array_elements
		json_array_elements_text jsonb_array_elements_text json_object_keys jsonb_object_keys
		jsonb_set jsonb_insert jsonb_pretty jsonb_strip_nulls jsonb_path_query jsonb_path_exists
		jsonb_path_match jsonb_path_query_array jsonb_path_query_first
		current_database current_schema current_schemas current_user session_user current_setting
		version pg_backend_pid inet_client_addr inet_server_addr pg_postmaster_start_time
		pg_typeof pg_column_size pg_relation_size pg_total_relation_size pg_table_size pg_indexes_size
		pg_database_size pg_size_pretty has_table_privilege has_schema_privilege has_database_privilege
		pg_get_indexdef pg_get_viewdef pg_get_constraintdef pg_get_serial_sequence pg_table_is_visible
		format_type obj_description col_description pg_is_in_recovery
		pg_last_wal_replay_lsn pg_current_wal_lsn pg_wal_lsn_diff txid_current_snapshot
		pg_current_snapshot pg_sleep gen_random_uuid uuidv4 uuidv7 hashtext hashint8
		coalesce nullif num_nonnulls num_nulls satisfies_hash_partition
	`) {
		m[f] = true
	}
	return m
}()
