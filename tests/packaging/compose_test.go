package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v4"
)

// Official images the stack may use, each with the tags allowed for it. There is no registry
// to ask here, so this list is the check that an image "exists publicly": every entry is the
// publisher's own repository and a release tag it publishes.
var allowedImages = map[string]*regexp.Regexp{
	"mcr.microsoft.com/mssql/server":     regexp.MustCompile(`^2022-CU\d+-ubuntu-22\.04$`),
	"docker.io/apache/kafka":             regexp.MustCompile(`^4\.\d+\.\d+$`),
	"docker.io/library/postgres":         regexp.MustCompile(`^15(\.\d+)?$`),
	"docker.io/hashicorp/vault":          regexp.MustCompile(`^1\.\d+\.\d+$`),
	"docker.io/prom/prometheus":          regexp.MustCompile(`^v[23]\.\d+\.\d+$`),
	"docker.io/grafana/grafana":          regexp.MustCompile(`^11\.\d+\.\d+$`),
	"docker.io/jaegertracing/jaeger":     regexp.MustCompile(`^2\.\d+\.\d+$`),
	"docker.io/jaegertracing/all-in-one": regexp.MustCompile(`^1\.\d+\.\d+$`),
}

func TestComposeFileLoadsWithTheExpectedServices(t *testing.T) {
	project := loadProject(t, true)
	want := []string{
		"extractor", "grafana", "jaeger", "kafka", "loader", "mssql", "mssql-init", "postgres",
		"prometheus", "reconciler", "secrets-init", "transformer", "vault",
	}
	got := sortedKeys(project.Services)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("services: got %v, want %v", got, want)
	}
}

func TestEveryImageIsAPinnedOfficialImage(t *testing.T) {
	project := loadProject(t, true)
	for _, name := range sortedKeys(project.Services) {
		service := project.Services[name]
		if service.Build != nil {
			continue // built from this repository: see TestPipelineServicesAreBuiltFromTheRepositoryDockerfile
		}
		if service.Image == "" {
			t.Errorf("%s: neither image nor build", name)
			continue
		}
		named, err := reference.ParseNormalizedNamed(service.Image)
		if err != nil {
			t.Errorf("%s: image %q: %v", name, service.Image, err)
			continue
		}
		tagged, ok := named.(reference.Tagged)
		if !ok {
			t.Errorf("%s: image %q has no explicit tag", name, service.Image)
			continue
		}
		if strings.Contains(tagged.Tag(), "latest") {
			t.Errorf("%s: image %q: a moving `latest` tag", name, service.Image)
		}
		pattern, ok := allowedImages[named.Name()]
		if !ok {
			t.Errorf("%s: image %q is not one of the official repositories allowed: %v",
				name, service.Image, sortedKeys(allowedImages))
			continue
		}
		if !pattern.MatchString(tagged.Tag()) {
			t.Errorf("%s: tag %q of %s does not match %s", name, tagged.Tag(), named.Name(), pattern)
		}
	}
}

func TestPipelineServicesAreBuiltFromTheRepositoryDockerfile(t *testing.T) {
	project := loadProject(t, true)
	root := repoRoot(t)
	stages := dockerfileStages(t)
	for name := range pipelineServices {
		service := project.Services[name]
		if service.Build == nil {
			t.Errorf("%s: not built from the repository", name)
			continue
		}
		if service.Build.Context != root {
			t.Errorf("%s: build context %s, want the repository root %s", name, service.Build.Context, root)
		}
		if filepath.Join(service.Build.Context, service.Build.Dockerfile) != filepath.Join(root, "Dockerfile") &&
			service.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s: dockerfile %s, want the repository's Dockerfile", name, service.Build.Dockerfile)
		}
		if service.Build.Target != name {
			t.Errorf("%s: build target %q, want %q", name, service.Build.Target, name)
		}
		if _, ok := stages[name]; !ok {
			t.Errorf("%s: the Dockerfile has no stage %q", name, name)
		}
	}
}

func TestScalableServicesHaveNoFixedNameHostnameOrHostPort(t *testing.T) {
	project := loadProject(t, true)
	for name := range pipelineServices {
		service := project.Services[name]
		if service.ContainerName != "" {
			t.Errorf("%s: container_name %q stops `--scale %s=N`", name, service.ContainerName, name)
		}
		// A fixed hostname would give every replica the same identity (the transformer's
		// transactional id defaults to `<group_id>-$HOSTNAME`).
		if service.Hostname != "" {
			t.Errorf("%s: hostname %q is shared by every replica", name, service.Hostname)
		}
		for _, port := range service.Ports {
			t.Errorf("%s: publishes %s:%d on the host; replicas would collide", name, port.Published, port.Target)
		}
	}
}

func TestEveryLongRunningServiceHasAHealthCheckAndOneShotsDoNotRestart(t *testing.T) {
	project := loadProject(t, true)
	for _, name := range sortedKeys(project.Services) {
		service := project.Services[name]
		if oneShotServices[name] {
			if service.Restart != "" && service.Restart != "no" {
				t.Errorf("%s: a one-shot job with restart %q", name, service.Restart)
			}
			continue
		}
		if service.Restart != "unless-stopped" && service.Restart != "always" {
			t.Errorf("%s: restart %q, want unless-stopped", name, service.Restart)
		}
		check := service.HealthCheck
		if check == nil || check.Disable || len(check.Test) == 0 || check.Test[0] == "NONE" {
			t.Errorf("%s: no health check", name)
			continue
		}
		if check.Interval == nil || check.Timeout == nil || check.Retries == nil {
			t.Errorf("%s: health check without interval, timeout and retries", name)
		}
	}
}

func TestPipelineHealthChecksProbeTheirOwnMetricsPort(t *testing.T) {
	project := loadProject(t, true)
	for name, ports := range pipelineServices {
		test := project.Services[name].HealthCheck.Test
		want := []string{"CMD", "cdc-healthcheck", ports.metricsPort}
		if strings.Join(test, " ") != strings.Join(want, " ") {
			t.Errorf("%s: health check %v, want %v", name, test, want)
		}
	}
}

// rawServices is the compose file as written (anchors merged), before compose-go's defaults:
// what "every depends_on names a condition" is about.
func rawServices(t *testing.T) map[string]map[string]any {
	t.Helper()
	var file struct {
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, composeFile(t))), &file); err != nil {
		t.Fatal(err)
	}
	return file.Services
}

func TestEveryDependsOnNamesACondition(t *testing.T) {
	project := loadProject(t, true)
	conditions := map[string]bool{
		"service_started": true, "service_healthy": true, "service_completed_successfully": true,
	}
	for name, service := range rawServices(t) {
		raw, ok := service["depends_on"]
		if !ok {
			continue
		}
		dependencies, ok := raw.(map[string]any)
		if !ok {
			t.Errorf("%s: depends_on is a list; write each dependency with its condition", name)
			continue
		}
		for dependency, spec := range dependencies {
			fields, _ := spec.(map[string]any)
			condition, _ := fields["condition"].(string)
			if !conditions[condition] {
				t.Errorf("%s: depends_on %s has no condition (got %q)", name, dependency, condition)
				continue
			}
			if oneShotServices[dependency] && condition != "service_completed_successfully" {
				t.Errorf("%s: depends_on the job %s with %s, want service_completed_successfully",
					name, dependency, condition)
			}
			if !oneShotServices[dependency] && condition == "service_completed_successfully" {
				t.Errorf("%s: waits for the long-running %s to exit", name, dependency)
			}
			if condition == "service_healthy" && project.Services[dependency].HealthCheck == nil {
				t.Errorf("%s: waits for %s to be healthy, which has no health check", name, dependency)
			}
		}
	}
}

func TestBindMountsAndBuildContextsStayInsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	written := loadProject(t, false)
	resolved := loadProject(t, true)
	for _, name := range sortedKeys(resolved.Services) {
		for i, volume := range resolved.Services[name].Volumes {
			if volume.Type != "bind" {
				continue
			}
			source := written.Services[name].Volumes[i].Source
			if filepath.IsAbs(source) || strings.HasPrefix(source, "~") {
				t.Errorf("%s: bind mount %q is not relative to the compose file", name, source)
			}
			if !insideRepo(root, volume.Source) {
				t.Errorf("%s: bind mount %s is outside the repository", name, volume.Source)
				continue
			}
			if _, err := os.Stat(volume.Source); err != nil {
				t.Errorf("%s: bind mount source is missing: %v", name, err)
			}
		}
		if build := resolved.Services[name].Build; build != nil && !insideRepo(root, build.Context) {
			t.Errorf("%s: build context %s is outside the repository", name, build.Context)
		}
	}
}

var (
	secretLikeKey = regexp.MustCompile(`(?i)(pass(word|wd)?|secret|token|credential|api_?key|private_?key)`)
	// `NAME_PASSWORD=literal` or `-P literal` inside a command, where the value is not read
	// from a file or variable at run time.
	literalAssignment = regexp.MustCompile(`(?i)[A-Z_]*(PASSWORD|TOKEN|SECRET)[A-Z_]*=["']?([^"'$\s][^"'\s]*)`)
	passwordFlag      = regexp.MustCompile(`(?:^|\s)-P\s+["']?([^"'$\s][^"'\s]*)`)
	urlWithPassword   = regexp.MustCompile(`://[^/@:\s]+:[^/@\s]+@`)
)

func TestNoSecretInTheComposeFileButTheDevRootToken(t *testing.T) {
	project := loadProject(t, true)
	for _, name := range sortedKeys(project.Services) {
		service := project.Services[name]
		for key, value := range service.Environment {
			if value == nil {
				continue
			}
			if urlWithPassword.MatchString(*value) {
				t.Errorf("%s: %s holds a URL with a password", name, key)
			}
			if !secretLikeKey.MatchString(key) {
				continue
			}
			switch {
			case (key == "VAULT_TOKEN" || key == "VAULT_DEV_ROOT_TOKEN_ID") && *value == devRootToken:
			case strings.HasSuffix(key, "_FILE") && filepath.IsAbs(*value):
			default:
				t.Errorf("%s: environment %s looks like a secret written in the file", name, key)
			}
		}
		var commands []string
		commands = append(commands, service.Command...)
		commands = append(commands, service.Entrypoint...)
		if service.HealthCheck != nil {
			commands = append(commands, service.HealthCheck.Test...)
		}
		for _, command := range commands {
			for _, found := range [][]string{
				literalAssignment.FindStringSubmatch(command), passwordFlag.FindStringSubmatch(command),
			} {
				if found != nil {
					t.Errorf("%s: a literal secret in %q", name, command)
				}
			}
			if urlWithPassword.MatchString(command) {
				t.Errorf("%s: a URL with a password in %q", name, command)
			}
		}
	}
	if strings.Count(readFile(t, composeFile(t)), devRootToken) != 1 {
		t.Errorf("the dev root token should be written once (a YAML anchor) in the compose file")
	}
}

func TestServicesGetSecretsOnlyFromVaultWithTheDevRootToken(t *testing.T) {
	project := loadProject(t, true)
	for name := range pipelineServices {
		env := project.Services[name].Environment
		if len(env) != 1 || env["VAULT_TOKEN"] == nil || *env["VAULT_TOKEN"] != devRootToken {
			t.Errorf("%s: environment %v, want only VAULT_TOKEN (the dev root token)", name, sortedKeys(env))
		}
	}
}

func TestEachPipelineServiceMountsItsConfigAndRunsWithIt(t *testing.T) {
	project := loadProject(t, true)
	root := repoRoot(t)
	for name := range pipelineServices {
		service := project.Services[name]
		target := "/etc/cdc/" + name + ".toml"
		mounted := false
		for _, volume := range service.Volumes {
			if volume.Target == target {
				mounted = volume.Source == filepath.Join(root, "compose", "config", name+".toml") && volume.ReadOnly
			}
		}
		if !mounted {
			t.Errorf("%s: compose/config/%s.toml is not mounted read-only at %s", name, name, target)
		}
		if strings.Join(service.Command, " ") != "--config "+target {
			t.Errorf("%s: command %v, want --config %s", name, service.Command, target)
		}
	}
	// The reconciler reads the transformer's rules from the path its config names.
	compare, _ := serviceConfig(t, "reconciler")["compare"].(map[string]any)
	path, _ := compare["transformer_config"].(string)
	found := false
	for _, volume := range project.Services["reconciler"].Volumes {
		found = found || (volume.Target == path &&
			volume.Source == filepath.Join(root, "compose", "config", "transformer.toml"))
	}
	if !found {
		t.Errorf("reconciler: compare.transformer_config %q is not the mounted transformer.toml", path)
	}
}
