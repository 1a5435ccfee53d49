package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// The command the Dockerfile builds with; the README documents it, and its flags are CI's.
const cargoBuild = "cargo build --release --locked -p cdc-extractor -p cdc-transformer -p cdc-loader -p cdc-reconciler --bins"

// stage is one FROM section of the Dockerfile.
type stage struct {
	name, base   string
	user         string // the stage's last USER, empty when it sets none
	instructions []*parser.Node
}

// dockerfile parses the repository's Dockerfile with BuildKit's parser, as `docker build` does.
func dockerfile(t *testing.T) []stage {
	t.Helper()
	file, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	result, err := parser.Parse(file)
	if err != nil {
		t.Fatalf("BuildKit refuses the Dockerfile: %v", err)
	}
	var stages []stage
	for _, node := range result.AST.Children {
		instruction := strings.ToLower(node.Value)
		if instruction == "from" {
			args := arguments(node)
			current := stage{base: args[0]}
			if len(args) == 3 && strings.EqualFold(args[1], "as") {
				current.name = args[2]
			}
			stages = append(stages, current)
			continue
		}
		if len(stages) == 0 {
			continue // ARG before the first FROM
		}
		last := &stages[len(stages)-1]
		last.instructions = append(last.instructions, node)
		if instruction == "user" {
			last.user = arguments(node)[0]
		}
	}
	return stages
}

func dockerfileStages(t *testing.T) map[string]stage {
	stages := map[string]stage{}
	for _, s := range dockerfile(t) {
		stages[s.name] = s
	}
	return stages
}

func arguments(node *parser.Node) []string {
	var args []string
	for next := node.Next; next != nil; next = next.Next {
		args = append(args, next.Value)
	}
	return args
}

// effectiveUser is the user a stage's containers run as: its own USER, else its base stage's.
func effectiveUser(stages map[string]stage, s stage) string {
	for s.user == "" {
		base, ok := stages[s.base]
		if !ok {
			return ""
		}
		s = base
	}
	return s.user
}

func isRoot(user string) bool {
	name := strings.SplitN(user, ":", 2)[0]
	return name == "" || name == "root" || name == "0"
}

func TestDockerfileIsMultiStageWithANonRootFinalStage(t *testing.T) {
	list := dockerfile(t)
	stages := dockerfileStages(t)
	if len(list) < 2 {
		t.Fatalf("%d stage(s); want a builder and a runtime", len(list))
	}
	final := list[len(list)-1]
	if user := effectiveUser(stages, final); isRoot(user) {
		t.Errorf("the final stage %q runs as %q, want a non-root USER", final.name, user)
	}
	for name := range pipelineServices {
		s, ok := stages[name]
		if !ok {
			t.Errorf("no stage %q for compose to build", name)
			continue
		}
		if user := effectiveUser(stages, s); isRoot(user) {
			t.Errorf("stage %q runs as %q, want a non-root USER", name, user)
		}
		entrypoint := ""
		for _, node := range s.instructions {
			if strings.EqualFold(node.Value, "entrypoint") {
				entrypoint = strings.Join(arguments(node), " ")
			}
		}
		if entrypoint != "/usr/local/bin/cdc-"+name {
			t.Errorf("stage %q: entrypoint %q, want /usr/local/bin/cdc-%s", name, entrypoint, name)
		}
	}
	runtimeBase := ""
	for s := final; ; {
		base, ok := stages[s.base]
		if !ok {
			runtimeBase = s.base
			break
		}
		s = base
	}
	if runtimeBase != "debian:bookworm-slim" {
		t.Errorf("the runtime is built on %q, want debian:bookworm-slim", runtimeBase)
	}
}

func TestBuilderUsesThePinnedToolchainAndTheBuildsSystemPackages(t *testing.T) {
	root := repoRoot(t)
	builder := dockerfile(t)[0]
	channel := regexp.MustCompile(`(?m)^channel *= *"([^"]+)"`).FindStringSubmatch(readFile(t, filepath.Join(root, "rust-toolchain.toml")))
	if channel == nil {
		t.Fatal("rust-toolchain.toml names no channel")
	}
	if want := "rust:" + channel[1] + "-bookworm"; builder.base != want {
		t.Errorf("builder FROM %q, want %q (rust-toolchain.toml pins %s)", builder.base, want, channel[1])
	}
	deps := regexp.MustCompile(`for package in ([^;]+); do`).FindStringSubmatch(readFile(t, filepath.Join(root, "scripts", "dev", "deps.sh")))
	if deps == nil {
		t.Fatal("scripts/dev/deps.sh: no package list found")
	}
	installs := ""
	for _, node := range builder.instructions {
		if strings.EqualFold(node.Value, "run") && strings.Contains(node.Original, "apt-get install") {
			installs += node.Original
		}
	}
	for _, pkg := range strings.Fields(deps[1]) {
		if !regexp.MustCompile(`\s` + regexp.QuoteMeta(pkg) + `(\s|$)`).MatchString(installs) {
			t.Errorf("the builder does not install %s, which scripts/dev/deps.sh installs", pkg)
		}
	}
}

func TestBuilderRunsTheDocumentedCargoBuildWithCIsFlags(t *testing.T) {
	root := repoRoot(t)
	builds := 0
	for _, node := range dockerfile(t)[0].instructions {
		if !strings.EqualFold(node.Value, "run") || !strings.Contains(node.Original, "cargo build") {
			continue
		}
		builds++
		if !strings.Contains(node.Original, cargoBuild) {
			t.Errorf("the builder's cargo command is not %q:\n%s", cargoBuild, node.Original)
		}
	}
	if builds != 1 {
		t.Errorf("%d cargo build steps in the builder, want 1", builds)
	}
	// CI runs cargo with --locked (the lock file is the build's truth); so does the image.
	ci := readFile(t, filepath.Join(root, ".ci", "run")) + readFile(t, filepath.Join(root, "Makefile"))
	if !strings.Contains(ci, "--locked") {
		t.Errorf("CI no longer passes --locked; align the Dockerfile's cargo build with it")
	}
	if !strings.Contains(readFile(t, filepath.Join(root, "README.md")), cargoBuild) {
		t.Errorf("README.md does not document the image's build command %q", cargoBuild)
	}
}

func TestDockerfileCopiesOnlyRepositoryPathsAndIgnoresLocalState(t *testing.T) {
	root := repoRoot(t)
	for _, s := range dockerfile(t) {
		for _, node := range s.instructions {
			instruction := strings.ToLower(node.Value)
			if instruction == "add" {
				t.Errorf("line %d: ADD (it can fetch URLs); use COPY", node.StartLine)
			}
			if instruction != "copy" || hasFlag(node, "--from") {
				continue
			}
			args := arguments(node)
			for _, source := range args[:len(args)-1] {
				if strings.HasPrefix(source, "<<") {
					continue // a heredoc: the content is in the Dockerfile
				}
				if filepath.IsAbs(source) || strings.HasPrefix(source, "..") {
					t.Errorf("line %d: COPY %s is not a path inside the build context", node.StartLine, source)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, source)); err != nil {
					t.Errorf("line %d: COPY %s: %v", node.StartLine, source, err)
				}
			}
		}
	}
	ignored := strings.Fields(readFile(t, filepath.Join(root, ".dockerignore")))
	for _, want := range []string{"target/", ".stack/", ".git"} {
		if !contains(ignored, want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}

func hasFlag(node *parser.Node, name string) bool {
	for _, flag := range node.Flags {
		if strings.HasPrefix(flag, name+"=") {
			return true
		}
	}
	return false
}

// Cargo resolves the whole workspace before it builds one package, so the builder must copy
// the folder of every workspace member (a new member outside them breaks the image).
func TestBuilderCopiesEveryWorkspaceMember(t *testing.T) {
	root := repoRoot(t)
	manifest := readFile(t, filepath.Join(root, "Cargo.toml"))
	block := regexp.MustCompile(`(?s)members\s*=\s*\[(.*?)\]`).FindStringSubmatch(manifest)
	if block == nil {
		t.Fatal("Cargo.toml has no workspace members list")
	}
	copied := map[string]bool{}
	for _, s := range dockerfile(t) {
		for _, node := range s.instructions {
			if strings.ToLower(node.Value) != "copy" || hasFlag(node, "--from") {
				continue
			}
			args := arguments(node)
			for _, source := range args[:len(args)-1] {
				copied[strings.TrimSuffix(source, "/")] = true
			}
		}
	}
	members := regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(block[1], -1)
	if len(members) == 0 {
		t.Fatal("no workspace member found in Cargo.toml")
	}
	for _, member := range members {
		top := strings.SplitN(member[1], "/", 2)[0]
		if !copied[top] && !copied[member[1]] {
			t.Errorf("workspace member %s is not copied into the builder (COPY %s %s)", member[1], top, top)
		}
	}
}
