// Package packaging checks the repository's packaging on machines without a Docker engine:
// compose/docker-compose.yml loaded by compose-go (the library `docker compose` itself uses),
// the service configurations under compose/config, and the Dockerfile parsed by BuildKit's
// parser. No registry is reachable from here, so "the image exists publicly" is checked
// against an allow-list of official repositories and pinned tags, not by pulling.
package packaging

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// The four services, their ports and their Dockerfile targets: what scales.
var pipelineServices = map[string]struct{ grpcPort, metricsPort string }{
	"extractor":   {"50051", "9101"},
	"transformer": {"50052", "9102"},
	"loader":      {"50053", "9103"},
	"reconciler":  {"50054", "9104"},
}

// Jobs that run to completion before what depends on them starts.
var oneShotServices = map[string]bool{"secrets-init": true, "mssql-init": true}

// The one secret the compose file may hold: the dev Vault's root token.
const devRootToken = "cdc-dev-root"

// repoRoot is the repository's top folder (this module lives in tests/packaging).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Cargo.toml")); err != nil {
		t.Fatalf("%s is not the repository root: %v", root, err)
	}
	return root
}

func composeDir(t *testing.T) string {
	return filepath.Join(repoRoot(t), "compose")
}

func composeFile(t *testing.T) string {
	return filepath.Join(composeDir(t), "docker-compose.yml")
}

// loadProject loads the compose file as `docker compose -f compose/docker-compose.yml` does:
// project directory compose/, the process environment and a .env there for interpolation,
// schema validation and consistency checks on; resolvePaths makes relative paths absolute.
func loadProject(t *testing.T, resolvePaths bool) *types.Project {
	t.Helper()
	options, err := cli.NewProjectOptions(
		[]string{composeFile(t)},
		cli.WithWorkingDirectory(composeDir(t)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithResolvedPaths(resolvePaths),
	)
	if err != nil {
		t.Fatal(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go refuses %s: %v", composeFile(t), err)
	}
	return project
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(content)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// insideRepo reports whether the absolute path is the repository root or below it.
func insideRepo(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
