package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// Sections and keys of each service's configuration, as its config structs define them
// (services/*/src/config.rs, libs/service-kit/src/config.rs and kafka.rs, all
// `deny_unknown_fields`): a key outside them makes the service refuse to start. The services'
// own `--check-config` is the authority; this catches a typo without building them. Values of
// the map-valued keys (librdkafka properties, per-table keys) are free-form.
var (
	kitSections = map[string][]string{
		"grpc":      {"listen", "auth_token"},
		"metrics":   {"listen"},
		"telemetry": {"log_filter", "otlp_endpoint", "trace_sample_ratio"},
		"vault":     {"address", "token", "timeout_ms"},
		"kafka":     {"bootstrap_servers", "topic_prefix", "properties"},
	}
	sourceSection = []string{"server_name", "host", "port", "user", "password", "databases",
		"encryption", "trust_server_certificate", "connect_timeout_ms"}
	tablesSection   = []string{"include", "exclude", "keys", "without_key", "exclude_columns"}
	postgresSection = []string{"url", "password", "connect_timeout_ms"}
	targetSection   = []string{"schema", "table_name", "state_schema", "delete_mode",
		"dropped_columns", "tombstone_retention_hours"}
	consumerSection = []string{"group_id", "table_pattern", "properties"}

	serviceSections = map[string]map[string][]string{
		"extractor": {
			"source":   sourceSection,
			"tables":   tablesSection,
			"snapshot": {"mode", "chunk_rows", "max_pending_rows", "watermark_table", "create_watermark_table"},
			"stream": {"poll_interval_ms", "page_rows", "max_batch_events", "heartbeat_interval_ms",
				"on_retention_gap", "discovery_interval_ms"},
			"work": {"group_id", "partitions", "raw_topic_partitions", "transaction_timeout_ms",
				"producer_properties"},
		},
		"transformer": {
			"consumer": consumerSection,
			"producer": {"transactional_id", "transaction_timeout_ms", "properties"},
			"batch":    {"max_events", "max_wait_ms", "transform_threads"},
			"masking":  {"hmac_key"},
			"rules":    nil, // an array of tables, checked by the transformer itself
		},
		"loader": {
			"postgres": postgresSection,
			"consumer": consumerSection,
			"target":   targetSection,
			"batch":    {"max_rows", "max_bytes", "max_wait_ms", "queue_depth", "appliers"},
			"retry":    {"initial_backoff_ms", "max_backoff_ms"},
		},
		"reconciler": {
			"source":   sourceSection,
			"tables":   tablesSection,
			"postgres": postgresSection,
			"target":   targetSection,
			"compare": {"rows_per_bucket", "settle_ms", "max_reported_keys", "drill_buckets_per_query",
				"transformer_config", "statement_timeout_s"},
			"schedule": {"cron", "tables", "repair"},
			"repair":   {"enabled", "keys_per_command"},
			"reports":  {"state_schema", "runs_in_memory"},
		},
	}
)

var (
	secretKey      = regexp.MustCompile(`(?i)(password|token|secret|hmac_key)`)
	vaultReference = regexp.MustCompile(`^vault:[^/#\s]+/[^#\s]+#[^#\s]+$`)
	envReference   = regexp.MustCompile(`^env:[A-Za-z0-9_]+$`)
)

// serviceConfig parses compose/config/<service>.toml.
func serviceConfig(t *testing.T, service string) map[string]any {
	t.Helper()
	path := filepath.Join(composeDir(t), "config", service+".toml")
	var config map[string]any
	if err := toml.Unmarshal([]byte(readFile(t, path)), &config); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return config
}

func TestEveryServiceConfigParsesAndUsesOnlyKnownKeys(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(composeDir(t), "config", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, file := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(file), ".toml"))
	}
	if strings.Join(names, " ") != "extractor loader reconciler transformer" {
		t.Fatalf("compose/config holds %v; want one file per service", names)
	}
	for _, service := range names {
		for section, value := range serviceConfig(t, service) {
			keys, known := kitSections[section]
			if !known {
				keys, known = serviceSections[service][section]
			}
			if !known {
				t.Errorf("%s.toml: unknown section [%s]", service, section)
				continue
			}
			if keys == nil {
				continue
			}
			table, ok := value.(map[string]any)
			if !ok {
				t.Errorf("%s.toml: %s is not a table", service, section)
				continue
			}
			for key := range table {
				if !contains(keys, key) {
					t.Errorf("%s.toml: unknown key %s.%s (known: %v)", service, section, key, keys)
				}
			}
		}
		for _, required := range []string{"grpc", "metrics", "kafka", "vault"} {
			if _, ok := serviceConfig(t, service)[required]; !ok {
				t.Errorf("%s.toml: no [%s]", service, required)
			}
		}
	}
}

// walk calls visit with every string value of the configuration and its dotted key.
func walk(prefix string, value any, visit func(key, value string)) {
	switch v := value.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			walk(strings.TrimPrefix(prefix+"."+key, "."), v[key], visit)
		}
	case []any:
		for i, item := range v {
			walk(fmt.Sprintf("%s[%d]", prefix, i), item, visit)
		}
	case string:
		visit(prefix, v)
	}
}

func TestServiceConfigsHoldSecretsOnlyAsReferences(t *testing.T) {
	for service := range pipelineServices {
		walk("", serviceConfig(t, service), func(key, value string) {
			leaf := key[strings.LastIndex(key, ".")+1:]
			if urlWithPassword.MatchString(value) {
				t.Errorf("%s.toml: %s is a URL with a password", service, key)
			}
			if !secretKey.MatchString(leaf) {
				return
			}
			if !vaultReference.MatchString(value) && !envReference.MatchString(value) {
				t.Errorf("%s.toml: %s is not a `vault:<mount>/<path>#<field>` or `env:<VAR>` reference", service, key)
			}
		})
	}
}

// seededSecrets are the Vault secrets compose/vault/seed.sh writes, as `mount/path#field`.
func seededSecrets(t *testing.T) map[string]bool {
	t.Helper()
	script := readFile(t, filepath.Join(composeDir(t), "vault", "seed.sh"))
	seeded := map[string]bool{}
	for _, match := range regexp.MustCompile(`(?m)^seed_login (\S+) `).FindAllStringSubmatch(script, -1) {
		seeded["secret/"+match[1]+"#username"] = true
		seeded["secret/"+match[1]+"#password"] = true
	}
	put := regexp.MustCompile(`vault kv put -mount=secret (\S+) (\w+)=`)
	for _, match := range put.FindAllStringSubmatch(script, -1) {
		if !strings.HasPrefix(match[1], `"$`) {
			seeded["secret/"+match[1]+"#"+match[2]] = true
		}
	}
	return seeded
}

func TestEveryVaultReferenceIsASecretTheSeedJobWrites(t *testing.T) {
	seeded := seededSecrets(t)
	for _, want := range []string{"secret/cdc/mssql#password", "secret/cdc/postgres#password", "secret/cdc/control#token"} {
		if !seeded[want] {
			t.Errorf("seed.sh does not write %s (it writes %v)", want, sortedKeys(seeded))
		}
	}
	for service := range pipelineServices {
		walk("", serviceConfig(t, service), func(key, value string) {
			if reference, ok := strings.CutPrefix(value, "vault:"); ok && !seeded[reference] {
				t.Errorf("%s.toml: %s = %q, which secrets-init never writes", service, key, value)
			}
		})
	}
}

func TestServiceConfigsPointAtTheComposeServices(t *testing.T) {
	project := loadProject(t, true)
	for service, ports := range pipelineServices {
		config := serviceConfig(t, service)
		expect := map[string]string{
			"grpc.listen":             "0.0.0.0:" + ports.grpcPort,
			"metrics.listen":          "0.0.0.0:" + ports.metricsPort, // Prometheus scrapes every replica
			"grpc.auth_token":         "vault:secret/cdc/control#token",
			"vault.address":           "http://vault:8200",
			"vault.token":             "env:VAULT_TOKEN",
			"kafka.bootstrap_servers": "kafka:9092",
			"telemetry.otlp_endpoint": "http://jaeger:4317",
		}
		for key, want := range expect {
			if got := lookup(config, key); got != want {
				t.Errorf("%s.toml: %s = %v, want %q", service, key, got, want)
			}
		}
		if host, ok := lookup(config, "source.host").(string); ok {
			if _, exists := project.Services[host]; !exists {
				t.Errorf("%s.toml: source.host %q is no compose service", service, host)
			}
		}
		if url, ok := lookup(config, "postgres.url").(string); ok && !strings.Contains(url, "@postgres:5432/") {
			t.Errorf("%s.toml: postgres.url %q does not name the compose service postgres", service, url)
		}
	}
	if _, set := lookup(serviceConfig(t, "transformer"), "producer.transactional_id").(string); set {
		t.Errorf("transformer.toml: a fixed producer.transactional_id would be shared by every replica")
	}
}

func lookup(config map[string]any, dotted string) any {
	var value any = config
	for _, part := range strings.Split(dotted, ".") {
		table, ok := value.(map[string]any)
		if !ok {
			return nil
		}
		value = table[part]
	}
	return value
}

func contains(list []string, item string) bool {
	for _, candidate := range list {
		if candidate == item {
			return true
		}
	}
	return false
}

func TestTheInitScriptsTheComposeFileRunsExist(t *testing.T) {
	for _, path := range []string{"mssql/init.sql", "mssql/init.sh", "vault/seed.sh"} {
		if _, err := os.Stat(filepath.Join(composeDir(t), path)); err != nil {
			t.Errorf("compose/%s: %v", path, err)
		}
	}
}
