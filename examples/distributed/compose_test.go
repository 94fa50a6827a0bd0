// Package distributedexample_test checks the distributed example without Docker: its
// docker-compose.yml against run-local.sh (the same services, ports and settings), its
// Dockerfile, and its components.
package distributedexample_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/xcomponent/xcomponent/component"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// localService is one `start` line of run-local.sh.
type localService struct {
	name, port, program, componentFile, demo string
}

var startLine = regexp.MustCompile(`^start\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$`)

func loadRunLocal(t *testing.T) []localService {
	t.Helper()
	f, err := os.Open("run-local.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []localService
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := startLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, localService{m[1], m[2], m[3], m[4], m[5]})
		}
	}
	if len(out) == 0 {
		t.Fatal("run-local.sh: no `start` lines")
	}
	return out
}

// The services of docker-compose.yml other than the broker and the database are the ones
// run-local.sh starts, with the same command, port, component file, runtime name and demo
// setting; each has a health check on its /readyz and waits for a healthy broker and
// database.
func TestComposeMatchesRunLocal(t *testing.T) {
	c := loadCompose(t)
	local := loadRunLocal(t)

	var composeNames, localNames []string
	for name := range c.Services {
		if name != "rabbitmq" && name != "postgres" {
			composeNames = append(composeNames, name)
		}
	}
	for _, s := range local {
		localNames = append(localNames, s.name)
	}
	slices.Sort(composeNames)
	slices.Sort(localNames)
	if !slices.Equal(composeNames, localNames) {
		t.Fatalf("docker-compose.yml runs %v, run-local.sh %v", composeNames, localNames)
	}
	for _, l := range local {
		s := c.Services[l.name]
		t.Run(l.name, func(t *testing.T) {
			if got := strings.Join(s.Command, ":"); got != l.program {
				t.Errorf("command %q, run-local.sh runs %q", got, l.program)
			}
			env := s.Environment
			if env["PORT"] != l.port {
				t.Errorf("PORT %q, run-local.sh %s", env["PORT"], l.port)
			}
			if !slices.Contains(s.Ports, l.port+":"+l.port) {
				t.Errorf("ports %v do not publish %s", s.Ports, l.port)
			}
			if env["BIND_ADDR"] != "0.0.0.0" {
				t.Errorf("BIND_ADDR %q: a container must listen on every interface", env["BIND_ADDR"])
			}
			if !strings.HasPrefix(env["BROKER_URL"], "amqp://xcomponent:xcomponent123@rabbitmq:5672") {
				t.Errorf("BROKER_URL %q", env["BROKER_URL"])
			}
			if !strings.HasPrefix(env["DATABASE_URL"], "postgres://xcomponent:xcomponent123@postgres:5432/xcomponent_fsm") {
				t.Errorf("DATABASE_URL %q", env["DATABASE_URL"])
			}
			if l.componentFile == "-" {
				for _, k := range []string{"COMPONENT_FILE", "RUNTIME_NAME", "CREATE_DEMO_INSTANCE"} {
					if _, ok := env[k]; ok {
						t.Errorf("%s set on a service that is not a runtime", k)
					}
				}
			} else {
				if env["COMPONENT_FILE"] != "/app/examples/"+l.componentFile {
					t.Errorf("COMPONENT_FILE %q, run-local.sh %s", env["COMPONENT_FILE"], l.componentFile)
				}
				if _, err := os.Stat(l.componentFile); err != nil {
					t.Errorf("component file: %v", err)
				}
				if env["RUNTIME_NAME"] != l.name {
					t.Errorf("RUNTIME_NAME %q, want the service name %s", env["RUNTIME_NAME"], l.name)
				}
				if env["CREATE_DEMO_INSTANCE"] != l.demo {
					t.Errorf("CREATE_DEMO_INSTANCE %q, run-local.sh %s", env["CREATE_DEMO_INSTANCE"], l.demo)
				}
			}
			if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "127.0.0.1:"+l.port+"/readyz") {
				t.Errorf("no health check on its /readyz: %+v", s.Healthcheck)
			}
			for _, dep := range []string{"rabbitmq", "postgres"} {
				if s.DependsOn[dep].Condition != "service_healthy" {
					t.Errorf("depends_on %s: %+v, want condition service_healthy", dep, s.DependsOn[dep])
				}
			}
			if s.Build == nil || filepath.Clean(filepath.Join(s.Build.Context, s.Build.Dockerfile)) != filepath.Clean("../../examples/distributed/Dockerfile") {
				t.Errorf("build %+v: want the example's Dockerfile with the repository as context", s.Build)
			}
		})
	}
	// Two runtimes of the approval workflow, one creating a demo instance.
	var approval []string
	for _, l := range local {
		if l.componentFile == "approval-workflow.yaml" {
			approval = append(approval, l.name+"="+l.demo)
		}
	}
	if !slices.Equal(approval, []string{"runtime-approval=true", "runtime-approval-2=false"}) {
		t.Errorf("approval runtimes: %v", approval)
	}
}

func TestComposeBrokerAndDatabase(t *testing.T) {
	c := loadCompose(t)
	mq := c.Services["rabbitmq"]
	if !strings.Contains(mq.Image, "management") {
		t.Errorf("rabbitmq image %q has no management UI", mq.Image)
	}
	if !slices.Contains(mq.Ports, "15672:15672") || !slices.Contains(mq.Ports, "5672:5672") {
		t.Errorf("rabbitmq ports %v", mq.Ports)
	}
	if mq.Environment["RABBITMQ_DEFAULT_USER"] != "xcomponent" || mq.Environment["RABBITMQ_DEFAULT_PASS"] != "xcomponent123" {
		t.Errorf("rabbitmq user: %v", mq.Environment)
	}
	if mq.Healthcheck == nil {
		t.Error("rabbitmq has no health check")
	}
	pg := c.Services["postgres"]
	if !strings.HasPrefix(pg.Image, "postgres:15") {
		t.Errorf("postgres image %q, want PostgreSQL 15", pg.Image)
	}
	if e := pg.Environment; e["POSTGRES_DB"] != "xcomponent_fsm" || e["POSTGRES_USER"] != "xcomponent" || e["POSTGRES_PASSWORD"] != "xcomponent123" {
		t.Errorf("postgres env: %v", e)
	}
	if pg.Healthcheck == nil {
		t.Error("postgres has no health check")
	}
	var initSQL string
	for _, v := range pg.Volumes {
		if strings.Contains(v, "/docker-entrypoint-initdb.d/") {
			initSQL = strings.SplitN(v, ":", 2)[0]
		}
	}
	if initSQL != "../../deploy/postgres/init.sql" {
		t.Errorf("postgres schema volume %q, want ../../deploy/postgres/init.sql", initSQL)
	} else if _, err := os.Stat(initSQL); err != nil {
		t.Error(err)
	}
}

// The Dockerfile is multi-stage, builds static binaries of both programs, and runs as a
// non-root user.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	if strings.Count(d, "\nFROM ") < 2 {
		t.Error("not multi-stage")
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/xcomponent", "./examples/distributed/runtime", "COPY --from=build", "\nUSER "} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`\nUSER (\S+)`).FindStringSubmatch(d); m != nil && (strings.HasPrefix(m[1], "root") || strings.HasPrefix(m[1], "0")) {
		t.Errorf("runs as %s", m[1])
	}
}

// docker compose validates the file itself when it is installed (not on CI machines).
func TestDockerComposeConfig(t *testing.T) {
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		t.Skip("docker compose is not installed")
	}
	out, err := exec.Command("docker", "compose", "-f", "docker-compose.yml", "config", "-q").CombinedOutput()
	if err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
}

// Every example component loads without error or warning; the approval workflow of this
// folder is the one `xcomponent runtime` runs by default (examples/approval-workflow.yaml).
func TestExampleComponents(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	more, _ := filepath.Glob("../*.yaml")
	var comps []*component.Component
	for _, f := range append(files, more...) {
		if f == "docker-compose.yml" {
			continue
		}
		c, err := component.LoadFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, w := range c.Warnings {
			t.Errorf("%s: %s", f, w)
		}
		if filepath.Dir(f) == "." {
			comps = append(comps, c)
		}
	}
	for _, p := range component.ValidateSet(comps) {
		t.Errorf("together: %s", p)
	}
	a, _ := os.ReadFile("approval-workflow.yaml")
	b, _ := os.ReadFile("../approval-workflow.yaml")
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("approval-workflow.yaml differs from ../approval-workflow.yaml: keep the two copies equal")
	}
}
